"""Weekly digest subscriptions per channel, the (team, channel, week) rows that make posting exactly-once,
and the aggregate queries that read one channel's week for its digest."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, TypeVar

from sqlalchemy import (
    Index,
    String,
    Text,
    UniqueConstraint,
    and_,
    case,
    exists,
    func,
    or_,
    select,
    tuple_,
    update,
)
from sqlalchemy.orm import Mapped, Session, mapped_column

from models.base import Base, insert_once
from models.expert import Expertise
from models.lesson import Lesson, LessonTag
from models.mentoring import mentors_on, waiting_demand
from models.question import (
    EARLIER_LESSON,
    EARLIER_QUESTION,
    STATUS_OPEN,
    STATUS_RESOLVED,
    VOTE_HELPFUL,
    Answer,
    Question,
    QuestionTag,
    Vote,
    parse_earlier_ref,
)
from models.sessions import tags_with_sessions
from models.top_helpers import Helper, top_helpers
from models.workspace import Workspace


class DigestSubscription(Base):
    __tablename__ = "digest_subscriptions"

    team_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    channel_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    enabled: Mapped[bool] = mapped_column(default=True)
    weekday: Mapped[int] = mapped_column(default=0)  # Monday = 0, as in datetime.weekday()
    hour: Mapped[int] = mapped_column(default=9)
    minute: Mapped[int] = mapped_column(default=0)
    timezone: Mapped[str | None] = mapped_column(String(64))  # None: the workspace's time zone
    post_when_empty: Mapped[bool] = mapped_column(default=True)
    created_by: Mapped[str] = mapped_column(String(32))
    # When the schedule was last set: a slot that passed before it does not count (no surprise digest).
    updated_at: Mapped[datetime]


DIGEST_CLAIMED = "claimed"  # a replica owns this week's digest and is building it
DIGEST_POSTING = "posting"  # chat.postMessage is (or was) in flight: never retried, it may have gone out
DIGEST_POSTED = "posted"
DIGEST_EMPTY = "empty"  # a quiet week and the channel asked for nothing then
DIGEST_FAILED = "failed"


class DigestRun(Base):
    """One row per (team, channel, week): inserted (claimed) before anything is posted.

    `attempts` doubles as the owner's token: every (re)claim increments it, and each later step
    only applies while the row still carries the attempt number its owner claimed.
    """

    __tablename__ = "digest_runs"
    __table_args__ = (UniqueConstraint("team_id", "channel_id", "week_key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    team_id: Mapped[str] = mapped_column(String(32))
    channel_id: Mapped[str] = mapped_column(String(32))
    week_key: Mapped[str] = mapped_column(String(16))  # ISO week of the scheduled slot, e.g. 2026-W48
    status: Mapped[str] = mapped_column(String(16), default=DIGEST_CLAIMED)
    claimed_by: Mapped[str] = mapped_column(String(100))
    claimed_at: Mapped[datetime]
    finished_at: Mapped[datetime | None]
    message_ts: Mapped[str | None] = mapped_column(String(32))
    attempts: Mapped[int] = mapped_column(default=1)
    error: Mapped[str | None] = mapped_column(Text)


# Indexes the digest's per-channel, per-week reads need (created in migration 0003). They are declared
# here, beside the queries that use them, so the metadata matches the migrated schema.
Index("ix_questions_team_channel_resolved", Question.team_id, Question.channel_id, Question.resolved_at)
Index("ix_votes_team_channel_created", Vote.team_id, Vote.channel_id, Vote.created_at)
Index("ix_expertise_team_declared", Expertise.team_id, Expertise.declared_at)


# --- subscriptions ------------------------------------------------------------------------------------


def fetch_subscription(session: Session, team_id: str, channel_id: str) -> DigestSubscription | None:
    return session.get(DigestSubscription, (team_id, channel_id))


def ensure_subscription(
    session: Session, team_id: str, channel_id: str, user_id: str, now: datetime
) -> DigestSubscription:
    """The channel's subscription, created (disabled, default schedule) when it has none yet."""
    subscription = fetch_subscription(session, team_id, channel_id)
    if subscription is None:
        subscription = DigestSubscription(
            team_id=team_id,
            channel_id=channel_id,
            enabled=False,
            weekday=0,
            hour=9,
            minute=0,
            timezone=None,
            post_when_empty=True,
            created_by=user_id,
            updated_at=now,
        )
        if not insert_once(session, subscription):  # the same command, twice at once
            subscription = fetch_subscription(session, team_id, channel_id)
            assert subscription is not None
    return subscription


