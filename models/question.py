"""Questions, their answers (thread replies) and the reactions that vote on answers and lessons."""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime, timedelta

from sqlalchemy import (
    ColumnElement,
    ForeignKey,
    Index,
    String,
    Text,
    UniqueConstraint,
    and_,
    delete,
    exists,
    or_,
    select,
    true,
    update,
)
from sqlalchemy import text as sql_text
from sqlalchemy.ext.hybrid import hybrid_property
from sqlalchemy.orm import Mapped, Session, mapped_column, relationship

from models.base import Base
from models.workspace import Workspace

STATUS_POSTING = "posting"  # stored, owed to its channel until Slack confirms the post (bot/posting.py)
STATUS_OPEN = "open"
STATUS_RESOLVED = "resolved"
STATUS_UNPOSTED = "unposted"  # Slack refused the post; the asker was told and has their text back
RESOLUTION_SIMILAR = "similar"  # the asker said a suggested earlier question or lesson answers it
EARLIER_QUESTION, EARLIER_LESSON = "question", "lesson"  # what resolution_ref names: "question:<id>", "lesson:<id>"


class Question(Base):
    __tablename__ = "questions"
    __table_args__ = (
        UniqueConstraint("team_id", "channel_id", "message_ts"),
        UniqueConstraint("team_id", "request_key"),
        Index("ix_questions_team_status", "team_id", "status"),
        Index("ix_questions_team_channel_created", "team_id", "channel_id", "created_at"),
        # Workspace-wide windows (stats) and one person's questions (App Home, forget-user): migration 0005.
        Index("ix_questions_team_created", "team_id", "created_at"),
        Index("ix_questions_team_asker_status", "team_id", "asker_id", "status"),
        # The questions still owed to their channel, oldest first (bot/posting.py's tick; migration 0008).
        Index(
            "ix_questions_owed",
            "created_at",
            postgresql_where=sql_text("status = 'posting'"),
            sqlite_where=sql_text("status = 'posting'"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    team_id: Mapped[str] = mapped_column(String(32))
    channel_id: Mapped[str] = mapped_column(String(32))
    # Private until Slack tells us otherwise, so a question never leaks by default.
    channel_private: Mapped[bool] = mapped_column(default=True)
    asker_id: Mapped[str] = mapped_column(String(32))
    text: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), default=STATUS_POSTING)
    message_ts: Mapped[str | None] = mapped_column(String(32))
    # What made this question (a slash command's trigger_id, a modal's view id): a retry stores nothing twice.
    request_key: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime]
    resolved_at: Mapped[datetime | None]
    accepted_answer_id: Mapped[int | None] = mapped_column(
        ForeignKey("answers.id", use_alter=True, ondelete="SET NULL")
    )
    # Routing (bot/routing/escalation.py): 0 not routed yet, 1 and 2 after each round of DMs, 3 after the thread bump;
    # next_escalation_at is when the routing tick takes the next step (None: nothing more to do).
    escalation_level: Mapped[int] = mapped_column(default=0)
    next_escalation_at: Mapped[datetime | None] = mapped_column(index=True)
    # Resolved without an accepted answer: RESOLUTION_SIMILAR when the asker said an earlier question or
    # lesson ("question:<id>" / "lesson:<id>" in resolution_ref) answers it (migration 0006).
    resolution: Mapped[str | None] = mapped_column(String(16))
    resolution_ref: Mapped[str | None] = mapped_column(String(40))
    # Posting (bot/posting.py, migration 0008): how many attempts claimed it, and until when the current one
    # holds it. An attempt after the first may follow one that reached Slack: it looks before it posts.
    post_attempts: Mapped[int] = mapped_column(default=0, server_default="0")
    post_claimed_until: Mapped[datetime | None]

    tags: Mapped[list[QuestionTag]] = relationship(
        back_populates="question", cascade="all, delete-orphan", order_by="QuestionTag.position", lazy="selectin"
    )

    @property
    def tag_names(self) -> list[str]:
        return [tag.tag for tag in self.tags]

    # The knowledge base answered it by itself: resolved because the asker said a suggested earlier question
    # or lesson answers it ("This answers it"), with no accepted answer since (an accept takes over; taking it
    # back falls back to the earlier item). It counts as answered everywhere: the stats (as every resolved
    # question), the App Home (never listed as open) and the digests, which name what answered it. The one
    # rule, in Python and in SQL.
    @hybrid_property
    def answered_by_earlier(self) -> bool:
        return (
            self.status == STATUS_RESOLVED and self.accepted_answer_id is None and self.resolution == RESOLUTION_SIMILAR
        )

    @answered_by_earlier.inplace.expression
    @classmethod
    def _answered_by_earlier_in_sql(cls) -> ColumnElement[bool]:
        return and_(
            cls.status == STATUS_RESOLVED, cls.accepted_answer_id.is_(None), cls.resolution == RESOLUTION_SIMILAR
        )

    @property
    def earlier_ref(self) -> tuple[str, int] | None:
        """(EARLIER_QUESTION or EARLIER_LESSON, its id) of what answered it, when answered_by_earlier."""
        return parse_earlier_ref(self.resolution_ref) if self.answered_by_earlier else None


