"""Analytics on a hand-checked fixture (SQLite and PostgreSQL), and the `stats` verb's three formats.

The fixture, team T1, window [2026-11-01, 2026-11-29) (4 weeks; Nov 2, 9, 16 and 23 are Mondays).
Minutes are from the question to each answer; * marks the accepted one; x a deleted answer.

    Q1  Mon 11-02 09:00  #postgres            answers +10 (U_B), +30* (U_C)      resolved
    Q2  Tue 11-03 10:00  #postgres #ops       answers +20* (U_B)                  resolved
    Q3  Tue 11-10 12:00  #postgres            answers +60x (U_C), +90 (U_B)       open
    Q4  Sun 11-15 23:30  #kubernetes          no answer                           open
    Q5  Tue 11-17 08:00  #kubernetes #ops     answers +5* (U_B)                   resolved
    Q6  Wed 11-18 08:00  #kubernetes          no answer                           open
    Q7  Tue 11-24 09:00  (no tag)             answers +40* (U_C)                  resolved
    Q8  Wed 11-25 10:00  (no tag)             no answer: "This answers it" on an  resolved
                                              earlier question (routing, issue 3)
    not counted: a question still being posted (11-20), one before the window (10-20), one in team T2.

By hand:
    overall   asked 8, answered 6 (Q8 counts, but has no time to first answer: Q1 10, Q2 20, Q3 90, Q5 5,
              Q7 40 → median 20 min); accepted 4 (Q1 30, Q2 20, Q5 5, Q7 40) → median (20 + 30) / 2 = 25 min.
    postgres  asked 3, answered 3: 10, 20, 90 → 20 min; accepted 30, 20 → 25 min.
    ops       asked 2, answered 2: 20, 5 → 12.5 min; accepted 20, 5 → 12.5 min.
    kubernetes asked 3, answered 1: 5 → 5 min; accepted 5 → 5 min.
    weeks     10-26: nothing · 11-02: Q1 Q2 → first (10+20)/2 = 15, accepted (30+20)/2 = 25
              11-09: Q3 Q4 (Sunday 23:30 is still that week) → asked 2, answered 1, first 90, no accepted
              11-16: Q5 Q6 → asked 2, answered 1, 5 / 5 · 11-23: Q7 Q8 → asked 2, answered 2, 40 / 40
    experts   postgres: U_B, U_C (U_C paused past the window's end) → 2 declared, 1 available
              kubernetes: U_D (deactivated) → 1 declared, 0 available; terraform: U_E → 1, 1, never asked
    gaps      (capacity 5 questions per available expert per week × 4 weeks = 20 each)
              kubernetes: 3 asked, none available → unmet 3; ops: 2 asked, none available → unmet 2;
              postgres: 3 asked ≤ 20 → no gap. The suggestion names #kubernetes.
"""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import text

from bot import stats, stats_render
from bot.clock import FrozenClock
from bot.runtime import cli
from models.expert import FORGOTTEN_USER_ID, Expertise, Person
from models.lesson import Lesson
from models.question import STATUS_OPEN, STATUS_POSTING, STATUS_RESOLVED, Answer, Question, QuestionTag, Vote
from models.session import Store
from models.stats_rollup import LOWEST, MEDIAN_RELATIVE_ERROR, rebuild_stats
from models.top_helpers import Helper, top_helpers
from models.workspace import Workspace

SINCE = datetime(2026, 11, 1, tzinfo=UTC)
UNTIL = datetime(2026, 11, 29, tzinfo=UTC)
MIN = 60.0


def at(day: int, hour: int, minute: int = 0, month: int = 11) -> datetime:
    return datetime(2026, month, day, hour, minute, tzinfo=UTC)


