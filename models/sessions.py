"""Lunch-and-learn sessions: the session a host announced, where it was posted, who signed up, and the experts
an admin invited to run one on a tag (bot/sessions.py decides; this module stores)."""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime

from sqlalchemy import ForeignKey, Index, String, Text, UniqueConstraint, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from models.base import Base

SESSION_SCHEDULED = "scheduled"
SESSION_CANCELLED = "cancelled"

POST_OWED = "owed"  # stored before the ack: the announcement is owed to this channel
POST_POSTING = "posting"  # claimed by one replica, which is posting it now
POST_POSTED = "posted"
POST_FAILED = "failed"  # Slack refused the channel (not a member, archived): not tried again


class LearningSession(Base):
    """A lunch-and-learn announced with `/teach session #tag <title> <when>`."""

    __tablename__ = "learning_sessions"
    __table_args__ = (
        UniqueConstraint("team_id", "request_key"),
        Index("ix_learning_sessions_team_starts", "team_id", "starts_at"),
        Index("ix_learning_sessions_status_starts", "status", "starts_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    team_id: Mapped[str] = mapped_column(String(32))
    host_id: Mapped[str] = mapped_column(String(32))
    tag: Mapped[str] = mapped_column(String(64))
    title: Mapped[str] = mapped_column(Text)  # as the host wrote it (bot/text.py: raw, escaped when shown)
    channel_id: Mapped[str] = mapped_column(String(32))  # where the command ran
    # Announced in at least one public channel: then anyone may see it listed (App Home, `/teach sessions`).
    public: Mapped[bool] = mapped_column(default=False)
    starts_at: Mapped[datetime]
    minutes: Mapped[int] = mapped_column(default=60)
    status: Mapped[str] = mapped_column(String(16), default=SESSION_SCHEDULED)
    request_key: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime]
    cancelled_at: Mapped[datetime | None]
    notes_asked_at: Mapped[datetime | None]  # claimed once: the host's "share your notes" DM
    lesson_id: Mapped[int | None] = mapped_column(ForeignKey("lessons.id", ondelete="SET NULL"))


class SessionPost(Base):
    """The session's announcement in one channel (its counts are redrawn with chat.update)."""

    __tablename__ = "session_posts"

    session_id: Mapped[int] = mapped_column(ForeignKey("learning_sessions.id", ondelete="CASCADE"), primary_key=True)
    channel_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    team_id: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16), default=POST_OWED)
    message_ts: Mapped[str | None] = mapped_column(String(32))


class SessionSignup(Base):
    """One person's answer to a session ("Sign me up" / "Can't make it"); a redelivered click changes nothing."""

    __tablename__ = "session_signups"
    __table_args__ = (Index("ix_session_signups_team_user", "team_id", "user_id"),)

    session_id: Mapped[int] = mapped_column(ForeignKey("learning_sessions.id", ondelete="CASCADE"), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    team_id: Mapped[str] = mapped_column(String(32))
    going: Mapped[bool] = mapped_column(default=True)
    changed_at: Mapped[datetime]
    reminded_at: Mapped[datetime | None]  # claimed once: the reminder DM before it starts
    told_cancelled_at: Mapped[datetime | None]  # claimed once: the "cancelled" DM


class SessionInvite(Base):
    """An expert asked by DM to run a session on a tag (an admin's "Invite" on a proposal): once per tag."""

    __tablename__ = "session_invites"
    __table_args__ = (UniqueConstraint("team_id", "tag", "expert_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    team_id: Mapped[str] = mapped_column(String(32))
    tag: Mapped[str] = mapped_column(String(64))
    expert_id: Mapped[str] = mapped_column(String(32))
    invited_by: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime]


def tags_with_sessions(session: Session, team_id: str, tags: Collection[str]) -> set[str]:
    """Of `tags`, those a lunch-and-learn was announced on (cancelled ones do not count): the knowledge gaps the
    digest and App Home no longer propose a session for."""
    if not tags:
        return set()
    return set(
        session.scalars(
            select(LearningSession.tag).where(
                LearningSession.team_id == team_id,
                LearningSession.tag.in_(list(tags)),
                LearningSession.status == SESSION_SCHEDULED,
            )
        )
    )