class QuestionTag(Base):
    __tablename__ = "question_tags"
    __table_args__ = (Index("ix_question_tags_team_tag", "team_id", "tag"),)

    question_id: Mapped[int] = mapped_column(ForeignKey("questions.id", ondelete="CASCADE"), primary_key=True)
    tag: Mapped[str] = mapped_column(String(64), primary_key=True)
    team_id: Mapped[str] = mapped_column(String(32))
    position: Mapped[int] = mapped_column(default=0)

    question: Mapped[Question] = relationship(back_populates="tags")


class Answer(Base):
    __tablename__ = "answers"
    __table_args__ = (
        UniqueConstraint("team_id", "channel_id", "ts"),
        # One person's answers, newest first: routing's recent answers per candidate, evidence upkeep (0010).
        Index("ix_answers_team_user_created", "team_id", "user_id", "created_at"),
        # Live answers of a question in time order: its first answer is one index-only lookup (stats, 0005).
        Index(
            "ix_answers_question_live",
            "question_id",
            "created_at",
            postgresql_where=sql_text("deleted_at IS NULL"),
            sqlite_where=sql_text("deleted_at IS NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    team_id: Mapped[str] = mapped_column(String(32))
    question_id: Mapped[int] = mapped_column(ForeignKey("questions.id", ondelete="CASCADE"), index=True)
    channel_id: Mapped[str] = mapped_column(String(32))
    ts: Mapped[str] = mapped_column(String(32))
    user_id: Mapped[str] = mapped_column(String(32))
    text: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime]
    edited_at: Mapped[datetime | None]
    deleted_at: Mapped[datetime | None]


class EarlyReply(Base):
    """A thread reply that arrived while a question of its channel was being posted, before the question's
    message ts was stored (Slack's answer to the post was still on its way): its thread may be that question's.
    Kept until the ts is stored, then an answer if the thread is the question's (bot/qa.py record_posted);
    dropped once no question of the channel is being posted any more (migration 0008)."""

    __tablename__ = "early_replies"
    __table_args__ = (Index("ix_early_replies_thread", "team_id", "channel_id", "thread_ts"),)

    team_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    channel_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    ts: Mapped[str] = mapped_column(String(32), primary_key=True)
    thread_ts: Mapped[str] = mapped_column(String(32))
    user_id: Mapped[str] = mapped_column(String(32))
    text: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime]


VOTE_ACCEPT = "accept"
VOTE_HELPFUL = "helpful"


class Vote(Base):
    """A reaction that counts: the asker's accept on an answer, or anyone's helpful emoji on an answer or lesson."""

    __tablename__ = "votes"
    __table_args__ = (
        UniqueConstraint("team_id", "channel_id", "message_ts", "voter_id", "reaction"),
        Index("ix_votes_team_author", "team_id", "author_id"),
        Index("ix_votes_team_created", "team_id", "created_at"),  # top helpers of a period (0005)
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    team_id: Mapped[str] = mapped_column(String(32))
    channel_id: Mapped[str] = mapped_column(String(32))
    message_ts: Mapped[str] = mapped_column(String(32))
    voter_id: Mapped[str] = mapped_column(String(32))
    reaction: Mapped[str] = mapped_column(String(100))
    kind: Mapped[str] = mapped_column(String(16))
    author_id: Mapped[str] = mapped_column(String(32))
    answer_id: Mapped[int | None] = mapped_column(ForeignKey("answers.id", ondelete="CASCADE"), index=True)
    lesson_id: Mapped[int | None] = mapped_column(ForeignKey("lessons.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime]


# --- store functions (session first) ---------------------------------------------------------


def parse_earlier_ref(ref: str | None) -> tuple[str, int] | None:
    """A resolution_ref, "question:<id>" or "lesson:<id>", as (kind, id); None for anything else."""
    kind, _, number = (ref or "").partition(":")
    if kind not in (EARLIER_QUESTION, EARLIER_LESSON) or not number.isdigit():
        return None
    return kind, int(number)


def fetch_question_by_request(session: Session, team_id: str, request_key: str) -> Question | None:
    return session.scalar(select(Question).where(Question.team_id == team_id, Question.request_key == request_key))


def question_id_by_request(session: Session, team_id: str, request_key: str) -> int | None:
    return session.scalar(select(Question.id).where(Question.team_id == team_id, Question.request_key == request_key))


def fetch_question_by_ts(session: Session, team_id: str, channel_id: str, message_ts: str) -> Question | None:
    return session.scalar(
        select(Question).where(
            Question.team_id == team_id, Question.channel_id == channel_id, Question.message_ts == message_ts
        )
    )


def fetch_answer(session: Session, team_id: str, channel_id: str, ts: str) -> Answer | None:
    return session.scalar(
        select(Answer).where(Answer.team_id == team_id, Answer.channel_id == channel_id, Answer.ts == ts)
    )


def latest_accept_vote(session: Session, question: Question, asker_id: str) -> Vote | None:
    """The asker's most recent accept on a live answer of this question (after one was taken back)."""
    return session.scalar(
        select(Vote)
        .join(Answer, Answer.id == Vote.answer_id)
        .where(
            Answer.question_id == question.id,
            Answer.deleted_at.is_(None),
            Vote.kind == VOTE_ACCEPT,
            Vote.voter_id == asker_id,
        )
        .order_by(Vote.created_at.desc(), Vote.id.desc())
        .limit(1)
    )


def readable(private_channels: Collection[str] | None) -> ColumnElement[bool]:
    """Questions someone may see: in a public channel, or in one of `private_channels`, those Slack says they
    are a member of (None: every channel, for a caller that checks each private one itself). A question counts
    as private until Slack said its channel is public."""
    if private_channels is None:
        return true()
    return or_(Question.channel_private.is_(False), Question.channel_id.in_(sorted(private_channels)))


def open_questions_of(
    session: Session, team_id: str, asker_id: str, *, readable_private: Collection[str] | None, limit: int = 10
) -> list[Question]:
    return list(
        session.scalars(
            select(Question)
            .where(
                Question.team_id == team_id,
                Question.asker_id == asker_id,
                Question.status == STATUS_OPEN,
                readable(readable_private),
            )
            .order_by(Question.created_at.desc())
            .limit(limit)
        )
    )


# --- posting: claims on owed questions (bot/posting.py) ---------------------------------------------------------


def claim_posting(session: Session, question_id: int, now: datetime, lease: timedelta) -> int | None:
    """Take the posting of an owed question until `now + lease`: the attempt's number (1 for the first), or
    None when it is not owed any more or another attempt holds it. One conditional UPDATE, so two runtimes
    never both get it; a lease left by a process that died runs out by itself."""
    free = or_(Question.post_claimed_until.is_(None), Question.post_claimed_until <= now)
    claimed = session.execute(
        update(Question)
        .where(Question.id == question_id, Question.status == STATUS_POSTING, free)
        .values(post_attempts=Question.post_attempts + 1, post_claimed_until=now + lease)
        .returning(Question.post_attempts)
        .execution_options(synchronize_session=False)
    ).first()
    return int(claimed[0]) if claimed is not None else None


def release_posting(session: Session, question_id: int) -> None:
    """Give the claim back (nothing of this attempt can reach Slack any more): the next attempt may start now."""
    session.execute(
        update(Question)
        .where(Question.id == question_id, Question.status == STATUS_POSTING)
        .values(post_claimed_until=None)
        .execution_options(synchronize_session=False)
    )


def owed_questions(session: Session, created_by: datetime, now: datetime, limit: int) -> list[tuple[int, str]]:
    """(id, team) of questions owed to their channel, stored by `created_by` and claimed by no attempt now."""
    rows = session.execute(
        select(Question.id, Question.team_id)
        .join(Workspace, Workspace.team_id == Question.team_id)
        .where(
            Question.status == STATUS_POSTING,
            Question.created_at <= created_by,
            or_(Question.post_claimed_until.is_(None), Question.post_claimed_until <= now),
            Workspace.active.is_(True),  # a workspace whose token Slack refused waits until it works again
        )
        .order_by(Question.created_at, Question.id)
        .limit(limit)
    ).all()
    return [(question_id, team_id) for question_id, team_id in rows]


def thread_or_posting(session: Session, team_id: str, channel_id: str, thread_ts: str) -> tuple[Question | None, bool]:
    """For a reply whose thread is no stored question: the question whose ts was stored meanwhile, or whether
    a question of the channel is still being posted (then the thread may be its).

    On PostgreSQL the rows are read FOR SHARE: a transaction storing a question's ts (which updates its row)
    either committed before, and its row is read as it left it, or waits until this one committed, and then
    sees the early reply this one kept (read committed gives each statement a fresh snapshot). SQLite
    serializes writing transactions (BEGIN IMMEDIATE) and needs no lock."""
    rows = session.scalars(
        select(Question)
        .where(
            Question.team_id == team_id,
            Question.channel_id == channel_id,
            or_(Question.message_ts == thread_ts, Question.status == STATUS_POSTING),
        )
        .with_for_update(read=True)
    ).all()
    posted = next((question for question in rows if question.message_ts == thread_ts), None)
    return posted, posted is None and any(question.status == STATUS_POSTING for question in rows)


def forget_early_replies(session: Session, team_id: str, channel_id: str) -> None:
    """Drop the channel's early replies once none of its questions is being posted (they answered none)."""
    still_posting = exists().where(
        Question.team_id == team_id, Question.channel_id == channel_id, Question.status == STATUS_POSTING
    )
    session.execute(
        delete(EarlyReply)
        .where(EarlyReply.team_id == team_id, EarlyReply.channel_id == channel_id, ~still_posting)
        .execution_options(synchronize_session=False)
    )
