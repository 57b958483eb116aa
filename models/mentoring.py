"""Mentoring: offers to mentor on a topic (with how many people at once), requests for a mentor, and the
pairings PeerLearn made between them.

- `mentor_offers`: one row per (person, tag) they offered to mentor on; `capacity` is how many people they
  mentor at once (the same on all their rows: an offer again sets it for every tag).
- `mentor_requests`: one row per `/ask mentor` command (unique request key: a redelivered command stores
  nothing twice); `waiting` until a mentor is found, then `matched`.
- `mentor_pairings`: one per matched request (unique request id: a request is never paired twice), active,
  paused or ended, with the group DM, when its introduction was posted, when the check-in is due and was
  sent, and when it ends by itself. Sends are claimed by conditional UPDATEs (bot/mentoring.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import ForeignKey, Index, String, UniqueConstraint, func, or_, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from models.base import Base

REQUEST_WAITING = "waiting"
REQUEST_MATCHED = "matched"

PAIRING_ACTIVE = "active"
PAIRING_PAUSED = "paused"
PAIRING_ENDED = "ended"
LIVE = (PAIRING_ACTIVE, PAIRING_PAUSED)  # pairings that count toward a mentor's capacity


class MentorOffer(Base):
    __tablename__ = "mentor_offers"

    team_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    tag: Mapped[str] = mapped_column(String(64), primary_key=True)
    capacity: Mapped[int]
    offered_at: Mapped[datetime]


class MentorRequest(Base):
    __tablename__ = "mentor_requests"
    __table_args__ = (
        UniqueConstraint("team_id", "request_key"),
        Index("ix_mentor_requests_team_status", "team_id", "status"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    team_id: Mapped[str] = mapped_column(String(32))
    mentee_id: Mapped[str] = mapped_column(String(32))
    tag: Mapped[str] = mapped_column(String(64))
    request_key: Mapped[str] = mapped_column(String(200))
    channel_id: Mapped[str] = mapped_column(String(32))  # where it was asked: the waiting note goes there
    status: Mapped[str] = mapped_column(String(16), default=REQUEST_WAITING)
    created_at: Mapped[datetime]
    matched_at: Mapped[datetime | None]


class MentorPairing(Base):
    __tablename__ = "mentor_pairings"
    __table_args__ = (
        UniqueConstraint("request_id"),
        Index("ix_mentor_pairings_team_mentor", "team_id", "mentor_id"),
        Index("ix_mentor_pairings_team_mentee", "team_id", "mentee_id"),
        Index("ix_mentor_pairings_status_checkin", "status", "checkin_due_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    team_id: Mapped[str] = mapped_column(String(32))
    request_id: Mapped[int] = mapped_column(ForeignKey("mentor_requests.id", ondelete="CASCADE"))
    mentor_id: Mapped[str] = mapped_column(String(32))
    mentee_id: Mapped[str] = mapped_column(String(32))
    tag: Mapped[str] = mapped_column(String(64))
    reason: Mapped[str] = mapped_column(String(500))  # why they were matched, as the introduction says
    status: Mapped[str] = mapped_column(String(16), default=PAIRING_ACTIVE)
    started_at: Mapped[datetime]
    ends_at: Mapped[datetime]
    checkin_due_at: Mapped[datetime | None]
    checkin_sent_at: Mapped[datetime | None]
    intro_claimed_at: Mapped[datetime | None]
    channel_id: Mapped[str | None] = mapped_column(String(32))  # the group DM
    intro_ts: Mapped[str | None] = mapped_column(String(32))
    ended_at: Mapped[datetime | None]
    ended_by: Mapped[str | None] = mapped_column(String(32))  # who ended it; None when its period ran out


def mentor_load(session: Session, team_id: str, user_ids: list[str]) -> dict[str, int]:
    """How many people each of them mentors now (active or paused pairings)."""
    if not user_ids:
        return {}
    rows = session.execute(
        select(MentorPairing.mentor_id, func.count())
        .where(
            MentorPairing.team_id == team_id,
            MentorPairing.mentor_id.in_(user_ids),
            MentorPairing.status.in_(LIVE),
        )
        .group_by(MentorPairing.mentor_id)
    )
    return {user_id: int(count) for user_id, count in rows}


def pairings_of(session: Session, team_id: str, user_id: str) -> list[MentorPairing]:
    """The person's live pairings, as mentor or mentee, oldest first."""
    return list(
        session.scalars(
            select(MentorPairing)
            .where(
                MentorPairing.team_id == team_id,
                (MentorPairing.mentor_id == user_id) | (MentorPairing.mentee_id == user_id),
                MentorPairing.status.in_(LIVE),
            )
            .order_by(MentorPairing.started_at, MentorPairing.id)
        )
    )


def mentors_on(
    session: Session, team_id: str, tags: Sequence[str], since: datetime
) -> list[tuple[str, tuple[str, ...]]]:
    """Who mentored on these tags since `since` (pairings live then), most pairings first, with their tags."""
    if not tags:
        return []
    rows = session.execute(
        select(MentorPairing.mentor_id, MentorPairing.tag).where(
            MentorPairing.team_id == team_id,
            MentorPairing.tag.in_(list(tags)),
            or_(MentorPairing.status.in_(LIVE), MentorPairing.ended_at >= since),
        )
    )
    by_mentor: dict[str, list[str]] = {}
    for mentor_id, tag in rows:
        by_mentor.setdefault(mentor_id, []).append(tag)
    ordered = sorted(by_mentor.items(), key=lambda item: (-len(item[1]), item[0]))
    return [(mentor_id, tuple(sorted(set(tags_of)))) for mentor_id, tags_of in ordered]


def waiting_demand(session: Session, team_id: str, channel_id: str | None = None) -> list[tuple[str, int]]:
    """Tags people wait for a mentor on (asked in `channel_id`, or anywhere), with how many wait, most first."""
    query = (
        select(MentorRequest.tag, func.count())
        .where(MentorRequest.team_id == team_id, MentorRequest.status == REQUEST_WAITING)
        .group_by(MentorRequest.tag)
    )
    if channel_id is not None:
        query = query.where(MentorRequest.channel_id == channel_id)
    rows = [(tag, int(count)) for tag, count in session.execute(query)]
    return sorted(rows, key=lambda row: (-row[1], row[0]))