class Fixture:
    """Writes questions with their answers the way the bot stores them."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.count = 0

    def question(
        self,
        created: datetime,
        tags: list[str],
        answers: list[tuple[str, int, str]] = (),  # type: ignore[assignment]
        *,
        team: str = "T1",
        status: str | None = None,
        asker: str = "U_A",
    ) -> int:
        """answers: (user, minutes after the question, "" | "accepted" | "deleted")."""
        self.count += 1
        n = self.count
        accepted = any(flag == "accepted" for _, _, flag in answers)
        with self.store.session() as s:
            q = Question(
                team_id=team,
                channel_id="C1",
                asker_id=asker,
                text=f"question {n}",
                status=status or (STATUS_RESOLVED if accepted else STATUS_OPEN),
                message_ts=f"{n}.000",
                request_key=f"req-{n}",
                created_at=created,
                tags=[QuestionTag(tag=tag, team_id=team, position=i) for i, tag in enumerate(tags)],
            )
            s.add(q)
            s.flush()
            for i, (user, minutes, flag) in enumerate(answers):
                when = created + timedelta(minutes=minutes)
                answer = Answer(
                    team_id=team,
                    question_id=q.id,
                    channel_id="C1",
                    ts=f"{n}.{i + 1:03d}",
                    user_id=user,
                    text=f"answer {n}.{i + 1}",
                    created_at=when,
                    deleted_at=when + timedelta(minutes=1) if flag == "deleted" else None,
                )
                s.add(answer)
                s.flush()
                if flag == "accepted":
                    q.accepted_answer_id = answer.id
                    q.resolved_at = when + timedelta(hours=2)  # the asker clicks later: not what is measured
            return q.id


@pytest.fixture
def store(database_url):
    store = Store.from_url(database_url)
    yield store
    store.dispose()


@pytest.fixture
def fixture(store) -> Fixture:
    f = Fixture(store)
    f.question(at(2, 9), ["postgres"], [("U_B", 10, ""), ("U_C", 30, "accepted")])
    f.question(at(3, 10), ["postgres", "ops"], [("U_B", 20, "accepted")])
    f.question(at(10, 12), ["postgres"], [("U_C", 60, "deleted"), ("U_B", 90, "")])
    f.question(at(15, 23, 30), ["kubernetes"])
    f.question(at(17, 8), ["kubernetes", "ops"], [("U_B", 5, "accepted")])
    f.question(at(18, 8), ["kubernetes"])
    f.question(at(24, 9), [], [("U_C", 40, "accepted")])
    f.question(at(25, 10), [], status=STATUS_RESOLVED)
    f.question(at(20, 8), ["postgres"], status=STATUS_POSTING)
    f.question(at(20, 8, month=10), ["postgres"], [("U_B", 1, "accepted")])
    f.question(at(20, 8), ["postgres"], [("U_B", 1, "accepted")], team="T2")
    with store.session() as s:
        s.add_all(
            [
                Workspace(team_id="T1", created_at=at(1, 0, month=10)),
                Workspace(team_id="T2", created_at=at(1, 0, month=10)),
                Expertise(team_id="T1", user_id="U_B", tag="postgres", declared_at=at(1, 0, month=10)),
                Expertise(team_id="T1", user_id="U_C", tag="postgres", declared_at=at(1, 0, month=10)),
                Expertise(team_id="T1", user_id="U_D", tag="kubernetes", declared_at=at(1, 0, month=10)),
                Expertise(team_id="T1", user_id="U_E", tag="terraform", declared_at=at(1, 0, month=10)),
                Expertise(team_id="T2", user_id="U_X", tag="kubernetes", declared_at=at(1, 0, month=10)),
                Person(team_id="T1", user_id="U_C", paused_until=UNTIL + timedelta(days=3)),
                Person(team_id="T1", user_id="U_D", deleted=True),
                Person(team_id="T1", user_id="U_E", paused_until=SINCE),  # a pause that is over
            ]
        )
    rebuild(store)
    return f


def rebuild(store: Store) -> None:
    """The rows above were written directly, not through the bot's upkeep: build the stats rollup from them."""
    with store.session() as s:
        for team in ("T1", "T2"):
            rebuild_stats(s, team)


def about(minutes: float) -> object:
    """A median read from the rollup's histograms: within its documented bound of the exact one (loosened
    for an even count, whose upper middle value is at most twice the median)."""
    return pytest.approx(minutes * MIN, abs=LOWEST + 2 * MEDIAN_RELATIVE_ERROR * minutes * MIN)


def report_of(store: Store, build=stats.build_report) -> stats.Report:  # type: ignore[no-untyped-def]
    with store.session() as s:
        if s.get_bind().dialect.name == "postgresql":
            # Weeks are UTC weeks whatever the connection's time zone (Q4 is Monday already in Auckland).
            s.execute(text("SET TIME ZONE 'Pacific/Auckland'"))
        return build(s, "T1", SINCE, UNTIL, UNTIL)


def test_the_exact_computation_gives_the_hand_computed_medians(store, fixture):
    def minutes(figures: stats.Figures) -> tuple[float | None, float | None]:
        values = (figures.median_first_answer, figures.median_accepted)
        return tuple(None if v is None else round(v / MIN, 4) for v in values)  # type: ignore[return-value]

    report = report_of(store, stats.build_report_exact)
    assert minutes(report.overall) == (20, 25)
    assert {t.tag: minutes(t.figures) for t in report.tags} == {
        "postgres": (20, 25),
        "ops": (12.5, 12.5),
        "kubernetes": (5, 5),
        "terraform": (None, None),
    }
    assert [minutes(w.figures) for w in report.trend] == [(None, None), (15, 25), (90, None), (5, 5), (40, 40)]