def enabled_subscriptions(session: Session) -> list[tuple[DigestSubscription, str]]:
    """Every enabled subscription of an active workspace, with that workspace's time zone."""
    rows = session.execute(
        select(DigestSubscription, Workspace.timezone)
        .join(Workspace, Workspace.team_id == DigestSubscription.team_id)
        .where(DigestSubscription.enabled.is_(True), Workspace.active.is_(True))
        .order_by(DigestSubscription.team_id, DigestSubscription.channel_id)
    )
    return [(subscription, timezone) for subscription, timezone in rows]


# --- runs: claim, re-claim, finish ----------------------------------------------------------------------

RunKey = tuple[str, str, str]  # team_id, channel_id, week_key


def runs_by_key(session: Session, keys: list[RunKey]) -> dict[RunKey, DigestRun]:
    if not keys:
        return {}
    runs = session.scalars(
        select(DigestRun).where(tuple_(DigestRun.team_id, DigestRun.channel_id, DigestRun.week_key).in_(keys))
    )
    return {(run.team_id, run.channel_id, run.week_key): run for run in runs}


@dataclass(frozen=True)
class Claim:
    """Ownership of one run: valid while the row still has this attempt number."""

    run_id: int
    attempt: int


def claim_run(session: Session, key: RunKey, owner: str, now: datetime) -> Claim | None:
    """Insert the week's row; None when it exists (another replica, an earlier tick, a restart)."""
    team_id, channel_id, week_key = key
    run = DigestRun(
        team_id=team_id,
        channel_id=channel_id,
        week_key=week_key,
        status=DIGEST_CLAIMED,
        claimed_by=owner[:100],
        claimed_at=now,
        attempts=1,
    )
    if not insert_once(session, run):
        return None
    return Claim(run.id, 1)


def reclaim_run(session: Session, run: DigestRun, owner: str, now: datetime) -> Claim | None:
    """Take over a failed or abandoned run, compare-and-swap on what the caller saw (status, attempt)."""
    result = session.execute(
        update(DigestRun)
        .where(DigestRun.id == run.id, DigestRun.status == run.status, DigestRun.attempts == run.attempts)
        .values(
            status=DIGEST_CLAIMED,
            attempts=run.attempts + 1,
            claimed_by=owner[:100],
            claimed_at=now,
            finished_at=None,
        )
        .execution_options(synchronize_session=False)
    )
    return Claim(run.id, run.attempts + 1) if result.rowcount == 1 else None  # type: ignore[attr-defined]


def mark_run_posting(session: Session, claim: Claim) -> bool:
    """Last step before chat.postMessage; False when the claim was lost meanwhile (then do not post)."""
    result = session.execute(
        update(DigestRun)
        .where(DigestRun.id == claim.run_id, DigestRun.attempts == claim.attempt, DigestRun.status == DIGEST_CLAIMED)
        .values(status=DIGEST_POSTING)
        .execution_options(synchronize_session=False)
    )
    return result.rowcount == 1  # type: ignore[attr-defined]


def finish_run(
    session: Session,
    claim: Claim,
    status: str,
    now: datetime,
    *,
    message_ts: str | None = None,
    error: str | None = None,
) -> bool:
    result = session.execute(
        update(DigestRun)
        .where(DigestRun.id == claim.run_id, DigestRun.attempts == claim.attempt)
        .values(status=status, finished_at=now, message_ts=message_ts, error=error)
        .execution_options(synchronize_session=False)
    )
    return result.rowcount == 1  # type: ignore[attr-defined]


# --- one channel's week, read by aggregate queries ----------------------------------------------------------


T = TypeVar("T")


@dataclass(frozen=True)
class EarlierItem:
    """What answered a question the knowledge base answered by itself (Question.answered_by_earlier): an earlier
    question or a lesson. Where it is and who wrote it (the earlier question's accepted answer, or the lesson)
    only when the digest's channel may see it (its own, or a public one): else only its kind."""

    kind: str  # EARLIER_QUESTION or EARLIER_LESSON
    channel_id: str | None = None
    message_ts: str | None = None  # the earlier question or the lesson
    author_id: str | None = None  # who wrote the earlier question's accepted answer, or the lesson
    answer_ts: str | None = None  # the earlier question's accepted answer, in its thread


