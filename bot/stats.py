"""Analytics for the people who run the programme, computed by the database (aggregate queries only).

Definitions (one workspace, questions created in the window [since, until)):

- *asked*: questions that reached a channel (status open or resolved; a question still being posted, or one
  Slack refused, never reached anyone).
- *answered*: asked questions with at least one live answer (a thread reply by someone other than the asker
  that was not deleted), or resolved without one (the asker found the answer in a suggested earlier question
  or lesson: "This answers it"). *answer rate* = answered / asked.
- *answered by the knowledge base*: of the answered, those the knowledge base answered by itself: resolved by
  "This answers it" on a suggested earlier question or lesson, with no accepted answer since
  (Question.answered_by_earlier; an answer accepted later takes over, and taking that accept back counts it
  here again). The digest's "answered by itself" line follows the same rule.
- *time to first answer*: from the question to its earliest live answer. *time to accepted answer*: from the
  question to the moment the answer the asker accepted was posted (not to the asker's click: it measures how
  fast helpers solved it). Both are medians over the questions that have one; the middle value, or the mean
  of the two middle values for an even count.
- *per tag*: the same figures over the questions carrying that tag (a question with two tags counts for both).
- *experts per tag*: people who declared the tag with `/teach`; *available*: of those, the ones not paused,
  not deactivated and not bots (as far as PeerLearn knows from `users.info`).
- *knowledge gap*: a tag asked about in the window whose demand exceeds what its available experts can take:
  no available expert at all, or more than OVERLOAD_PER_EXPERT_WEEK questions per available expert per week.
  Gaps are ranked by unmet demand (questions beyond that capacity), then unanswered questions; the top gap
  gets the lunch-and-learn suggestion.
- *weekly trend*: the same figures per UTC week (Monday to Sunday) overlapping the window.
- *top helpers* (App Home, "this month"; the weekly digest): models/top_helpers.py, one query and one rule for both.

Where the figures come from: build_report reads the stats rollup (models/stats_rollup.py) for the window's
whole UTC days and the questions themselves only for the hours before its first midnight and after its last,
so a report over a year costs about what one over a month does. Counts are exact; medians are read from the
rollup's histograms, within the bound models/stats_rollup.py documents (at most 30 s, or ~24 %).

build_report_exact computes every figure from the questions and answers of the window, medians exact: the
reference the rollup is tested against and the benchmark's baseline. PostgreSQL computes its medians with
percentile_cont(0.5), an ordered-set aggregate (one sort per group). SQLite has no percentile aggregate, but
window functions: number each group's values with ROW_NUMBER() ordered by value, count them with COUNT() OVER
the group, and average the one or two rows in the middle ((n+1)/2 and (n+2)/2 in integer division). Both give
the middle value, or the mean of the two middle values for an even count. The per-question facts are a
materialized CTE read by the three groupings.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import Date, String, and_, case, cast, func, literal, null, or_, select, text, union_all
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from models.expert import Expertise, Person
from models.lesson import Lesson
from models.mentoring import waiting_demand
from models.question import (
    STATUS_OPEN,
    STATUS_RESOLVED,
    VOTE_HELPFUL,
    Answer,
    Question,
    QuestionTag,
    Vote,
)
from models.stats_rollup import Tally, median_of, seconds_between, window_tallies

ASKED_STATUSES = (STATUS_OPEN, STATUS_RESOLVED)
OVERLOAD_PER_EXPERT_WEEK = 5  # questions one available expert can be expected to take per week
DEFAULT_WINDOW = timedelta(days=30)


# --- figures ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Figures:
    """Questions of one group (the workspace, a tag or a week)."""

    asked: int = 0
    answered: int = 0
    accepted: int = 0
    answered_by_knowledge_base: int = 0  # of the answered: "This answers it", no accepted answer since
    median_first_answer: float | None = None  # seconds
    median_accepted: float | None = None  # seconds

    @property
    def answer_rate(self) -> float | None:
        return self.answered / self.asked if self.asked else None

    @property
    def unanswered(self) -> int:
        return self.asked - self.answered


@dataclass(frozen=True)
class TagFigures:
    tag: str
    figures: Figures
    experts: int = 0
    available_experts: int = 0


@dataclass(frozen=True)
class Gap:
    tag: str
    asked: int
    unanswered: int
    available_experts: int
    unmet: float  # questions beyond what the available experts can take in the window

    @property
    def reason(self) -> str:
        if not self.available_experts:
            return "no available go-to person"
        return f"{self.asked / self.available_experts:.1f} questions per available go-to person"


@dataclass(frozen=True)
class Week:
    start: date
    figures: Figures


@dataclass(frozen=True)
class Report:
    team_id: str
    since: datetime
    until: datetime
    overall: Figures
    tags: list[TagFigures] = field(default_factory=list)
    gaps: list[Gap] = field(default_factory=list)
    trend: list[Week] = field(default_factory=list)
    mentor_demand: list[tuple[str, int]] = field(default_factory=list)  # tags people wait for a mentor on, and how many

    @property
    def suggestion(self) -> str | None:
        if not self.gaps:
            return None
        gap = self.gaps[0]
        who = (
            "Nobody available has declared it yet"
            if not gap.available_experts
            else f"Its {gap.available_experts} go-to {'person is' if gap.available_experts == 1 else 'people are'} "
            "stretched"
        )
        return (
            f"Run a lunch-and-learn on #{gap.tag}: {gap.asked} {_plural(gap.asked, 'question')} in this period, "
            f"{gap.unanswered} unanswered. {who}; a session could grow new go-to people "
            f"(`/teach #{gap.tag}`)."
        )


@dataclass(frozen=True)
class PersonStats:
    answers: int = 0
    accepted: int = 0
    helpful_votes: int = 0  # helpful votes received on their answers and lessons
    lessons: int = 0


# --- dialect helpers --------------------------------------------------------------------------------


def week_start(moment: Any, dialect: str) -> ColumnElement[Any]:
    """The Monday (UTC) of the week a timestamp falls in."""
    if dialect == "sqlite":
        # 'weekday 0' moves forward to Sunday (or stays on it); six days back is that week's Monday.
        return func.date(moment, "weekday 0", "-6 days")
    return cast(func.date_trunc("week", func.timezone("UTC", moment)), Date)


def _as_date(value: Any) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    return date.fromisoformat(str(value)[:10])


def _dialect(session: Session) -> str:
    return session.get_bind().dialect.name


def _can_materialize(session: Session) -> bool:
    """`WITH … AS MATERIALIZED`: PostgreSQL 12+, SQLite 3.35+."""
    if _dialect(session) == "sqlite":
        return sqlite3.sqlite_version_info >= (3, 35)
    return True


# --- the report ------------------------------------------------------------------------------------


def _facts(session: Session, team_id: str, since: datetime, until: datetime) -> Any:
    """One row per asked question in the window: id, created_at, seconds to first answer and to accepted.

    Both answer times are correlated lookups (index probes on answers by question and by id), so the cost
    follows the questions in the window, never the size of the answers table. The rows are a MATERIALIZED
    common table expression: each grouping reads them several times, and an inlined subquery would repeat
    the lookups for every reference."""
    dialect = _dialect(session)
    first_at = (
        select(func.min(Answer.created_at))
        .where(Answer.question_id == Question.id, Answer.deleted_at.is_(None))
        .correlate(Question)
        .scalar_subquery()
    )
    accepted_at = (
        select(Answer.created_at)
        .where(Answer.id == Question.accepted_answer_id, Answer.deleted_at.is_(None))
        .correlate(Question)
        .scalar_subquery()
    )
    facts = (
        select(
            Question.id.label("question_id"),
            Question.created_at.label("created_at"),
            seconds_between(first_at, Question.created_at, dialect).label("first_answer"),
            case((Question.status == STATUS_RESOLVED, 1)).label("resolved"),
            case((Question.answered_by_earlier, 1)).label("by_earlier"),
            seconds_between(
                case((Question.status == STATUS_RESOLVED, accepted_at)), Question.created_at, dialect
            ).label("accepted"),
        )
        .where(
            Question.team_id == team_id,
            Question.status.in_(ASKED_STATUSES),
            Question.created_at >= since,
            Question.created_at < until,
        )
        .cte("facts")
    )
    return facts.prefix_with("MATERIALIZED") if _can_materialize(session) else facts


GROUP_ALL, GROUP_TAG, GROUP_WEEK = "all", "tag", "week"


def _grouped(kind: str, source: Any, key: ColumnElement[Any] | None, dialect: str) -> Any:
    """SELECT kind, key, asked, answered, accepted, answered by the knowledge base, median first answer, median
    accepted — one row per value
    of `key` (one row, key NULL, without a key; none when there are no rows) of a facts-shaped selectable."""
    key_column = cast(key if key is not None else null(), String).label("key")
    if dialect == "postgresql":
        # An ordered-set aggregate: one sort per group, NULLs ignored, the mean of the two middle values.
        first, accepted = source.c.first_answer, source.c.accepted
        medians = [func.percentile_cont(0.5).within_group(value) for value in (first, accepted)]
        return select(
            literal(kind, String).label("kind"),
            key_column,
            func.count(),
            _count_answered(first, source.c.resolved),
            func.count(accepted),
            func.count(source.c.by_earlier),
            *medians,
        ).group_by(key_column)
    group = [key] if key is not None else []

    def ranked(value: Any, name: str) -> list[Any]:
        # Rows with a value are numbered 1..n among themselves (NULLs sit in their own partition).
        return [
            func.row_number().over(partition_by=[*group, value.is_(None)], order_by=value).label(f"{name}_rn"),
            func.count(value).over(partition_by=group or None).label(f"{name}_n"),
        ]

    first, accepted = source.c.first_answer, source.c.accepted
    ranks = select(
        key_column,
        first,
        accepted,
        source.c.resolved,
        source.c.by_earlier,
        *ranked(first, "first_answer"),
        *ranked(accepted, "accepted"),
    ).subquery(f"ranked_{kind}")

    def median(name: str) -> Any:
        value, rn, n = ranks.c[name], ranks.c[f"{name}_rn"], ranks.c[f"{name}_n"]
        middle = and_(value.is_not(None), or_(rn == (n + 1) // 2, rn == (n + 2) // 2))
        return func.avg(case((middle, value)))

    return select(
        literal(kind, String).label("kind"),
        ranks.c.key,
        func.count(),
        _count_answered(ranks.c.first_answer, ranks.c.resolved),
        func.count(ranks.c.accepted),
        func.count(ranks.c.by_earlier),
        median("first_answer"),
        median("accepted"),
    ).group_by(ranks.c.key)


def _count_answered(first_answer: Any, resolved: Any) -> Any:
    return func.count(case((or_(first_answer.is_not(None), resolved.is_not(None)), 1)))


def _figures(session: Session, facts: Any) -> dict[tuple[str, Any], Figures]:
    """Figures for the whole window, per tag and per week, in one statement: the facts are computed once."""
    tagged = (
        select(facts, QuestionTag.tag)
        .join(QuestionTag, QuestionTag.question_id == facts.c.question_id)
        .subquery("tagged")
    )
    dialect = _dialect(session)
    weekly = select(facts, week_start(facts.c.created_at, dialect).label("week")).subquery("weekly")
    statement = union_all(
        _grouped(GROUP_ALL, facts, None, dialect),
        _grouped(GROUP_TAG, tagged, tagged.c.tag, dialect),
        _grouped(GROUP_WEEK, weekly, weekly.c.week, dialect),
    )
    if dialect == "postgresql":
        # For this transaction only: the correlated lookups make the planner's cost estimate huge, which
        # switches on JIT compilation (seconds of compiling for a query that runs in less); and the median
        # sorts of a large window fit in memory instead of spilling to disk.
        session.execute(text("SET LOCAL jit = off"))
        session.execute(text("SET LOCAL work_mem = '64MB'"))
    found: dict[tuple[str, Any], Figures] = {}
    for kind, key, asked, answered, accepted, by_earlier, median_first, median_accepted in session.execute(statement):
        if not asked:
            continue
        found[kind, _as_date(key) if kind == GROUP_WEEK else key] = Figures(
            asked=int(asked),
            answered=int(answered),
            accepted=int(accepted),
            answered_by_knowledge_base=int(by_earlier),
            median_first_answer=float(median_first) if median_first is not None else None,
            median_accepted=float(median_accepted) if median_accepted is not None else None,
        )
    return found


def experts_per_tag(session: Session, team_id: str, now: datetime) -> dict[str, tuple[int, int]]:
    """tag -> (declared experts, available experts: not paused, deactivated or a bot)."""
    available = case(
        (
            or_(
                Person.user_id.is_(None),
                and_(
                    Person.deleted.is_(False),
                    Person.is_bot.is_(False),
                    or_(Person.paused_until.is_(None), Person.paused_until <= now),
                ),
            ),
            1,
        ),
        else_=0,
    )
    rows = session.execute(
        select(Expertise.tag, func.count(), func.sum(available))
        .outerjoin(Person, and_(Person.team_id == Expertise.team_id, Person.user_id == Expertise.user_id))
        .where(Expertise.team_id == team_id)
        .group_by(Expertise.tag)
    )
    return {tag: (int(declared), int(free or 0)) for tag, declared, free in rows}


def find_gaps(tags: Iterable[TagFigures], window: timedelta) -> list[Gap]:
    """Tags whose demand exceeds what their available experts can take in the window (pure)."""
    weeks = max(window / timedelta(weeks=1), 1.0)
    gaps = []
    for row in tags:
        asked, free = row.figures.asked, row.available_experts
        capacity = free * OVERLOAD_PER_EXPERT_WEEK * weeks
        if asked and asked > capacity:
            gaps.append(Gap(row.tag, asked, row.figures.unanswered, free, round(asked - capacity, 1)))
    return sorted(gaps, key=lambda g: (-g.unmet, -g.unanswered, g.tag))


def weeks_between(since: datetime, until: datetime) -> list[date]:
    """The Mondays of the UTC weeks that overlap [since, until)."""
    first = since.astimezone(UTC).date()
    first -= timedelta(days=first.weekday())
    last = (until - timedelta(microseconds=1)).astimezone(UTC).date()
    weeks = []
    while first <= last:
        weeks.append(first)
        first += timedelta(weeks=1)
    return weeks


def build_report(session: Session, team_id: str, since: datetime, until: datetime, now: datetime) -> Report:
    """Everything the stats verb and the admin section of App Home show: the window's whole days from the
    stats rollup, its partial days from the questions, the experts per tag in one more query."""
    tallies = window_tallies(session, team_id, since, until)
    return _compose(
        session,
        team_id,
        since,
        until,
        now,
        _from_tally(tallies.overall),
        {tag: _from_tally(tally) for tag, tally in tallies.tags.items() if tally.asked},
        {monday: _from_tally(tally) for monday, tally in tallies.weeks.items() if tally.asked},
    )


def build_report_exact(session: Session, team_id: str, since: datetime, until: datetime, now: datetime) -> Report:
    """The same report computed from every question and answer of the window, medians exact (the reference
    for build_report in tests, and the benchmark's baseline); its cost grows with the window."""
    figures = _figures(session, _facts(session, team_id, since, until))
    return _compose(
        session,
        team_id,
        since,
        until,
        now,
        figures.get((GROUP_ALL, None), Figures()),
        {key: value for (kind, key), value in figures.items() if kind == GROUP_TAG},
        {key: value for (kind, key), value in figures.items() if kind == GROUP_WEEK},
    )


def _from_tally(tally: Tally) -> Figures:
    if not tally.asked:
        return Figures()
    return Figures(
        asked=tally.asked,
        answered=tally.answered,
        accepted=tally.accepted,
        answered_by_knowledge_base=tally.answered_by_earlier,
        median_first_answer=median_of(tally.first),
        median_accepted=median_of(tally.accepted_in),
    )


def _compose(
    session: Session,
    team_id: str,
    since: datetime,
    until: datetime,
    now: datetime,
    overall: Figures,
    per_tag: dict[str, Figures],
    per_week: dict[date, Figures],
) -> Report:
    experts = experts_per_tag(session, team_id, now)
    tags = [
        TagFigures(tag, per_tag.get(tag, Figures()), *experts.get(tag, (0, 0)))
        for tag in sorted(set(per_tag) | set(experts))
    ]
    tags.sort(key=lambda t: (-t.figures.asked, -t.experts, t.tag))
    return Report(
        team_id=team_id,
        since=since,
        until=until,
        overall=overall,
        tags=tags,
        gaps=find_gaps(tags, until - since),
        trend=[Week(monday, per_week.get(monday, Figures())) for monday in weeks_between(since, until)],
        mentor_demand=waiting_demand(session, team_id),
    )


# --- people --------------------------------------------------------------------------------------------


def person_stats(session: Session, team_id: str, user_id: str) -> PersonStats:
    """One person's contributions, all time: live answers, accepted answers, helpful votes received, lessons."""
    answers = select(func.count()).where(
        Answer.team_id == team_id, Answer.user_id == user_id, Answer.deleted_at.is_(None)
    )
    accepted = (
        select(func.count())
        .select_from(Answer)
        .join(Question, and_(Question.id == Answer.question_id, Question.accepted_answer_id == Answer.id))
        .where(
            Answer.team_id == team_id,
            Answer.user_id == user_id,
            Answer.deleted_at.is_(None),
            Question.status == STATUS_RESOLVED,
        )
    )
    helpful = select(func.count()).where(
        Vote.team_id == team_id, Vote.author_id == user_id, Vote.kind == VOTE_HELPFUL, Vote.voter_id != user_id
    )
    lessons = select(func.count()).where(
        Lesson.team_id == team_id, Lesson.author_id == user_id, Lesson.message_ts.is_not(None)
    )
    row = session.execute(
        select(
            answers.scalar_subquery(),
            accepted.scalar_subquery(),
            helpful.scalar_subquery(),
            lessons.scalar_subquery(),
        )
    ).one()
    return PersonStats(*(int(n or 0) for n in row))


def month_of(now: datetime) -> tuple[datetime, datetime]:
    """The calendar month (UTC) `now` falls in, as [first day, first day of the next month)."""
    start = now.astimezone(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    return start, (start + timedelta(days=32)).replace(day=1)


# --- the command line: --since --------------------------------------------------------------------------

_SINCE = re.compile(r"^(\d{1,5})\s*([hdw])$", re.IGNORECASE)


def parse_since(raw: str, now: datetime) -> datetime:
    """`30d`, `12w`, `48h`, or a date `2026-10-01` (UTC midnight) → the start of the window."""
    text = raw.strip()
    match = _SINCE.match(text)
    if match:
        amount, unit = int(match.group(1)), match.group(2).lower()
        span = {"h": timedelta(hours=amount), "d": timedelta(days=amount), "w": timedelta(weeks=amount)}[unit]
        if span <= timedelta(0):
            raise ValueError("--since needs a positive duration, e.g. 30d")
        return now - span
    try:
        day = date.fromisoformat(text)
    except ValueError:
        raise ValueError(f"--since {raw!r}: use a duration like 30d, 12w or 48h, or a date like 2026-10-01") from None
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    if start >= now:
        raise ValueError(f"--since {raw}: that is not in the past")
    return start


def _plural(n: int, one: str) -> str:
    return one if n == 1 else one + "s"
