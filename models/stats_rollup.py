"""The stats rollup: the analytics figures of bot/stats.py kept per workspace, per period of whole UTC days
(days, and periods of 7, 28 and 112 days counted from Monday 1970-01-05) and per tag ('' for every question), so
that a report over a year reads about as many rows as one over a month.

What one question contributes (question_stats, one row per question, what it last added to the rollup):
asked (it reached a channel), answered (a live answer, or resolved without one), accepted (resolved with a
live accepted answer), answered_by_earlier (the knowledge base answered it by itself: Question.answered_by_earlier,
"This answers it" with no accepted answer since), and the histogram bucket of its seconds to first answer and
to the accepted answer.
The period is the UTC day the question was created; its tags never change.

Upkeep (refresh_question_stats) runs in the transaction of every change to a question's figures: it locks the
question's contribution row, computes the contribution again from the rows, and adds the difference to the
rollup with atomic increments (INSERT … ON CONFLICT DO UPDATE SET n = n + …), in key order; a redelivered
event changes nothing. rebuild_stats recomputes one workspace's rollup from scratch.

Medians are not additive: the rollup keeps histograms of BUCKETS buckets per measure. Bucket 0 holds
[0, LOWEST) seconds, buckets 1 … BUCKETS-2 are log-spaced up to HIGHEST, the last holds HIGHEST and more.
median_of reads the middle value(s) from the histogram, interpolating within a bucket (geometrically, as if
the bucket's values were spread evenly on a log scale; linearly in bucket 0). The exact median lies in the
same bucket, so the error is bounded: at most LOWEST seconds below LOWEST, else a relative error of at most
MEDIAN_RELATIVE_ERROR (one bucket's width, ~24 %; an even count averages two values that each keep this
bound). Medians of HIGHEST or more read as HIGHEST. Counts are exact.
"""

from __future__ import annotations