def test_overall_figures_match_the_hand_computed_ones(store, fixture):
    overall = report_of(store).overall
    assert (overall.asked, overall.answered, overall.accepted) == (8, 6, 4)
    assert overall.answer_rate == pytest.approx(6 / 8)
    assert overall.median_first_answer == about(20)
    assert overall.median_accepted == about(25)


def test_per_tag_figures_and_experts(store, fixture):
    tags = {t.tag: t for t in report_of(store).tags}
    assert list(tags) == ["postgres", "kubernetes", "ops", "terraform"]  # most asked first, then most experts
    postgres, ops, kubernetes = tags["postgres"], tags["ops"], tags["kubernetes"]
    assert (postgres.figures.asked, postgres.figures.answered, postgres.figures.accepted) == (3, 3, 2)
    assert postgres.figures.median_first_answer == about(20)
    assert postgres.figures.median_accepted == about(25)
    assert (ops.figures.asked, ops.figures.answered) == (2, 2)
    assert ops.figures.median_first_answer == about(12.5)
    assert ops.figures.median_accepted == about(12.5)
    assert (kubernetes.figures.asked, kubernetes.figures.answered) == (3, 1)
    assert kubernetes.figures.median_first_answer == about(5)
    assert (postgres.experts, postgres.available_experts) == (2, 1)
    assert (kubernetes.experts, kubernetes.available_experts) == (1, 0)
    assert (ops.experts, ops.available_experts) == (0, 0)
    terraform = tags["terraform"]
    assert (terraform.figures.asked, terraform.experts, terraform.available_experts) == (0, 1, 1)


def test_knowledge_gaps_and_the_lunch_and_learn_suggestion(store, fixture):
    report = report_of(store)
    assert [(g.tag, g.asked, g.unanswered, g.available_experts, g.unmet) for g in report.gaps] == [
        ("kubernetes", 3, 2, 0, 3.0),
        ("ops", 2, 0, 0, 2.0),
    ]
    assert report.suggestion is not None
    assert report.suggestion.startswith("Run a lunch-and-learn on #kubernetes: 3 questions")


def test_weekly_trend_in_utc_weeks(store, fixture):
    trend = {w.start: w.figures for w in report_of(store).trend}
    assert list(trend) == [
        date(2026, 10, 26),
        date(2026, 11, 2),
        date(2026, 11, 9),
        date(2026, 11, 16),
        date(2026, 11, 23),
    ]
    assert trend[date(2026, 10, 26)] == stats.Figures()
    first = trend[date(2026, 11, 2)]
    assert (first.asked, first.answered, first.accepted) == (2, 2, 2)
    assert first.median_first_answer == about(15)
    assert first.median_accepted == about(25)
    second = trend[date(2026, 11, 9)]
    assert (second.asked, second.answered, second.accepted) == (2, 1, 0)
    assert second.median_first_answer == about(90)
    assert second.median_accepted is None
    assert (trend[date(2026, 11, 16)].asked, trend[date(2026, 11, 23)].asked) == (2, 2)
    assert trend[date(2026, 11, 23)].answered == 2
    assert trend[date(2026, 11, 23)].median_accepted == about(40)


def test_an_empty_window_has_no_figures_and_no_gaps(store, fixture):
    with store.session() as s:
        report = stats.build_report(s, "T1", at(1, 0, month=9), at(8, 0, month=9), UNTIL)
    assert report.overall == stats.Figures()
    assert report.overall.answer_rate is None
    assert report.gaps == [] and report.suggestion is None
    assert {t.tag for t in report.tags} == {"postgres", "kubernetes", "terraform"}  # experts still listed


def test_an_overloaded_expert_is_a_gap_too():
    busy = stats.TagFigures("postgres", stats.Figures(asked=12, answered=10), experts=2, available_experts=1)
    fine = stats.TagFigures("git", stats.Figures(asked=5, answered=5), experts=1, available_experts=1)
    gaps = stats.find_gaps([busy, fine], timedelta(days=7))
    assert [(g.tag, g.unmet, g.reason) for g in gaps] == [
        ("postgres", 7.0, "12.0 questions per available go-to person")
    ]
    # Over four weeks the same expert can take 20: no gap.
    assert stats.find_gaps([busy], timedelta(days=28)) == []