@dataclass(frozen=True)
class AnsweredQuestion:
    """A question resolved in the week: by an accepted answer (answerer_id, answer_ts), or by the knowledge
    base (`earlier`: the earlier question or lesson the asker said answers it)."""

    question_id: int
    text: str
    tags: tuple[str, ...]
    message_ts: str | None
    answerer_id: str | None
    answer_ts: str | None
    resolved_at: datetime | None
    earlier: EarlierItem | None = None


@dataclass(frozen=True)
class OpenQuestion:
    question_id: int
    text: str
    tags: tuple[str, ...]
    message_ts: str | None
    created_at: datetime
    replies: int


@dataclass(frozen=True)
class SharedLesson:
    lesson_id: int
    text: str
    tags: tuple[str, ...]
    author_id: str
    message_ts: str | None
    helpful: int


@dataclass(frozen=True)
class NewExpert:
    user_id: str
    tags: tuple[str, ...]


@dataclass(frozen=True)
class Gap:
    tag: str
    questions: int
    has_session: bool = False  # someone announced a lunch-and-learn on it (models/sessions.py)


@dataclass(frozen=True)
class Listing(Generic[T]):
    """The first items of a list and how many there are in all (for "…and N more")."""

    items: tuple[T, ...] = ()
    total: int = 0

    @property
    def more(self) -> int:
        return max(self.total - len(self.items), 0)


@dataclass(frozen=True)
class DigestData:
    """Everything one channel's digest shows, for [since, until): plain data, no session attached."""

    team_id: str
    channel_id: str
    since: datetime
    until: datetime
    asked: int
    answered: Listing[AnsweredQuestion]
    open: Listing[OpenQuestion]
    lessons: Listing[SharedLesson]
    helpers: Listing[Helper]
    new_experts: Listing[NewExpert]
    gaps: Listing[Gap]
    answered_by_earlier: int = 0  # of the answered: by the knowledge base by itself ("This answers it")
    # Mentoring (models/mentoring.py): who mentored on the week's topics here, and the tags people who asked
    # here wait for a mentor on (with how many wait).
    mentors: tuple[tuple[str, tuple[str, ...]], ...] = ()
    mentor_demand: tuple[tuple[str, int], ...] = ()

    @property
    def is_empty(self) -> bool:
        return not (
            self.asked
            or self.answered.total
            or self.open.total
            or self.lessons.total
            or self.helpers.total
            or self.new_experts.total
        )


POSTED_STATUSES = (STATUS_OPEN, STATUS_RESOLVED)  # questions that made it into the channel