import itertools
import math
import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import (
    Column,
    Float,
    ForeignKey,
    Integer,
    String,
    Table,
    and_,
    case,
    cast,
    delete,
    extract,
    func,
    literal,
    literal_column,
    or_,
    select,
    type_coerce,
    union_all,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Mapped, Session, mapped_column
from sqlalchemy.sql.elements import ColumnElement

from models.base import Base, insert_if_new
from models.question import STATUS_OPEN, STATUS_RESOLVED, Answer, Question, QuestionTag

ASKED_STATUSES = (STATUS_OPEN, STATUS_RESOLVED)
ALL_TAGS = ""  # the rollup's tag for every question of the period
SPANS = (1, 7, 28, 112)  # days; each divides the next, all aligned on Monday 1970-01-05
MONDAY = 4  # 1970-01-05, as a day number (days since 1970-01-01)
EPOCH = date(1970, 1, 1)

BUCKETS = 64
LOWEST = 30  # seconds: bucket 0 is [0, LOWEST)
HIGHEST = 180 * 86_400  # seconds: the last bucket is [HIGHEST, ∞)
# Bucket k (1 … BUCKETS-2) is [BOUNDS[k-1], BOUNDS[k]); whole seconds, so every database compares the same.
BOUNDS: tuple[int, ...] = tuple(round(LOWEST * (HIGHEST / LOWEST) ** (k / (BUCKETS - 2))) for k in range(BUCKETS - 1))
MEDIAN_RELATIVE_ERROR = max(high / low for low, high in itertools.pairwise(BOUNDS)) - 1

FIRST = tuple(f"first_{k:02d}" for k in range(BUCKETS))  # questions whose first answer took bucket k
ACCEPTED = tuple(f"accepted_{k:02d}" for k in range(BUCKETS))  # … whose accepted answer took bucket k
COUNTS = ("asked", "answered", "accepted", "answered_by_earlier")
FIGURES = (*COUNTS, *FIRST, *ACCEPTED)


class QuestionStats(Base):
    """What one question last added to the rollup (all zero / NULL for a question that never reached a channel)."""

    __tablename__ = "question_stats"

    question_id: Mapped[int] = mapped_column(ForeignKey("questions.id", ondelete="CASCADE"), primary_key=True)
    team_id: Mapped[str] = mapped_column(String(32), index=True)
    day: Mapped[int]  # the UTC day it was created, days since 1970-01-01
    asked: Mapped[int] = mapped_column(default=0)
    answered: Mapped[int] = mapped_column(default=0)
    accepted: Mapped[int] = mapped_column(default=0)
    answered_by_earlier: Mapped[int] = mapped_column(default=0, server_default="0")  # migration 0020
    first_bucket: Mapped[int | None]
    accepted_bucket: Mapped[int | None]


question_stats: Table = QuestionStats.__table__  # type: ignore[assignment]

# A Core table: its 128 histogram columns are generated, and it is only written with aggregate statements.
stats_rollup = Table(
    "stats_rollup",
    Base.metadata,
    Column("team_id", String(32), primary_key=True),
    Column("span", Integer, primary_key=True),  # days: one of SPANS
    Column("first_day", Integer, primary_key=True),  # days since 1970-01-01 (UTC)
    Column("tag", String(64), primary_key=True),  # '' for every question
    *(Column(name, Integer, nullable=False, server_default="0") for name in FIGURES),
)


# --- days and periods ---------------------------------------------------------------------------------


def day_number(moment: datetime) -> int:
    return (moment.astimezone(UTC).date() - EPOCH).days


def day_date(day: int) -> date:
    return EPOCH + timedelta(days=day)


def period_start(day: int, span: int) -> int:
    return day - (day - MONDAY) % span


def periods(first_day: int, end_day: int) -> list[tuple[int, int]]:
    """The fewest (span, first day) periods that tile the days [first_day, end_day)."""
    found = []
    day = first_day
    while day < end_day:
        span = next(s for s in reversed(SPANS) if period_start(day, s) == day and day + s <= end_day)
        found.append((span, day))
        day += span
    return found


def _day_in_sql(moment: Any, dialect: str) -> ColumnElement[int]:
    if dialect == "sqlite":
        # date() cuts the stored text (naive UTC) to its day exactly; julianday of a midnight is exact.
        return cast(func.julianday(func.date(moment)) - 2440587.5, Integer)
    return type_coerce(
        cast(func.timezone("UTC", moment), postgresql.DATE) - literal_column("DATE '1970-01-01'"), Integer
    )


def seconds_between(later: Any, earlier: Any, dialect: str) -> ColumnElement[float]:
    """`later - earlier` in seconds, as the database computes it (NULL when either is NULL)."""
    if dialect == "sqlite":
        # Our datetimes are stored as naive UTC text, "YYYY-MM-DD HH:MM:SS.ffffff": whole seconds from
        # strftime('%s'), the fraction from the text, so the difference is exact to the microsecond (julianday's
        # doubles are not: 30 s came out as 29.99999).
        whole = cast(func.strftime("%s", later), Integer) - cast(func.strftime("%s", earlier), Integer)
        return cast(whole + cast(func.substr(later, 20), Float) - cast(func.substr(earlier, 20), Float), Float)
    return cast(extract("epoch", later - earlier), Float)


def bucket_of(seconds: float) -> int:
    """The histogram bucket of a duration (Python's copy of _bucket_in_sql, for tests and documentation)."""
    return sum(1 for bound in BOUNDS if bound <= seconds)


def bucket_bounds(k: int) -> tuple[float, float]:
    return (0.0 if k == 0 else float(BOUNDS[k - 1]), float(BOUNDS[k]) if k < len(BOUNDS) else math.inf)


def _bucket_in_sql(seconds: Any) -> ColumnElement[int]:
    """NULL stays NULL; compares a plain column, so a computed value is worth computing once (a CTE)."""
    return case(
        (seconds.is_(None), None),
        *((seconds < bound, k) for k, bound in enumerate(BOUNDS)),
        else_=len(BOUNDS),
    )


def _can_materialize(dialect: str) -> bool:
    """`WITH … AS MATERIALIZED`: PostgreSQL 12+, SQLite 3.35+."""
    return dialect != "sqlite" or sqlite3.sqlite_version_info >= (3, 35)


# --- what a question contributes ------------------------------------------------------------------------


def contributions(dialect: str, *where: ColumnElement[bool]) -> Any:
    """question_id, team_id, day, asked, answered, accepted, answered_by_earlier, first_bucket, accepted_bucket
    of the questions
    `where` selects (one rule for upkeep, rebuild and the report's partial days).

    Both answer times are correlated lookups (index probes on answers by question and by id). The seconds
    are a MATERIALIZED common table expression: the bucket's CASE compares them many times, and an inlined
    subquery would repeat the lookups for every comparison."""
    asked = Question.status.in_(ASKED_STATUSES)
    resolved = Question.status == STATUS_RESOLVED
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
    timed = select(
        Question.id.label("question_id"),
        Question.team_id.label("team_id"),
        _day_in_sql(Question.created_at, dialect).label("day"),
        case((asked, 1), else_=0).label("asked"),
        case((and_(asked, resolved), 1), else_=0).label("resolved"),
        case((and_(asked, Question.answered_by_earlier), 1), else_=0).label("answered_by_earlier"),
        case((asked, seconds_between(first_at, Question.created_at, dialect))).label("first_seconds"),
        case((and_(asked, resolved), seconds_between(accepted_at, Question.created_at, dialect))).label(
            "accepted_seconds"
        ),
    ).where(*where)
    facts = timed.cte("timed")
    if _can_materialize(dialect):
        facts = facts.prefix_with("MATERIALIZED")
    first, accepted = facts.c.first_seconds, facts.c.accepted_seconds
    return select(
        facts.c.question_id,
        facts.c.team_id,
        facts.c.day,
        facts.c.asked,
        case((or_(first.is_not(None), facts.c.resolved == 1), 1), else_=0).label("answered"),
        case((accepted.is_not(None), 1), else_=0).label("accepted"),
        facts.c.answered_by_earlier,
        _bucket_in_sql(first).label("first_bucket"),
        _bucket_in_sql(accepted).label("accepted_bucket"),
    )


@dataclass(frozen=True)
class Contribution:
    asked: int = 0
    answered: int = 0
    accepted: int = 0
    answered_by_earlier: int = 0
    first_bucket: int | None = None
    accepted_bucket: int | None = None

    def figures(self, sign: int) -> dict[str, int]:
        found = {name: sign * getattr(self, name) for name in COUNTS}
        if self.first_bucket is not None:
            found[FIRST[self.first_bucket]] = sign
        if self.accepted_bucket is not None:
            found[ACCEPTED[self.accepted_bucket]] = sign
        return found


def _contribution(row: Any) -> Contribution:
    return Contribution(
        int(row.asked),
        int(row.answered),
        int(row.accepted),
        int(row.answered_by_earlier),
        row.first_bucket,
        row.accepted_bucket,
    )


def _dialect(session: Session) -> str:
    return session.get_bind().dialect.name


def _upsert(dialect: str) -> Any:
    if dialect == "postgresql":
        return postgresql.insert
    if dialect == "sqlite":
        return sqlite.insert
    raise NotImplementedError(f"stats rollup on {dialect}")


def refresh_question_stats(session: Session, question_id: int) -> bool:
    """Bring the rollup up to date with one question after a change to it (asked, posted, answered, an answer
    deleted, accepted or un-accepted, resolved by an earlier question), in the caller's transaction. True when
    its figures changed; calling it again (a redelivered event) changes nothing.

    The question's contribution row is locked first (FOR UPDATE; SQLite serializes writers), so that two
    replicas changing one question take turns and the second computes from what the first committed."""
    session.flush()
    question = session.execute(
        select(Question.team_id, Question.created_at).where(Question.id == question_id)
    ).one_or_none()
    if question is None:
        return False
    team_id, created_at = question
    day = day_number(created_at)
    insert_if_new(session, QuestionStats, question_id=question_id, team_id=team_id, day=day)
    locked = select(question_stats).where(question_stats.c.question_id == question_id).with_for_update()
    old = _contribution(session.execute(locked).one())
    dialect = _dialect(session)
    new = _contribution(session.execute(contributions(dialect, Question.id == question_id)).one())
    if new == old:
        return False
    delta = old.figures(-1)
    for name, value in new.figures(+1).items():
        delta[name] = delta.get(name, 0) + value
    delta = {name: value for name, value in delta.items() if value}
    tags = session.scalars(select(QuestionTag.tag).where(QuestionTag.question_id == question_id)).all()
    if delta:
        keys = sorted({(span, period_start(day, span), tag) for span in SPANS for tag in (ALL_TAGS, *tags)})
        rows = [{"team_id": team_id, "span": s, "first_day": d, "tag": t, **delta} for s, d, t in keys]
        insert = _upsert(dialect)(stats_rollup).values(rows)
        session.execute(
            insert.on_conflict_do_update(
                index_elements=[
                    stats_rollup.c.team_id,
                    stats_rollup.c.span,
                    stats_rollup.c.first_day,
                    stats_rollup.c.tag,
                ],
                set_={name: stats_rollup.c[name] + insert.excluded[name] for name in delta},
            )
        )
    session.execute(
        update(QuestionStats)
        .where(QuestionStats.question_id == question_id)
        .values(
            asked=new.asked,
            answered=new.answered,
            accepted=new.accepted,
            answered_by_earlier=new.answered_by_earlier,
            first_bucket=new.first_bucket,
            accepted_bucket=new.accepted_bucket,
        )
        .execution_options(synchronize_session=False)
    )
    return True


# --- rebuild ---------------------------------------------------------------------------------------------


def rebuild_stats(session: Session, team_id: str) -> int:
    """Recompute one workspace's rollup from its questions and answers, in the caller's transaction (two
    INSERT … SELECT statements, and one per longer span); returns the questions counted."""
    dialect = _dialect(session)
    session.flush()
    session.execute(delete(stats_rollup).where(stats_rollup.c.team_id == team_id))
    session.execute(
        delete(QuestionStats).where(QuestionStats.team_id == team_id).execution_options(synchronize_session=False)
    )
    stored = question_stats
    source = contributions(dialect, Question.team_id == team_id)
    session.execute(stored.insert().from_select([column.name for column in source.selected_columns], source))

    tagged = union_all(
        select(QuestionTag.question_id, QuestionTag.tag).where(QuestionTag.team_id == team_id),
        select(stored.c.question_id, literal(ALL_TAGS, String).label("tag")).where(stored.c.team_id == team_id),
    ).subquery("tagged")
    # First the distinct (day, tag, buckets) combinations with their counts, then one row per (day, tag).
    combined = (
        select(
            stored.c.day,
            tagged.c.tag,
            stored.c.first_bucket,
            stored.c.accepted_bucket,
            func.count().label("n"),
            func.sum(stored.c.answered).label("answered"),
            func.sum(stored.c.accepted).label("accepted"),
            func.sum(stored.c.answered_by_earlier).label("answered_by_earlier"),
        )
        .join(tagged, tagged.c.question_id == stored.c.question_id)
        .where(stored.c.team_id == team_id, stored.c.asked == 1)
        .group_by(stored.c.day, tagged.c.tag, stored.c.first_bucket, stored.c.accepted_bucket)
        .subquery("combined")
    )

    def histogram(bucket: Any, names: Sequence[str]) -> list[Any]:
        return [func.sum(case((bucket == k, combined.c.n), else_=0)) for k in range(len(names))]

    days = select(
        literal(team_id, String),
        literal(1, Integer),
        combined.c.day,
        combined.c.tag,
        func.sum(combined.c.n),
        func.sum(combined.c.answered),
        func.sum(combined.c.accepted),
        func.sum(combined.c.answered_by_earlier),
        *histogram(combined.c.first_bucket, FIRST),
        *histogram(combined.c.accepted_bucket, ACCEPTED),
    ).group_by(combined.c.day, combined.c.tag)
    columns = ["team_id", "span", "first_day", "tag", *FIGURES]
    session.execute(stats_rollup.insert().from_select(columns, days))
    for shorter, span in itertools.pairwise(SPANS):  # each span from the one before: fewer rows to add up
        start = (stats_rollup.c.first_day - (stats_rollup.c.first_day - MONDAY) % span).label("start")
        longer = (
            select(
                literal(team_id, String),
                literal(span, Integer),
                start,
                stats_rollup.c.tag,
                *(func.sum(stats_rollup.c[name]) for name in FIGURES),
            )
            .where(stats_rollup.c.team_id == team_id, stats_rollup.c.span == shorter)
            .group_by(start, stats_rollup.c.tag)
        )
        session.execute(stats_rollup.insert().from_select(columns, longer))
    return int(session.scalar(select(func.count()).where(stored.c.team_id == team_id, stored.c.asked == 1)) or 0)


# --- reading ---------------------------------------------------------------------------------------------


@dataclass
class Tally:
    """Figures of a group of questions as the rollup keeps them: counts and the two histograms."""

    asked: int = 0
    answered: int = 0
    accepted: int = 0
    answered_by_earlier: int = 0
    first: list[int] = field(default_factory=lambda: [0] * BUCKETS)
    accepted_in: list[int] = field(default_factory=lambda: [0] * BUCKETS)

    def add_row(self, values: Sequence[Any]) -> None:
        """Add a row of FIGURES (in that order)."""
        self.asked += int(values[0] or 0)
        self.answered += int(values[1] or 0)
        self.accepted += int(values[2] or 0)
        self.answered_by_earlier += int(values[3] or 0)
        histograms = len(COUNTS)
        for k in range(BUCKETS):
            self.first[k] += int(values[histograms + k] or 0)
            self.accepted_in[k] += int(values[histograms + BUCKETS + k] or 0)

    def add(self, contribution: Contribution) -> None:
        self.asked += contribution.asked
        self.answered += contribution.answered
        self.accepted += contribution.accepted
        self.answered_by_earlier += contribution.answered_by_earlier
        if contribution.first_bucket is not None:
            self.first[contribution.first_bucket] += 1
        if contribution.accepted_bucket is not None:
            self.accepted_in[contribution.accepted_bucket] += 1


def median_of(histogram: Sequence[int]) -> float | None:
    """The median of the values counted in a histogram of BUCKETS buckets (the module docstring's bound)."""
    n = sum(histogram)
    if not n:
        return None
    ranks = (n // 2, n // 2 + 1) if n % 2 == 0 else ((n + 1) // 2,)
    return sum(_value_at(histogram, rank) for rank in ranks) / len(ranks)


def _value_at(histogram: Sequence[int], rank: int) -> float:
    """The rank-th smallest value (1-based), placed within its bucket as if the bucket's values were spread
    evenly over it (on a log scale above LOWEST)."""
    below = 0
    for k, count in enumerate(histogram):
        if below + count >= rank:
            low, high = bucket_bounds(k)
            position = (rank - below - 0.5) / count
            if math.isinf(high):
                return low
            if k == 0:
                return low + (high - low) * position
            return low * (high / low) ** position
        below += count
    raise ValueError("rank beyond the histogram")


def _read(session: Session, team_id: str, wanted: ColumnElement[bool], *keys: Any) -> list[Any]:
    figures = [func.sum(stats_rollup.c[name]) for name in FIGURES]
    return list(
        session.execute(select(*keys, *figures).where(stats_rollup.c.team_id == team_id, wanted).group_by(*keys))
    )


def _in_periods(chosen: Iterable[tuple[int, int]]) -> ColumnElement[bool]:
    by_span: dict[int, list[int]] = {}
    for span, first_day in chosen:
        by_span.setdefault(span, []).append(first_day)
    if not by_span:
        return literal(False)  # type: ignore[return-value]
    return or_(
        *(
            and_(stats_rollup.c.span == span, stats_rollup.c.first_day.in_(days))
            for span, days in sorted(by_span.items())
        )
    )


@dataclass
class WindowTallies:
    overall: Tally = field(default_factory=Tally)
    tags: dict[str, Tally] = field(default_factory=dict)
    weeks: dict[date, Tally] = field(default_factory=dict)  # by the Monday (UTC) of the week

    def tag(self, name: str) -> Tally:
        return self.tags.setdefault(name, Tally())

    def week(self, day: int) -> Tally:
        return self.weeks.setdefault(day_date(period_start(day, 7)), Tally())


def _midnight(day: int) -> datetime:
    return datetime.combine(day_date(day), datetime.min.time(), tzinfo=UTC)


def window_tallies(session: Session, team_id: str, since: datetime, until: datetime) -> WindowTallies:
    """The figures of the questions created in [since, until): overall, per tag, per UTC week. Whole days
    come from the rollup (two aggregate reads of a few dozen periods), the hours before the window's first
    midnight and after its last from the questions themselves."""
    found = WindowTallies()
    first_day = day_number(since) + (0 if _midnight(day_number(since)) == since else 1)
    end_day = day_number(until)
    partial = [(since, until)] if first_day >= end_day else [(since, _midnight(first_day)), (_midnight(end_day), until)]
    if first_day < end_day:
        for row in _read(session, team_id, _in_periods(periods(first_day, end_day)), stats_rollup.c.tag):
            (found.overall if row[0] == ALL_TAGS else found.tag(row[0])).add_row(row[1:])
        # The trend: whole weeks, and the days of the weeks cut by the window's edges.
        weeks: list[int] = []
        days: list[int] = []
        for span, start in periods(first_day, end_day):
            if span == 1:
                days.append(start)
            else:
                weeks += range(start, start + span, 7)
        wanted = and_(stats_rollup.c.tag == ALL_TAGS, _in_periods([(7, w) for w in weeks] + [(1, d) for d in days]))
        for row in _read(session, team_id, wanted, stats_rollup.c.first_day):
            found.week(row[0]).add_row(row[1:])
    _add_partial_days(session, found, team_id, [(start, end) for start, end in partial if start < end])
    return found


def _add_partial_days(
    session: Session, found: WindowTallies, team_id: str, ranges: list[tuple[datetime, datetime]]
) -> None:
    if not ranges:
        return
    in_ranges = or_(*(and_(Question.created_at >= start, Question.created_at < end) for start, end in ranges))
    rows = session.execute(
        contributions(_dialect(session), Question.team_id == team_id, Question.status.in_(ASKED_STATUSES), in_ranges)
    ).all()
    if not rows:
        return
    tags: dict[int, list[str]] = {}
    for question_id, tag in session.execute(
        select(QuestionTag.question_id, QuestionTag.tag)
        .join(Question, Question.id == QuestionTag.question_id)
        .where(Question.team_id == team_id, Question.status.in_(ASKED_STATUSES), in_ranges)
    ):
        tags.setdefault(question_id, []).append(tag)
    for row in rows:
        contribution = _contribution(row)
        found.overall.add(contribution)
        found.week(row.day).add(contribution)
        for tag in tags.get(row.question_id, ()):
            found.tag(tag).add(contribution)
