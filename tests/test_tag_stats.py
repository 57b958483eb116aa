"""Routing's tag statistics, kept as questions are stored (models/tag_stats.py), on SQLite and PostgreSQL.

The oracle is the computation routing ran before the counts were kept: GROUP BY over every question_tags row
of the workspace (`grouped_tag_stats`, the former body of bot/routing/evidence.py's _load_tag_stats). Whatever
questions were stored, by /ask through the Slack boundary or by the store functions, the kept counts must read
the same TagStats, and equal a recount from scratch (rebuild_tag_stats).
"""

from __future__ import annotations

import random
import threading
import time
from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, datetime

import pytest
from sqlalchemy import and_, func, select, text
from sqlalchemy.orm import Session, aliased

from bot import qa
from bot.export import forget_user
from bot.routing.evidence import MAX_TEXT_WORDS, RELATED_TAGS_PER_TAG, _load_tag_stats
from bot.routing.ranker import TAG_WORD, TagStats
from bot.text import ParsedText
from models.question import Question, QuestionTag
from models.session import Store
from models.tag_stats import TagStat, count_question, rebuild_tag_stats

NOW = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
TEAM = "T1"
# Names whose order differs between code points and a language's collation (en_US puts "c++" before "c-lang",
# "émail" next to "email"): ties between related tags go to the first in code-point order.
VOCABULARY = (
    "postgres",
    "ops",
    "k8s",
    "c",
    "c++",
    "c-lang",
    "c.net",
    "cpp",
    "email",
    "émail",
    "zsh",
    "node.js",
    "node-js",
    "α-beta",
    "go",
)


def grouped_tag_stats(session: Session, team_id: str, tags: Sequence[str], text: str) -> TagStats:
    """The oracle: routing's tag frequencies as GROUP BY queries over every question of the workspace."""
    other = aliased(QuestionTag)
    pair_rows = session.execute(
        select(QuestionTag.tag, other.tag, func.count())
        .join(other, and_(other.question_id == QuestionTag.question_id, other.tag != QuestionTag.tag))
        .where(QuestionTag.team_id == team_id, QuestionTag.tag.in_(tags))
        .group_by(QuestionTag.tag, other.tag)
    ).all()
    by_tag: dict[str, list[tuple[int, str]]] = defaultdict(list)
    for tag, related, count in pair_rows:
        by_tag[tag].append((int(count), related))
    pairs: dict[tuple[str, str], int] = {}
    for tag, counted in by_tag.items():
        for count, related in sorted(counted, key=lambda item: (-item[0], item[1]))[:RELATED_TAGS_PER_TAG]:
            a, b = sorted((tag, related))
            pairs[(a, b)] = count
    words = list(dict.fromkeys(TAG_WORD.findall(text.casefold())))[:MAX_TEXT_WORDS]
    names = set(tags) | {tag for pair in pairs for tag in pair} | set(words)
    counts = {
        tag: int(count)
        for tag, count in session.execute(
            select(QuestionTag.tag, func.count())
            .where(QuestionTag.team_id == team_id, QuestionTag.tag.in_(sorted(names)))
            .group_by(QuestionTag.tag)
        )
    }
    total = session.scalar(select(func.count(Question.id)).where(Question.team_id == team_id)) or 0
    return TagStats(question_count=int(total), tag_counts=counts, pair_counts=pairs)


def kept(session: Session, team_id: str = TEAM) -> dict[tuple[str, str], int]:
    rows = session.execute(
        select(TagStat.tag, TagStat.other_tag, TagStat.questions).where(TagStat.team_id == team_id)
    ).all()
    return {(tag, other): int(count) for tag, other, count in rows}


def in_step(store: Store, team_id: str = TEAM) -> bool:
    """The kept counts equal what rebuild_tag_stats makes of the workspace's rows (recounted in a transaction
    that is rolled back: nothing changes)."""
    with store.session() as session:
        before = kept(session, team_id)
    with store.engine.connect() as conn, Session(bind=conn) as session:
        rebuild_tag_stats(session, team_id)
        after = kept(session, team_id)
        session.rollback()
    return before == after


def ask(session: Session, key: str, tags: Sequence[str], team_id: str = TEAM, text: str = "How?") -> bool:
    _, created = qa.create_question(
        session,
        team_id=team_id,
        channel_id="C1",
        asker_id="U_ASKER",
        parsed=ParsedText(text, tuple(tags)),
        request_key=key,
        now=NOW,
    )
    return created


@pytest.fixture
def store(database_url):
    store = Store.from_url(database_url)
    yield store
    store.dispose()


# --- the upkeep ------------------------------------------------------------------------------------------------


