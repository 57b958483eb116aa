"""The stats rollup (issue 21), on SQLite and PostgreSQL: kept up to date by every change a conversation in
Slack makes (asks, answers, an accept, a moved accept, a deleted answer, a redelivery, "This answers it",
forget-user), equal row for row to a rebuild from scratch, filled by its migration; and the report read from it
equal to the one computed from every question (counts exactly, medians within the documented bound)."""

from __future__ import annotations

import itertools
import random
import statistics
from datetime import UTC, datetime, timedelta

import pytest
from alembic import command
from sqlalchemy import func, select

from bot import stats
from bot.messages.suggestions import ACTION_SIMILAR_ANSWERS_IT
from bot.playground.emulator.fake_api import TEAM_ID
from bot.runtime.cli import forget_user
from models.migrate import alembic_config
from models.question import RESOLUTION_SIMILAR, STATUS_OPEN, Answer, Question, QuestionTag
from models.session import Store
from models.stats_rollup import (
    BOUNDS,
    BUCKETS,
    HIGHEST,
    LOWEST,
    MEDIAN_RELATIVE_ERROR,
    QuestionStats,
    bucket_of,
    median_of,
    periods,
    rebuild_stats,
    stats_rollup,
)
from tests.route_helpers import GENERAL, add_people, bot_maker, buttons, question_of
from tests.slack.fixtures import START

MIN = 60.0


def rollup_rows(store: Store, team_id: str) -> dict[tuple, tuple]:
    """Every rollup row of a workspace that counts something, keyed by (span, first day, tag)."""
    with store.session() as s:
        rows = s.execute(select(stats_rollup).where(stats_rollup.c.team_id == team_id)).all()
    return {tuple(row[1:4]): tuple(row[4:]) for row in rows if any(row[4:])}


def rebuilt(store: Store, team_id: str) -> dict[tuple, tuple]:
    with store.session() as s:
        rebuild_stats(s, team_id)
    return rollup_rows(store, team_id)


def close_enough(estimate: float | None, exact: float | None) -> bool:
    """The documented bound, loosened for an even count (the upper middle value is at most twice the median)."""
    if exact is None or estimate is None:
        return estimate is exact
    return abs(estimate - exact) <= LOWEST + 2 * MEDIAN_RELATIVE_ERROR * exact + 1e-6


def assert_figures_match(rollup: stats.Figures, exact: stats.Figures, where: str) -> None:
    counts = (rollup.asked, rollup.answered, rollup.accepted, rollup.answered_by_knowledge_base)
    assert counts == (exact.asked, exact.answered, exact.accepted, exact.answered_by_knowledge_base), where
    assert close_enough(rollup.median_first_answer, exact.median_first_answer), (where, rollup, exact)
    assert close_enough(rollup.median_accepted, exact.median_accepted), (where, rollup, exact)


def assert_report_matches_exact(store: Store, team_id: str, since: datetime, until: datetime) -> stats.Report:
    with store.session() as s:
        report = stats.build_report(s, team_id, since, until, until)
        exact = stats.build_report_exact(s, team_id, since, until, until)
    assert_figures_match(report.overall, exact.overall, "overall")
    assert [t.tag for t in report.tags] == [t.tag for t in exact.tags]
    for mine, theirs in zip(report.tags, exact.tags, strict=True):
        assert_figures_match(mine.figures, theirs.figures, mine.tag)
        assert (mine.experts, mine.available_experts) == (theirs.experts, theirs.available_experts)
    assert [w.start for w in report.trend] == [w.start for w in exact.trend]
    for mine_week, their_week in zip(report.trend, exact.trend, strict=True):
        assert_figures_match(mine_week.figures, their_week.figures, str(mine_week.start))
    assert [(g.tag, g.asked, g.unanswered) for g in report.gaps] == [(g.tag, g.asked, g.unanswered) for g in exact.gaps]
    return report


# --- the histogram ------------------------------------------------------------------------------------------


