"""Weekly digest subscriptions per channel, and the (team, channel, week) rows that make posting exactly-once."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base


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
    updated_at: Mapped[datetime]


DIGEST_CLAIMED = "claimed"
DIGEST_POSTED = "posted"
DIGEST_EMPTY = "empty"
DIGEST_FAILED = "failed"


class DigestRun(Base):
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