def test_median_of_an_even_count_averages_the_two_middle_values(store):
    f = Fixture(store)
    for minutes in (1, 2, 3, 4, 100, 200):  # middle two: 3 and 4
        f.question(at(2, 9), ["x"], [("U_B", minutes, "")])
    rebuild(store)
    with store.session() as s:
        overall = stats.build_report(s, "T1", SINCE, UNTIL, UNTIL).overall
    assert overall.median_first_answer == about(3.5)


def vote(s, *, answer_id: int, voter: str, author: str, kind: str, when: datetime, reaction: str = "+1") -> None:
    s.add(
        Vote(
            team_id="T1",
            channel_id="C1",
            message_ts=f"v{answer_id}",
            voter_id=voter,
            reaction=reaction,
            kind=kind,
            author_id=author,
            answer_id=answer_id,
            created_at=when,
        )
    )


def test_top_helpers_and_person_stats(store):
    f = Fixture(store)
    q1 = f.question(at(2, 9), ["a"], [("U_B", 10, "accepted")])
    q2 = f.question(at(3, 9), ["a"], [("U_B", 10, "accepted"), ("U_C", 20, "")])
    q3 = f.question(at(4, 9), ["a"], [("U_C", 10, "accepted"), ("U_D", 15, "deleted")])
    f.question(at(5, 9), ["a"], [("U_B", 10, "")])
    with store.session() as s:
        answers = {(a.question_id, a.user_id): a.id for a in s.query(Answer)}
        vote(s, answer_id=answers[q1, "U_B"], voter="U_A", author="U_B", kind="accept", when=at(2, 10), reaction="ok")
        vote(s, answer_id=answers[q2, "U_B"], voter="U_A", author="U_B", kind="accept", when=at(3, 10), reaction="ok")
        vote(s, answer_id=answers[q2, "U_C"], voter="U_E", author="U_C", kind="helpful", when=at(3, 11))
        vote(s, answer_id=answers[q2, "U_C"], voter="U_F", author="U_C", kind="helpful", when=at(3, 11), reaction="ok")
        vote(s, answer_id=answers[q3, "U_C"], voter="U_A", author="U_C", kind="accept", when=at(4, 10), reaction="ok")
        vote(s, answer_id=answers[q1, "U_B"], voter="U_E", author="U_B", kind="helpful", when=at(2, 11))
        # Not counted: a vote on a deleted answer, one before the period, one for a forgotten author.
        vote(s, answer_id=answers[q3, "U_D"], voter="U_A", author="U_D", kind="helpful", when=at(4, 10))
        vote(s, answer_id=answers[q3, "U_C"], voter="U_G", author="U_C", kind="helpful", when=at(20, 10, month=10))
        anonymous = Answer(team_id="T1", question_id=q3, channel_id="C1", ts="9.9", user_id=FORGOTTEN_USER_ID)
        s.add(anonymous)
        anonymous.text, anonymous.created_at = "-", at(4, 12)
        s.flush()
        vote(s, answer_id=anonymous.id, voter="U_A", author=FORGOTTEN_USER_ID, kind="accept", when=at(4, 13))
        posted = Lesson(team_id="T1", channel_id="C1", author_id="U_B", text="l", message_ts="7.1", request_key="l1")
        unposted = Lesson(team_id="T1", channel_id="C1", author_id="U_B", text="l", request_key="l2")
        posted.created_at = unposted.created_at = at(5, 9)
        s.add_all([posted, unposted])
    with store.session() as s:
        helpers = top_helpers(s, "T1", SINCE, UNTIL, limit=5)
        assert helpers == ([Helper("U_B", 2, 1), Helper("U_C", 1, 1)], 2)
        assert top_helpers(s, "T1", SINCE, UNTIL, limit=1) == ([Helper("U_B", 2, 1)], 2)
        assert top_helpers(s, "T1", SINCE, UNTIL, limit=5, channel_id="C_OTHER") == ([], 0)
        # U_B: three live answers, two accepted, one helpful vote received, one posted lesson (one never posted).
        assert stats.person_stats(s, "T1", "U_B") == stats.PersonStats(
            answers=3, accepted=2, helpful_votes=1, lessons=1
        )
        assert stats.person_stats(s, "T1", "U_C") == stats.PersonStats(
            answers=2, accepted=1, helpful_votes=3, lessons=0
        )
        assert stats.person_stats(s, "T1", "U_NOBODY") == stats.PersonStats()