def test_buckets_are_log_spaced_and_the_median_error_is_what_the_docstring_says():
    assert len(BOUNDS) == BUCKETS - 1 and BOUNDS[0] == LOWEST and BOUNDS[-1] == HIGHEST
    assert all(low < high for low, high in itertools.pairwise(BOUNDS))
    assert 0.2 < MEDIAN_RELATIVE_ERROR < 0.25
    assert [bucket_of(s) for s in (0, LOWEST - 0.001, LOWEST, BOUNDS[1], HIGHEST, 10 * HIGHEST)] == [
        0,
        0,
        1,
        2,
        BUCKETS - 1,
        BUCKETS - 1,
    ]


def bounded(values: list[float]) -> None:
    histogram = [0] * BUCKETS
    for value in values:
        histogram[bucket_of(value)] += 1
    ordered = sorted(values)
    exact = statistics.median(ordered)
    upper = ordered[len(ordered) // 2]  # the upper middle value (the middle one for an odd count)
    estimate = median_of(histogram)
    assert estimate is not None
    assert abs(estimate - exact) <= max(LOWEST, MEDIAN_RELATIVE_ERROR * upper) + 1e-6, (values, estimate, exact)


def test_the_median_read_from_a_histogram_stays_within_the_bound():
    assert median_of([0] * BUCKETS) is None
    rng = random.Random(21)
    errors = []
    for size in (1, 2, 3, 4, 5, 10, 11, 50, 200, 1001):
        for _ in range(40):
            # Minutes to days, log-normally spread as answer times are; now and then under LOWEST.
            values = [min(rng.lognormvariate(7.5, 1.6), HIGHEST - 1) for _ in range(size)]
            bounded(values)
            if size >= 50:
                histogram = [0] * BUCKETS
                for value in values:
                    histogram[bucket_of(value)] += 1
                errors.append(abs(median_of(histogram) - statistics.median(values)) / statistics.median(values))
    bounded([5.0, 29.0, 31.0])  # around the linear bucket
    bounded([BOUNDS[10], BOUNDS[11] - 0.001])  # both ends of one bucket
    assert statistics.median(errors) < 0.03  # typically far inside the bound, for many values


def test_periods_tile_whole_days_with_the_fewest_aligned_spans():
    monday = 20_416  # Monday 2025-11-24, the first day of a 28-day period ((20_416 - 4) % 28 == 0)
    assert periods(monday, monday + 37) == [(28, monday), (7, monday + 28), (1, monday + 35), (1, monday + 36)]
    assert periods(monday + 1, monday + 8) == [(1, monday + d) for d in range(1, 7)] + [(1, monday + 7)]
    for first in range(monday, monday + 30):
        for end in range(first, first + 400, 37):
            tiles = periods(first, end)
            covered = [day for span, start in tiles for day in range(start, start + span)]
            assert covered == list(range(first, end))
            assert all((start - 4) % span == 0 for span, start in tiles)
            assert len(tiles) <= 2 * 6 + 2 * 3 + (end - first) // 28 + 1


# --- a conversation in Slack ----------------------------------------------------------------------------------


@pytest.fixture
def make_bot(fake_slack, database_url, slack_clock):
    yield from bot_maker(fake_slack, database_url, slack_clock)


@pytest.fixture
def bot(make_bot):
    bot = make_bot()
    add_people(bot.world, U_ASKER="UTC", U_ANA="UTC", U_BEN="UTC", U_CAT="UTC", U_NEW="UTC")
    return bot


def test_a_conversation_keeps_the_rollup_equal_to_a_rebuild_and_the_report_to_the_exact_one(bot):
    world, clock, store = bot.world, bot.clock, bot.store

    def later(minutes: float) -> None:
        clock.advance(timedelta(minutes=minutes))

    first = world.ask("U_ASKER", "How do I vacuum a big table without locking it? #postgres #ops", GENERAL)
    later(12)
    early = world.reply("U_ANA", first, "pg_repack.")
    later(30)
    better = world.reply("U_BEN", first, "pg_repack rebuilds it online; only a short lock at the end.")
    world.react("U_ASKER", "white_check_mark", GENERAL, early)
    later(5)
    world.react("U_ASKER", "white_check_mark", GENERAL, better)  # the accept moves to the better answer
    world.unreact("U_ASKER", "white_check_mark", GENERAL, better)  # … and back to the first one
    world.react("U_ASKER", "white_check_mark", GENERAL, better)

    clock.set(START + timedelta(days=1, hours=3))
    second = world.ask("U_NEW", "Why does my deploy hang on the migration step? #ops", GENERAL)
    later(3)
    wrong = world.reply("U_CAT", second, "Check the lock on the table?")
    later(40)
    world.reply("U_ANA", second, "A long transaction holds the lock: find it in pg_stat_activity.")
    reaction = world.react("U_NEW", "white_check_mark", GENERAL, wrong)
    world.send_event(  # Slack delivers the accept again
        {"type": "reaction_added", "user": "U_NEW", "reaction": "white_check_mark", "item_user": "U_CAT",
         "item": {"type": "message", "channel": GENERAL, "ts": wrong}},
        event_id=reaction.meta["event_id"],
        retry_num=1,
    )  # fmt: skip
    world.delete("U_CAT", GENERAL, wrong)  # the accepted answer and the first one go: the question is open again
    world.settle()
    assert question_of(store, second).status == STATUS_OPEN

    clock.set(START + timedelta(days=2, hours=5))
    world.ask("U_ASKER", "Is there a linter for Terraform? #terraform", GENERAL)  # never answered
    similar = world.ask("U_NEW", "How do I vacuum a big table without locking it for long? #postgres", GENERAL)
    world.settle()
    similar_id = question_of(store, similar).id
    value = next(
        v
        for e in world.ephemerals("U_NEW")
        for a, v in buttons(e)
        if a == ACTION_SIMILAR_ANSWERS_IT and v.startswith(f"{similar_id}:")
    )
    world.click("U_NEW", ACTION_SIMILAR_ANSWERS_IT, value)  # resolved by the earlier question: answered
    world.settle()
    assert question_of(store, similar).resolution == "similar"
    later(30)
    late = world.reply("U_CAT", similar, "Or VACUUM it in a quiet hour.")  # a first answer, accepted…
    world.react("U_NEW", "white_check_mark", GENERAL, late)
    world.unreact("U_NEW", "white_check_mark", GENERAL, late)  # … and taken back: answered by the earlier one again
    world.settle()
    assert question_of(store, similar).answered_by_earlier

    week = (START - timedelta(days=7), START + timedelta(days=7))
    kept = rollup_rows(store, TEAM_ID)
    assert kept and kept == rebuilt(store, TEAM_ID)
    report = assert_report_matches_exact(store, TEAM_ID, *week)
    overall = report.overall
    assert (overall.asked, overall.answered, overall.accepted, overall.answered_by_knowledge_base) == (4, 3, 1, 1)
    assert {t.tag: t.figures.asked for t in report.tags} == {"postgres": 2, "ops": 2, "terraform": 1}
    # Windows that cut days: the hours outside whole days come from the questions.
    for start, end in (
        (START + timedelta(minutes=20), START + timedelta(days=2, hours=6)),
        (START - timedelta(hours=1), START + timedelta(hours=23)),
        (START + timedelta(hours=1), START + timedelta(days=1, hours=4)),
    ):
        assert_report_matches_exact(store, TEAM_ID, start, end)

    assert forget_user(store, TEAM_ID, "U_ASKER", dry_run=False) == 0  # their accepts go; the figures stay
    assert rollup_rows(store, TEAM_ID) == kept == rebuilt(store, TEAM_ID)
    assert_report_matches_exact(store, TEAM_ID, *week)


# --- rebuild and the migration -------------------------------------------------------------------------------


@pytest.fixture
def store(database_url):
    store = Store.from_url(database_url)
    yield store
    store.dispose()


def add_questions(store: Store, team_id: str, count: int, seed: int) -> None:
    """Questions over ten weeks with random answers, accepts and deletions, written as rows; some resolved ones
    the asker said an earlier question answers ("This answers it"), a few of those with an answer accepted since."""
    rng = random.Random(seed)
    base = datetime(2026, 9, 1, tzinfo=UTC)
    with store.session() as s:
        for n in range(count):
            created = base + timedelta(minutes=rng.randrange(70 * 24 * 60), seconds=rng.random())
            status = rng.choice(["open", "resolved", "resolved", "posting", "unposted"])
            question = Question(
                team_id=team_id,
                channel_id="C1",
                asker_id="U_A",
                text=f"q{n}",
                status=status,
                message_ts=f"{seed}.{n}",
                request_key=f"{seed}-{n}",
                created_at=created,
                tags=[
                    QuestionTag(tag=tag, team_id=team_id, position=i)
                    for i, tag in enumerate(rng.sample(["a", "b", "c", "d"], rng.randrange(3)))
                ],
            )
            s.add(question)
            s.flush()
            answers = []
            for i in range(rng.randrange(4)):
                at = created + timedelta(seconds=rng.lognormvariate(7, 2))
                deleted = at + timedelta(minutes=1) if rng.random() < 0.2 else None
                answers.append(
                    Answer(
                        team_id=team_id,
                        question_id=question.id,
                        channel_id="C1",
                        ts=f"{seed}.{n}.{i}",
                        user_id="U_B",
                        text="a",
                        created_at=at,
                        deleted_at=deleted,
                    )
                )
            s.add_all(answers)
            s.flush()
            if status == "resolved" and answers and rng.random() < 0.8:
                question.accepted_answer_id = rng.choice(answers).id
            if status == "resolved" and rng.random() < 0.4:
                question.resolution, question.resolution_ref = RESOLUTION_SIMILAR, "question:1"


def test_a_rebuild_matches_the_exact_report_on_any_window(store):
    add_questions(store, "T1", 300, seed=1)
    add_questions(store, "T2", 50, seed=2)
    with store.session() as s:
        asked = s.scalar(
            select(func.count()).where(Question.team_id == "T1", Question.status.in_(["open", "resolved"]))
        )
        assert rebuild_stats(s, "T1") == asked
    assert_report_matches_exact(store, "T1", datetime(2026, 9, 1, tzinfo=UTC), datetime(2026, 11, 10, tzinfo=UTC))
    assert_report_matches_exact(
        store, "T1", datetime(2026, 9, 3, 7, 13, tzinfo=UTC), datetime(2026, 10, 29, 18, 2, tzinfo=UTC)
    )
    assert_report_matches_exact(store, "T1", datetime(2026, 9, 9, 1, tzinfo=UTC), datetime(2026, 9, 9, 5, tzinfo=UTC))
    assert rollup_rows(store, "T2") == {}  # rebuilt one workspace only


def test_the_buckets_the_database_computes_are_bucket_of(store):
    with store.session() as s:
        question = Question(
            team_id="T1",
            channel_id="C1",
            asker_id="U_A",
            text="q",
            status="open",
            request_key="k",
            created_at=datetime(2026, 9, 1, 12, tzinfo=UTC),
        )
        s.add(question)
    samples = [0.5, LOWEST - 0.25, LOWEST, BOUNDS[1] - 0.25, BOUNDS[1], BOUNDS[30], BOUNDS[30] + 0.25, HIGHEST + 1]
    for seconds in samples:
        with store.session() as s:
            s.query(Answer).delete()
            s.add(
                Answer(
                    team_id="T1",
                    question_id=question.id,
                    channel_id="C1",
                    ts="1.1",
                    user_id="U_B",
                    text="a",
                    created_at=question.created_at + timedelta(seconds=seconds),
                )
            )
            s.flush()
            rebuild_stats(s, "T1")
            assert s.scalar(select(QuestionStats.first_bucket)) == bucket_of(seconds), seconds


def test_the_migration_fills_the_rollup_from_existing_questions(store):
    config = alembic_config(store.engine)
    command.downgrade(config, "0012@0001")  # this branch only: the rollup's tables go
    try:
        add_questions(store, "T1", 120, seed=3)
        add_questions(store, "T2", 40, seed=4)
    finally:
        command.upgrade(config, "heads")
    filled = {team: rollup_rows(store, team) for team in ("T1", "T2")}
    assert filled["T1"] and filled["T2"]
    by_earlier = stats_rollup.c.keys().index("answered_by_earlier") - 4  # the figures after the row's key
    overall = {team: [v for (span, _, tag), v in filled[team].items() if span == 112 and tag == ""] for team in filled}
    assert all(sum(v[by_earlier] for v in rows) for rows in overall.values())  # 0020 filled it
    assert filled == {team: rebuilt(store, team) for team in ("T1", "T2")}