def load_digest_data(
    session: Session, team_id: str, channel_id: str, since: datetime, until: datetime, limit: int = 10
) -> DigestData:
    """Read one channel's week with a fixed number of indexed aggregate queries (no per-item queries).

    Every query is pinned to (team_id, channel_id): a digest never sees another channel's content, but for
    what answered a question the knowledge base answered, which may be a public channel's earlier question or
    lesson (never a private channel's: _earlier_items). New experts are workspace-wide facts, so only those in
    topics this channel itself had this week are shown.
    """
    in_channel_q = and_(
        Question.team_id == team_id,
        Question.channel_id == channel_id,
        Question.status.in_(POSTED_STATUSES),
    )
    asked = session.scalar(
        select(func.count()).where(in_channel_q, Question.created_at >= since, Question.created_at < until)
    )

    total = func.count().over()
    # Answered: resolved in the week with an accepted answer, or by the knowledge base (an earlier question
    # or lesson the asker said answers it); the second total counts those.
    by_earlier_total = func.count(case((Question.answered_by_earlier, 1))).over()
    answered_rows = session.execute(
        select(
            Question.id,
            Question.text,
            Question.message_ts,
            Question.resolved_at,
            Answer.user_id,
            Answer.ts,
            case((Question.answered_by_earlier, Question.resolution_ref)),
            by_earlier_total,
            total,
        )
        .outerjoin(Answer, Answer.id == Question.accepted_answer_id)
        .where(
            Question.team_id == team_id,
            Question.channel_id == channel_id,
            Question.status == STATUS_RESOLVED,
            or_(Answer.id.is_not(None), Question.answered_by_earlier),
            Question.resolved_at >= since,
            Question.resolved_at < until,
        )
        .order_by(Question.resolved_at, Question.id)
        .limit(limit)
    ).all()
    earlier = _earlier_items(session, team_id, channel_id, [row[6] for row in answered_rows])

    replies = (
        select(func.count())
        .where(Answer.question_id == Question.id, Answer.deleted_at.is_(None))
        .correlate(Question)
        .scalar_subquery()
    )
    open_rows = session.execute(
        select(Question.id, Question.text, Question.message_ts, Question.created_at, replies, total)
        .where(
            Question.team_id == team_id,
            Question.channel_id == channel_id,
            Question.status == STATUS_OPEN,
            Question.created_at >= since,
            Question.created_at < until,
        )
        .order_by(Question.created_at, Question.id)
        .limit(limit)
    ).all()

    lesson_helpful = (
        select(func.count())
        .where(Vote.lesson_id == Lesson.id, Vote.kind == VOTE_HELPFUL)
        .correlate(Lesson)
        .scalar_subquery()
    )
    lesson_rows = session.execute(
        select(Lesson.id, Lesson.text, Lesson.author_id, Lesson.message_ts, lesson_helpful, total)
        .where(
            Lesson.team_id == team_id,
            Lesson.channel_id == channel_id,
            Lesson.message_ts.is_not(None),
            Lesson.created_at >= since,
            Lesson.created_at < until,
        )
        .order_by(Lesson.created_at, Lesson.id)
        .limit(limit)
    ).all()

    question_ids = [row[0] for row in answered_rows] + [row[0] for row in open_rows]
    question_tags = _tags(
        session, select(QuestionTag.question_id, QuestionTag.tag, QuestionTag.position), QuestionTag, question_ids
    )
    lesson_tags = _tags(
        session, select(LessonTag.lesson_id, LessonTag.tag, LessonTag.position), LessonTag, [r[0] for r in lesson_rows]
    )

    helpers, helpers_total = top_helpers(session, team_id, since, until, limit=limit, channel_id=channel_id)

    # The week's topics here: every tag of the window's questions (with how many asked, and whether anyone
    # declared it: the knowledge gaps), plus the window's lesson tags. New experts are workspace-wide facts,
    # so a channel hears only of those in its own topics of the week.
    in_window = and_(in_channel_q, Question.created_at >= since, Question.created_at < until)
    declared = exists().where(Expertise.team_id == team_id, Expertise.tag == QuestionTag.tag).correlate(QuestionTag)
    tag_rows = session.execute(
        select(QuestionTag.tag, func.count(func.distinct(Question.id)), declared)
        .join(Question, Question.id == QuestionTag.question_id)
        .where(in_window)
        .group_by(QuestionTag.tag)
    ).all()
    lesson_topics = session.scalars(
        select(LessonTag.tag)
        .join(Lesson, Lesson.id == LessonTag.lesson_id)
        .where(
            Lesson.team_id == team_id,
            Lesson.channel_id == channel_id,
            Lesson.message_ts.is_not(None),
            Lesson.created_at >= since,
            Lesson.created_at < until,
        )
        .distinct()
    ).all()
    topics = sorted({tag for tag, _, _ in tag_rows} | set(lesson_topics))
    expert_rows = (
        session.execute(
            select(Expertise.user_id, Expertise.tag)
            .where(
                Expertise.team_id == team_id,
                Expertise.declared_at >= since,
                Expertise.declared_at < until,
                Expertise.tag.in_(topics),
            )
            .order_by(Expertise.declared_at, Expertise.user_id, Expertise.tag)
        ).all()
        if topics
        else []
    )
    gaps = sorted(((tag, int(n)) for tag, n, has_expert in tag_rows if not has_expert), key=lambda g: (-g[1], g[0]))
    with_sessions = tags_with_sessions(session, team_id, [tag for tag, _ in gaps[:limit]])

    experts: dict[str, list[str]] = {}
    for user_id, tag in expert_rows:
        experts.setdefault(user_id, []).append(tag)
    new_experts = [NewExpert(user_id, tuple(tags)) for user_id, tags in experts.items()]

    return DigestData(
        team_id=team_id,
        channel_id=channel_id,
        since=since,
        until=until,
        asked=int(asked or 0),
        answered=_listing(
            [
                AnsweredQuestion(
                    qid, text, question_tags.get(qid, ()), ts, answerer, answer_ts, resolved_at, earlier.get(ref)
                )
                for qid, text, ts, resolved_at, answerer, answer_ts, ref, _, _ in answered_rows
            ],
            answered_rows,
        ),
        answered_by_earlier=int(answered_rows[0][-2]) if answered_rows else 0,
        open=_listing(
            [
                OpenQuestion(qid, text, question_tags.get(qid, ()), ts, created_at, int(n or 0))
                for qid, text, ts, created_at, n, _ in open_rows
            ],
            open_rows,
        ),
        lessons=_listing(
            [
                SharedLesson(lid, text, lesson_tags.get(lid, ()), author, ts, int(n or 0))
                for lid, text, author, ts, n, _ in lesson_rows
            ],
            lesson_rows,
        ),
        helpers=Listing(tuple(helpers), helpers_total),
        new_experts=Listing(tuple(new_experts[:limit]), len(new_experts)),
        gaps=Listing(tuple(Gap(tag, n, tag in with_sessions) for tag, n in gaps[:limit]), len(gaps)),
        mentors=tuple(mentors_on(session, team_id, topics, since)),
        mentor_demand=tuple(waiting_demand(session, team_id, channel_id)),
    )


