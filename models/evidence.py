"""Routing evidence: each person's answers folded into sums, kept up to date as answers, accepts and votes change.

What the sums are and how they are read: bot/routing/standing.py. Who keeps them: bot/routing/upkeep.py (in
the transaction of each change, and `python app.py rebuild-evidence`). Only live (not deleted) answers count,
over all history: the decays age old answers out. A person without a live answer has no rows.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base


class PersonEvidence(Base):
    """One person's answers, folded. The decayed sums are their values at `as_of` (the person's last answer);
    `text_profile` folds their most recent answers' texts and times of day.

    The row is also the lock that serializes two recomputes of the same person (SELECT … FOR UPDATE)."""

    __tablename__ = "person_evidence"

    team_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    answers: Mapped[int] = mapped_column(default=0)
    helpful_votes: Mapped[int] = mapped_column(default=0)
    accepted: Mapped[int] = mapped_column(default=0)
    last_answered_at: Mapped[datetime | None]
    activity: Mapped[float] = mapped_column(default=0.0)  # answers, 2-day half-life
    engagement: Mapped[float] = mapped_column(default=0.0)  # answers, 30-day half-life
    accepted_recent: Mapped[float] = mapped_column(default=0.0)  # accepted answers, 60-day half-life
    as_of: Mapped[datetime]
    # The text and hour features' input, from the person's 30 most recent answers: TextProfile.to_json
    # (bot/routing/standing.py). NULL until the first refresh.
    text_profile: Mapped[str | None] = mapped_column(Text)


class TagEvidence(Base):
    """One person's answers on one tag. `rank_key` orders people by expertise on the tag whatever their as_of
    (log2(expertise) + (as_of - epoch) / 90 days), so the top candidates of a tag are one index range scan."""

    __tablename__ = "tag_evidence"
    __table_args__ = (Index("ix_tag_evidence_team_tag_rank", "team_id", "tag", "rank_key"),)

    team_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    tag: Mapped[str] = mapped_column(String(64), primary_key=True)
    answers: Mapped[int] = mapped_column(default=0)
    accepted: Mapped[int] = mapped_column(default=0)
    helpful_votes: Mapped[int] = mapped_column(default=0)
    expertise: Mapped[float] = mapped_column(default=0.0)  # answer values, 90-day half-life
    as_of: Mapped[datetime]
    rank_key: Mapped[float]