def test_a_stored_question_counts_in_its_workspace_its_tags_and_each_pair_both_ways(store):
    with store.session() as s:
        assert ask(s, "k1", ["postgres", "ops"])
        assert ask(s, "k2", ["postgres"])
        assert ask(s, "k3", [])
        assert ask(s, "k4", ["ops"], team_id="T2")
    with store.session() as s:
        assert kept(s) == {
            ("", ""): 3,
            ("ops", ""): 1,
            ("postgres", ""): 2,
            ("ops", "postgres"): 1,
            ("postgres", "ops"): 1,
        }
        assert kept(s, "T2") == {("", ""): 1, ("ops", ""): 1}


def test_a_repeated_request_stores_and_counts_nothing(store):
    with store.session() as s:
        assert ask(s, "same", ["postgres", "ops"])
    for _ in range(3):  # Slack redelivers; the person clicks twice
        with store.session() as s:
            assert not ask(s, "same", ["postgres", "ops"])
    with store.session() as s:
        assert kept(s)[("", "")] == 1 and kept(s)[("ops", "postgres")] == 1
    assert in_step(store)


def test_counts_roll_back_with_the_question(store):
    with pytest.raises(RuntimeError), store.session() as s:
        assert ask(s, "k1", ["postgres", "ops"])
        raise RuntimeError("the transaction fails after storing the question")
    with store.session() as s:
        assert kept(s) == {} and s.scalar(select(func.count()).select_from(Question)) == 0


def test_count_question_ignores_repeated_and_empty_tags(store):
    with store.session() as s:
        count_question(s, TEAM, ["ops", "ops", ""])
    with store.session() as s:
        assert kept(s) == {("", ""): 1, ("ops", ""): 1}


def test_rebuild_recounts_one_workspace_from_its_rows(store):
    with store.session() as s:
        for n in range(6):
            ask(s, f"k{n}", VOCABULARY[n : n + 3])
        ask(s, "other", ["ops"], team_id="T2")
        s.execute(text("UPDATE tag_stats SET questions = questions + 7"))  # out of step, whatever the cause
        s.execute(text("INSERT INTO tag_stats (team_id, tag, other_tag, questions) VALUES ('T1', 'ghost', '', 4)"))
    with store.session() as s:
        written = rebuild_tag_stats(s, TEAM)
    with store.session() as s:
        assert kept(s) == {
            ("", ""): 6,
            **{(tag, ""): len([n for n in range(6) if tag in VOCABULARY[n : n + 3]]) for tag in VOCABULARY[:8]},
            **{
                (a, b): len([n for n in range(6) if {a, b} <= set(VOCABULARY[n : n + 3])])
                for a in VOCABULARY[:8]
                for b in VOCABULARY[:8]
                if a != b and abs(VOCABULARY.index(a) - VOCABULARY.index(b)) <= 2
            },
        }
        assert written == len(kept(s))
        assert kept(s, "T2") == {("", ""): 8, ("ops", ""): 8}  # another workspace's rows are left as they were


def test_a_workspace_without_questions_rebuilds_to_nothing(store):
    with store.session() as s:
        count_question(s, TEAM, ["ops"])  # counted, never stored
    with store.session() as s:
        assert rebuild_tag_stats(s, TEAM) == 0
        assert kept(s) == {}
        assert _load_tag_stats(s, TEAM, ["ops"], "ops?") == TagStats(question_count=0)


# --- the reads: the same TagStats as the GROUP BY queries ----------------------------------------------------------


def random_questions(store: Store, seed: int, n: int) -> list[tuple[str, ...]]:
    """`n` questions with 0 to 6 tags of VOCABULARY, skewed so that counts tie and differ, in a few transactions."""
    rng = random.Random(seed)
    weights = [1 / (rank + 1) for rank in range(len(VOCABULARY))]
    asked = []
    for batch in range(0, n, 20):
        with store.session() as s:
            for i in range(batch, min(batch + 20, n)):
                size = rng.choice([0, 1, 2, 2, 3, 3, 4, 6])
                tags = tuple(dict.fromkeys(rng.choices(VOCABULARY, weights, k=size)))
                ask(s, f"k{i}", tags, text="Why does " + " ".join(rng.sample(VOCABULARY, 3)) + " fail?")
                asked.append(tags)
            ask(s, f"elsewhere{batch}", VOCABULARY[:3], team_id="T2")  # never read for T1
    return asked


