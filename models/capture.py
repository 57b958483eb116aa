"""What was captured from messages already in Slack (issue 20, section 1):

- `QuestionSource`: the message an "Ask PeerLearn about this" question was asked about (its channel, ts,
  author and link), so the posted question credits its author;
- `SavedThread` and `SavedMessage`: a message or thread saved with "Save as knowledge": the lesson it became,
  its title, its link, who saved it, and the messages kept (who wrote each: the lesson's contributors).
  One per thread (`team_id, channel_id, thread_ts`): saving it again updates it.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, String, Text, UniqueConstraint, select
from sqlalchemy.orm import Mapped, Session, mapped_column, relationship

from models.base import Base
from models.lesson import Lesson


class QuestionSource(Base):
    __tablename__ = "question_sources"
    __table_args__ = (Index("ix_question_sources_team_author", "team_id", "author_id"),)

    question_id: Mapped[int] = mapped_column(ForeignKey("questions.id", ondelete="CASCADE"), primary_key=True)
    team_id: Mapped[str] = mapped_column(String(32))
    channel_id: Mapped[str] = mapped_column(String(32))
    message_ts: Mapped[str] = mapped_column(String(32))
    author_id: Mapped[str | None] = mapped_column(String(32))  # None: a bot's or an integration's message
    permalink: Mapped[str | None] = mapped_column(String(500))


class SavedThread(Base):
    __tablename__ = "saved_threads"
    __table_args__ = (
        UniqueConstraint("team_id", "channel_id", "thread_ts"),
        Index("ix_saved_threads_team_saved_by", "team_id", "saved_by"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    team_id: Mapped[str] = mapped_column(String(32))
    channel_id: Mapped[str] = mapped_column(String(32))
    thread_ts: Mapped[str] = mapped_column(String(32))  # the thread's first message (or the lone message)
    lesson_id: Mapped[int] = mapped_column(ForeignKey("lessons.id", ondelete="CASCADE"), unique=True)
    title: Mapped[str] = mapped_column(String(150))
    permalink: Mapped[str | None] = mapped_column(String(500))
    saved_by: Mapped[str] = mapped_column(String(32))
    view_id: Mapped[str] = mapped_column(String(64))  # the form submission that saved it last (a retry: the same)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]

    lesson: Mapped[Lesson] = relationship()
    messages: Mapped[list[SavedMessage]] = relationship(
        back_populates="thread", cascade="all, delete-orphan", order_by="SavedMessage.position", lazy="selectin"
    )


class SavedMessage(Base):
    __tablename__ = "saved_thread_messages"
    __table_args__ = (Index("ix_saved_thread_messages_team_user", "team_id", "user_id"),)

    saved_thread_id: Mapped[int] = mapped_column(ForeignKey("saved_threads.id", ondelete="CASCADE"), primary_key=True)
    ts: Mapped[str] = mapped_column(String(32), primary_key=True)
    team_id: Mapped[str] = mapped_column(String(32))
    user_id: Mapped[str] = mapped_column(String(32))
    text: Mapped[str] = mapped_column(Text)  # as written (bot/text.py's stored form)
    position: Mapped[int] = mapped_column(default=0)

    thread: Mapped[SavedThread] = relationship(back_populates="messages")


def question_source(session: Session, question_id: int) -> QuestionSource | None:
    return session.get(QuestionSource, question_id)


def saved_thread(session: Session, team_id: str, channel_id: str, thread_ts: str) -> SavedThread | None:
    return session.scalars(
        select(SavedThread).where(
            SavedThread.team_id == team_id, SavedThread.channel_id == channel_id, SavedThread.thread_ts == thread_ts
        )
    ).one_or_none()


def is_posted_lesson(session: Session, team_id: str, channel_id: str, ts: str) -> bool:
    """Whether the message at `ts` is a lesson PeerLearn posted (`/teach`), not a thread saved as one."""
    lesson_id = session.scalar(
        select(Lesson.id).where(Lesson.team_id == team_id, Lesson.channel_id == channel_id, Lesson.message_ts == ts)
    )
    return (
        lesson_id is not None
        and session.scalar(select(SavedThread.id).where(SavedThread.lesson_id == lesson_id)) is None
    )
