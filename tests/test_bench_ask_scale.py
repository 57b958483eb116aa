"""bench/ask_scale.py's pure parts (statement keys, percentiles, the ratio, the JSON shape, the asks) and
bench/history.py's loader on both databases (a small history: its search documents and id sequences)."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime

from sqlalchemy import func, select, text

from bench import history
from bench.ask_scale import (
    AskSample,
    SizeRun,
    database_result,
    derive_tables,
    history_end,
    make_asks,
    ratio,
    statement_key,
    summarize,
    top_statements,
)
from bench.harness import Corpus
from bot.search import search_similar
from models.question import Question
from models.session import Store


def sample(total: float, statements: int = 80, *, dms: int = 2, route: float = 0.0) -> AskSample:
    return AskSample("topic", total - route, route, statements, suggested=route > 0, dms=dms)


# --- statement keys ----------------------------------------------------------------------------------------


def test_a_statement_has_one_key_whatever_its_in_list_holds() -> None:
    two = "SELECT a\n  FROM t WHERE t.id IN (?, ?) AND t.team = ?"
    five = "SELECT a FROM t WHERE t.id IN (?, ?, ?, ?, ?)   AND t.team = ?"
    named = "SELECT a FROM t WHERE t.id IN (%(id_1_1)s, %(id_1_2)s) AND t.team = %(team)s"

    assert statement_key(two) == statement_key(five) == "SELECT a FROM t WHERE t.id IN (…) AND t.team = ?"
    assert statement_key(named) == "SELECT a FROM t WHERE t.id IN (…) AND t.team = %(team)s"
    assert statement_key("SELECT count(*) FROM t WHERE x = (?)") == "SELECT count(*) FROM t WHERE x = (?)"
    assert len(statement_key("SELECT " + "x, " * 200, width=50)) == 50


# --- figures ---------------------------------------------------------------------------------------------------


def test_summarize_takes_percentiles_of_the_whole_ask_and_the_spread_of_statements() -> None:
    samples = [sample(float(ms), 80) for ms in range(1, 19)] + [sample(100.0, 91, dms=1, route=60.0)]
    samples.append(sample(200.0, 95, dms=0, route=150.0))

    figures = summarize(samples)

    assert figures["asks"] == 20
    assert figures["p50_ms"] == 10.0  # nearest rank: the 10th of 20
    assert figures["p95_ms"] == 100.0  # the 19th of 20 (the ask and its route together)
    assert figures["ask_p95_ms"] == 40.0  # 100 - 60
    assert figures["route_p50_ms"] == 60.0  # only the asks that waited for "Still need help"
    assert figures["route_p95_ms"] == 150.0
    assert (figures["statements_per_ask"], figures["statements_min"], figures["statements_max"]) == (80, 80, 95)
    assert figures["statements_by_dms"] == {"0": 95, "1": 91, "2": 80}
    assert figures["suggested_share"] == 0.1


def test_ratio_is_the_largest_size_over_the_smallest() -> None:
    figures = {100_000: {"p95_ms": 30.0}, 10_000: {"p95_ms": 20.0}, 1_000_000: {"p95_ms": 50.0}}

    assert ratio(figures) == 2.5
    assert ratio({10_000: {"p50_ms": 0.0}, 100_000: {"p50_ms": 3.0}}, "p50_ms") > 1000  # no division by zero


def test_top_statements_are_those_with_most_time_per_ask_at_the_largest_size() -> None:
    per_size = {
        10_000: {"SELECT a": (10, 0.010), "SELECT b": (10, 0.100)},
        100_000: {"SELECT a": (10, 0.500), "SELECT b": (10, 0.100), "SELECT c": (20, 0.001)},
    }

    rows = top_statements(per_size, {10_000: 10, 100_000: 10}, limit=2)

    assert [row["statement"] for row in rows] == ["SELECT a", "SELECT b"]
    assert rows[0] == {"statement": "SELECT a", "ms_per_ask": 50.0, "calls_per_ask": 1.0, "ms_per_ask_smallest": 1.0}


def test_the_json_has_per_database_p95_and_statements_per_size_and_the_ratio() -> None:
    runs = {
        10_000: SizeRun(
            {"load_seconds": 1.0, **summarize([sample(10.0), sample(20.0)])}, {"ask": {"SELECT a": (2, 0.002)}}
        ),
        100_000: SizeRun(
            {"load_seconds": 9.0, **summarize([sample(15.0), sample(30.0)])}, {"ask": {"SELECT a": (2, 0.02)}}
        ),
    }

    result = json.loads(json.dumps({"postgresql": database_result(runs)}))["postgresql"]

    assert result["sizes"] == [10_000, 100_000]
    assert result["10000"]["p95_ms"] == 20.0 and result["100000"]["p95_ms"] == 30.0
    assert result["10000"]["statements_per_ask"] == result["100000"]["statements_per_ask"] == 80
    assert result["ratio_p95"] == 1.5
    assert result["statements_same"] is True
    assert result["top_statements"]["ask"][0]["ms_per_ask"] == 10.0
    assert result["top_statements"]["route"] == []


def test_the_history_ends_on_the_tuesday_noon_before_today() -> None:
    assert history_end(datetime(2026, 12, 7, 5, 9, tzinfo=UTC)) == datetime(2026, 12, 1, 12, tzinfo=UTC)  # a Monday
    assert history_end(datetime(2026, 12, 1, 18, tzinfo=UTC)) == datetime(2026, 11, 24, 12, tzinfo=UTC)  # a Tuesday


def test_asks_carry_common_topic_tags_single_tags_rare_tags_or_new_tags() -> None:
    corpus = Corpus(seed=7, vocabulary=2_000, tags=300, topics=400)

    asks = make_asks(corpus, 200, random.Random(1))

    assert {ask.kind for ask in asks} == {"topic", "single_tag", "rare_tag", "new_tag"}
    for ask in asks:
        tags = [word[1:] for word in ask.text.split() if word.startswith("#")]
        assert tags
        if ask.kind == "rare_tag":
            assert tags[0] in corpus.tags[200:]
        elif ask.kind == "new_tag":
            assert tags[0] not in corpus.tags
        else:
            assert tags[0] in corpus.tags[:30]
        assert not history.is_private(ask.channel)


# --- the loader, on both databases ----------------------------------------------------------------------------


def test_the_history_loads_with_its_search_documents_and_ids_to_continue_from(database_url: str) -> None:
    now = datetime(2026, 12, 1, 12, tzinfo=UTC)
    corpus = Corpus(seed=3, vocabulary=2_000, tags=50, topics=100)

    loaded = history.load_history(database_url, 300, now, corpus)
    derive_tables(database_url)

    store = Store.from_url(database_url)
    try:
        with store.session() as session:
            resolved = session.scalar(select(func.count()).where(Question.status == "resolved"))
            documents = session.execute(text("SELECT kind, count(*) FROM search_documents GROUP BY kind")).all()
            assert dict(documents) == {"question": resolved, "lesson": 6}
            assert session.scalar(select(func.max(Question.created_at))) < now
            stored = session.scalars(
                select(Question).where(Question.status == "resolved").order_by(Question.id)
            ).first()
            assert stored is not None
            hits = search_similar(
                session, team_id=history.TEAM_ID, text=stored.text, viewer_channel_id=stored.channel_id, limit=3
            )
            assert stored.id in [hit.id for hit in hits if hit.kind == "question"]
            session.add(
                Question(
                    team_id=history.TEAM_ID,
                    channel_id="C001",
                    asker_id="U00001",
                    text="A new one?",
                    request_key="new",
                    created_at=now,
                )
            )
            session.flush()
            assert session.scalar(select(func.max(Question.id))) == 301  # the sequence goes on after the load
    finally:
        store.dispose()
    assert len(loaded.regulars) == len(corpus.topics)