def test_the_kept_counts_read_as_the_group_by_queries(store):
    random_questions(store, seed=21, n=150)
    rng = random.Random(7)
    queries = [(tuple(rng.sample(VOCABULARY, k)), " ".join(rng.sample(VOCABULARY, 4))) for k in (1, 1, 2, 3, 5, 10)]
    queries += [(("postgres",), "How do I vacuum? I use c++ and node.js, not émail"), (("unknown",), "nothing")]
    with store.session() as s:
        for tags, words in queries:
            assert _load_tag_stats(s, TEAM, tags, words) == grouped_tag_stats(s, TEAM, tags, words), tags
        # Ties at the RELATED_TAGS_PER_TAG boundary do occur in this data (so their order was checked).
        top = sorted(kept(s).items(), key=lambda item: -item[1])
        postgres = [count for (tag, other), count in top if tag == "postgres" and other]
        assert len(postgres) > RELATED_TAGS_PER_TAG
        assert postgres[RELATED_TAGS_PER_TAG - 1] == postgres[RELATED_TAGS_PER_TAG]
    assert in_step(store)


def test_related_tags_tie_by_name_in_code_point_order(store):
    with store.session() as s:
        ask(s, "k0", ["postgres", "zsh", "émail"])  # 12 tags asked once with postgres: 10 are read
        ask(s, "k1", ["postgres", "c++", "c-lang", "c.net", "c", "cpp", "email", "α-beta", "node.js", "node-js"])
        stats = _load_tag_stats(s, TEAM, ["postgres"], "")
        names = sorted(tag for pair in stats.pair_counts for tag in pair if tag != "postgres")
        assert names == ["c", "c++", "c-lang", "c.net", "cpp", "email", "node-js", "node.js", "zsh", "émail"]
        assert stats == grouped_tag_stats(s, TEAM, ["postgres"], "")


def test_tag_names_compare_bytewise_on_postgresql(store):
    """Alembic's check does not compare collations: the migration and the model must both say "C"."""
    with store.session() as s:
        if s.get_bind().dialect.name != "postgresql":
            pytest.skip("SQLite compares text bytewise (BINARY) by default")
        collations = s.execute(
            text(
                "SELECT column_name, collation_name FROM information_schema.columns "
                "WHERE table_name = 'tag_stats' AND column_name IN ('tag', 'other_tag')"
            )
        ).all()
        assert sorted(collations) == [("other_tag", "C"), ("tag", "C")]
        s.execute(text("SET LOCAL enable_seqscan = off"))  # an empty table: show what the index can do
        plan = "\n".join(
            s.execute(
                text(
                    "EXPLAIN SELECT tag, other_tag, questions FROM tag_stats WHERE team_id = 'T1' AND tag = 'ops' "
                    "AND other_tag <> '' ORDER BY questions DESC, other_tag LIMIT 10"
                )
            ).scalars()
        )
        assert "ix_tag_stats_related" in plan and "Sort" not in plan  # read in index order, stopped early


def test_the_migration_counts_the_questions_already_stored(store):
    from alembic import command

    from models.migrate import alembic_config

    random_questions(store, seed=3, n=40)
    with store.session() as s:
        before = kept(s), kept(s, "T2")
    config = alembic_config(store.engine)
    command.downgrade(config, "0011@-1")
    command.upgrade(config, "0011")
    with store.session() as s:
        assert (kept(s), kept(s, "T2")) == before
    assert in_step(store)


# --- PostgreSQL: writers at the same time ------------------------------------------------------------------------


def postgresql_only(database_url: str) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("SQLite runs one writing transaction at a time (BEGIN IMMEDIATE): there is no race")


def test_questions_stored_at_the_same_time_all_count(store, database_url):
    """Writers adding to the same rows (tags given in any order) wait for each other and never deadlock."""
    postgresql_only(database_url)
    failures: list[BaseException] = []

    def writer(n: int) -> None:
        rng = random.Random(n)
        try:
            for i in range(15):
                tags = rng.sample(VOCABULARY[:5], 4)
                with store.session() as s:
                    ask(s, f"w{n}-{i}", tags)
                    time.sleep(0.001)  # hold the rows a moment, as a transaction does
        except BaseException as exc:  # reported below, with the test's assertion
            failures.append(exc)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert failures == []
    with store.session() as s:
        assert kept(s)[("", "")] == 60
    assert in_step(store)