def _earlier_items(session: Session, team_id: str, channel_id: str, refs: list[str | None]) -> dict[str, EarlierItem]:
    """resolution_ref -> what it names, for the questions the knowledge base answered (two queries at most).
    Where an item is and who wrote it is read only for items this channel may see: its own, or a public
    channel's (never a private channel's, elsewhere)."""
    wanted = {ref: parsed for ref in refs if ref and (parsed := parse_earlier_ref(ref)) is not None}
    found = {ref: EarlierItem(kind) for ref, (kind, _) in wanted.items()}
    ids = {kind: sorted({n for k, n in wanted.values() if k == kind}) for kind in (EARLIER_QUESTION, EARLIER_LESSON)}
    if ids[EARLIER_QUESTION]:
        rows = session.execute(
            select(Question.id, Question.channel_id, Question.message_ts, Answer.user_id, Answer.ts)
            .outerjoin(Answer, and_(Answer.id == Question.accepted_answer_id, Answer.deleted_at.is_(None)))
            .where(
                Question.team_id == team_id,
                Question.id.in_(ids[EARLIER_QUESTION]),
                or_(Question.channel_private.is_(False), Question.channel_id == channel_id),
            )
        )
        for item_id, channel, ts, author, answer_ts in rows:
            found[f"{EARLIER_QUESTION}:{item_id}"] = EarlierItem(EARLIER_QUESTION, channel, ts, author, answer_ts)
    if ids[EARLIER_LESSON]:
        lessons = session.execute(
            select(Lesson.id, Lesson.channel_id, Lesson.message_ts, Lesson.author_id).where(
                Lesson.team_id == team_id,
                Lesson.id.in_(ids[EARLIER_LESSON]),
                or_(Lesson.channel_private.is_(False), Lesson.channel_id == channel_id),
            )
        )
        for item_id, channel, ts, author in lessons:
            found[f"{EARLIER_LESSON}:{item_id}"] = EarlierItem(EARLIER_LESSON, channel, ts, author)
    return found


def _listing(items: list[T], rows: Sequence[Any]) -> Listing[T]:
    """Rows carry `COUNT(*) OVER ()` last: the total before LIMIT."""
    return Listing(tuple(items), int(rows[0][-1]) if rows else 0)


def _tags(session: Session, query, table, ids: list[int]) -> dict[int, tuple[str, ...]]:  # type: ignore[no-untyped-def]
    """Tags of many questions (or lessons) in one query, in the order they were written."""
    if not ids:
        return {}
    owner = query.selected_columns[0]
    found: dict[int, list[str]] = {}
    for owner_id, tag, _position in session.execute(query.where(owner.in_(ids)).order_by(owner, table.position)):
        found.setdefault(owner_id, []).append(tag)
    return {owner_id: tuple(tags) for owner_id, tags in found.items()}