def test_parse_since_and_durations():
    now = datetime(2026, 11, 29, 12, tzinfo=UTC)
    assert stats.parse_since("30d", now) == now - timedelta(days=30)
    assert stats.parse_since("2w", now) == now - timedelta(weeks=2)
    assert stats.parse_since("48h", now) == now - timedelta(hours=48)
    assert stats.parse_since("2026-10-01", now) == datetime(2026, 10, 1, tzinfo=UTC)
    for bad in ("soon", "0d", "2027-01-01", "-3d"):
        with pytest.raises(ValueError):
            stats.parse_since(bad, now)
    durations = (None, 42, 59.6, 12.4 * MIN, 25 * MIN, 59.6 * MIN, 3 * 3600 + 5 * MIN, 2 * 86400 + 4 * 3600)
    assert [stats_render.duration_text(s) for s in durations] == [
        "—",
        "42s",
        "1m",
        "12m",
        "25m",
        "1h 00m",
        "3h 05m",
        "2d 4h",
    ]
    assert stats.weeks_between(at(2, 0), at(9, 0)) == [date(2026, 11, 2)]  # the end is exclusive
    assert stats.month_of(datetime(2026, 12, 31, 23, 59, tzinfo=UTC)) == (
        datetime(2026, 12, 1, tzinfo=UTC),
        datetime(2027, 1, 1, tzinfo=UTC),
    )


# --- the `stats` verb -----------------------------------------------------------------------------------


@pytest.fixture
def run_cli(database_url, monkeypatch, capsys):
    """`python app.py …` in-process, on the test's database, with the clock frozen at the window's end."""
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setattr("bot.clock.Clock", lambda: FrozenClock(UNTIL))
    for name in ("SLACK_BOT_TOKEN", "SLACK_APP_TOKEN", "SLACK_SIGNING_SECRET", "SLACK_CLIENT_ID"):
        monkeypatch.delenv(name, raising=False)

    def run(*argv: str) -> tuple[int, str, str]:
        code = cli.main(list(argv))
        out, err = capsys.readouterr()
        return code, out, err

    return run


def test_stats_verb_prints_json_csv_and_a_table(run_cli, fixture):
    code, out, _ = run_cli("stats", "--team", "T1", "--since", "28d", "--format", "json")
    assert code == 0
    data = json.loads(out)
    (workspace,) = data["workspaces"]
    assert workspace["team_id"] == "T1" and workspace["since"] == SINCE.isoformat()
    assert workspace["overall"]["asked"] == 8 and workspace["overall"]["median_accepted"] == about(25)
    assert workspace["overall"]["answer_rate"] == pytest.approx(6 / 8)
    assert workspace["gaps"][0]["tag"] == "kubernetes" and "lunch-and-learn" in workspace["suggestion"]
    assert [w["week"] for w in workspace["trend"]][1] == "2026-11-02"

    code, out, _ = run_cli("stats", "--team", "T1", "--since", "28d", "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(out)))
    value = {(r["section"], r["key"], r["metric"]): r["value"] for r in rows}
    assert value["overall", "", "asked"] == "8"
    assert float(value["tag", "ops", "median_first_answer"]) == about(12.5)
    assert value["tag", "terraform", "median_first_answer"] == ""  # never asked: nothing to measure
    assert value["gap", "kubernetes", "available_experts"] == "0"
    assert value["trend", "2026-11-09", "answered"] == "1"
    assert {r["team_id"] for r in rows} == {"T1"}

    code, out, _ = run_cli("stats", "--team", "T1", "--since", "28d")
    assert code == 0
    assert "Questions asked            8" in out
    assert "Answered                   6 (75%)" in out
    median = stats_render.duration_text(workspace["overall"]["median_accepted"])  # the rollup's, as in the JSON
    assert f"Median to accepted answer  {median}" in out
    assert "#ops" in out
    assert "Suggestion: Run a lunch-and-learn on #kubernetes" in out

    code, out, _ = run_cli("stats", "--since", "28d", "--format", "json")
    assert [w["team_id"] for w in json.loads(out)["workspaces"]] == ["T1", "T2"]  # every workspace


def test_stats_verb_refuses_an_unknown_team_and_a_bad_window(run_cli, fixture):
    code, _, err = run_cli("stats", "--team", "T_NOPE")
    assert code == 1 and "No workspace T_NOPE" in err and "T1, T2" in err
    code, _, err = run_cli("stats", "--team", "T1", "--since", "yesterday")
    assert code == 2 and "--since" in err