def test_a_question_stored_during_a_rebuild_counts_once(store, database_url):
    """A question stored while a workspace is recounted waits for the rebuild, then counts on its rows, once."""
    postgresql_only(database_url)
    with store.session() as s:
        ask(s, "k0", ["postgres", "ops"])
    stored = threading.Event()

    def store_a_question() -> None:
        with store.session() as s:
            s.execute(text("SET application_name = 'storing a question'"))
            ask(s, "k1", ["postgres", "k8s"])
        stored.set()

    with store.session() as rebuild:
        rebuild_tag_stats(rebuild, TEAM)
        writer = threading.Thread(target=store_a_question)
        writer.start()
        deadline = time.monotonic() + 5
        while not waiting_for_a_lock(store, "storing a question"):
            assert not stored.is_set(), "the question was stored while question_tags was being recounted"
            assert time.monotonic() < deadline, "the storing transaction neither waited nor finished"
            time.sleep(0.01)  # between looks
    writer.join(10)
    assert stored.is_set()
    with store.session() as s:
        assert kept(s)[("", "")] == 2 and kept(s)[("postgres", "")] == 2
    assert in_step(store)


def test_a_rebuild_started_while_a_question_is_stored_waits_for_it(store, database_url):
    """Without the lock, the rebuild's DELETE would wait for the question's rows, miss the rows its transaction
    added meanwhile (new tags), and its INSERT would then collide with them."""
    postgresql_only(database_url)
    with store.session() as s:
        ask(s, "k0", ["postgres", "ops"])
    failures: list[BaseException] = []

    def rebuild() -> None:
        try:
            with store.session() as s:
                s.execute(text("SET application_name = 'rebuilding'"))
                rebuild_tag_stats(s, TEAM)
        except BaseException as exc:  # reported below, with the test's assertion
            failures.append(exc)

    with store.session() as s:
        ask(s, "k1", ["postgres", "k8s"])  # ('', '') and postgres counted again, k8s rows new
        rebuilder = threading.Thread(target=rebuild)
        rebuilder.start()
        deadline = time.monotonic() + 5
        while not waiting_for_a_lock(store, "rebuilding"):
            assert rebuilder.is_alive(), "the rebuild did not wait for the question being stored"
            assert time.monotonic() < deadline, "the rebuild neither waited nor finished"
            time.sleep(0.01)  # between looks
    rebuilder.join(10)
    assert failures == []
    with store.session() as s:
        assert kept(s)[("", "")] == 2 and kept(s)[("k8s", "postgres")] == 1
    assert in_step(store)


def waiting_for_a_lock(store: Store, application_name: str) -> bool:
    with store.engine.connect() as conn:
        waits = conn.execute(
            text("SELECT wait_event_type FROM pg_stat_activity WHERE application_name = :name"),
            {"name": application_name},
        ).scalars()
        return "Lock" in list(waits)


# --- through the Slack boundary --------------------------------------------------------------------------------

GENERAL = "C_GENERAL"
PEOPLE = ("U_ASKER", "U_EXPERT", "U_FAN")


def test_asks_a_redelivered_ask_and_forget_user_keep_the_counts_routing_reads(slack):
    for user in PEOPLE:
        slack.add_user(user)
    slack.add_channel(GENERAL, name="general", members=list(PEOPLE))
    slack.ask("U_ASKER", "How do I vacuum a big table? #postgres #ops", GENERAL)
    slack.ask("U_FAN", "Which index suits a jsonb column? #postgres #jsonb", GENERAL)
    slack.ask("U_EXPERT", "Rolling deploys without downtime on k8s? #ops #k8s #postgres", GENERAL)
    slack.ask("U_ASKER", "Where do I find the on-call rota?", GENERAL)  # no tags: counts in the workspace only
    # Slack sends the same command again (its first ack was late): one question, counted once.
    fields = slack.fake.command_fields(
        "U_FAN", "Is c++ or node.js faster at parsing json? #c++ #node.js", GENERAL, channel_name="general"
    )
    since = slack.fake.mark()
    assert slack.sender.slash_command(fields).status == 200
    assert slack.sender.slash_command(fields).status == 200
    slack.wait_post(GENERAL, since=since)  # the question is posted once the worker took it (settle alone may be early)
    slack.settle()
    store = slack.runtime.store
    with store.session() as s:
        forget_user(s, "T0001", "U_ASKER")  # their questions stay, anonymised, with their tags
    slack.settle()

    with store.session() as s:
        questions = s.scalars(select(Question)).all()
        assert len(questions) == 5
        assert kept(s, "T0001")[("", "")] == 5 and kept(s, "T0001")[("postgres", "")] == 3
        for question in questions:
            tags = question.tag_names
            assert _load_tag_stats(s, "T0001", tags, question.text) == grouped_tag_stats(
                s, "T0001", tags, question.text
            )
        words = "vacuum ops k8s json c++ node.js jsonb"
        assert _load_tag_stats(s, "T0001", ["postgres"], words) == grouped_tag_stats(s, "T0001", ["postgres"], words)
    assert in_step(store, "T0001")
