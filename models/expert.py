"""People, the topics they declared, the DMs that route questions to them, and knowledge gaps."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String, UniqueConstraint, delete, exists, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from models.base import Base, insert_once
from models.question import STATUS_OPEN, Answer, Question, QuestionTag, readable

NOTIFY_IMMEDIATE = "immediate"
NOTIFY_DAILY = "daily"
NOTIFY_OFF = "off"


class Person(Base):
    """What PeerLearn knows about a member: profile cache from users.info and their preferences."""

    __tablename__ = "people"

    team_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    real_name: Mapped[str | None] = mapped_column(String(200))
    tz: Mapped[str | None] = mapped_column(String(64))
    is_bot: Mapped[bool] = mapped_column(default=False)
    deleted: Mapped[bool] = mapped_column(default=False)
    is_admin: Mapped[bool] = mapped_column(default=False)
    profile_fetched_at: Mapped[datetime | None]
    paused_until: Mapped[datetime | None]
    notify_mode: Mapped[str] = mapped_column(String(16), default=NOTIFY_IMMEDIATE)
    work_start_hour: Mapped[int | None]
    work_end_hour: Mapped[int | None]
    # The weekdays they work, as the digits of date.weekday() numbers ("01234"; bot/workdays.py); None: the
    # workspace's default days.
    work_days: Mapped[str | None] = mapped_column(String(7))


class Expertise(Base):
    """A topic someone declared with `/teach #tag`."""

    __tablename__ = "expertise"
    __table_args__ = (Index("ix_expertise_team_tag", "team_id", "tag"),)

    team_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    tag: Mapped[str] = mapped_column(String(64), primary_key=True)
    declared_at: Mapped[datetime]


ROUTE_SCHEDULED = "scheduled"
ROUTE_SENT = "sent"
ROUTE_TAKEN = "taken"
ROUTE_DECLINED = "declined"
ROUTE_CANCELLED = "cancelled"


class RouteRequest(Base):
    """A DM asking one expert to look at one question (sent now, or scheduled for their morning)."""

    __tablename__ = "route_requests"
    __table_args__ = (
        UniqueConstraint("question_id", "expert_id"),
        Index("ix_route_requests_due", "status", "send_at"),
        Index("ix_route_requests_team_expert_sent_send", "team_id", "expert_id", "sent_at", "send_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    team_id: Mapped[str] = mapped_column(String(32))
    question_id: Mapped[int] = mapped_column(ForeignKey("questions.id", ondelete="CASCADE"), index=True)
    expert_id: Mapped[str] = mapped_column(String(32))
    round: Mapped[int] = mapped_column(default=1)
    status: Mapped[str] = mapped_column(String(16), default=ROUTE_SCHEDULED)
    reason: Mapped[str | None] = mapped_column(String(500))
    send_at: Mapped[datetime]
    sent_at: Mapped[datetime | None]
    dm_channel: Mapped[str | None] = mapped_column(String(32))
    dm_ts: Mapped[str | None] = mapped_column(String(32))


class KnowledgeGap(Base):
    """A question asked about a tag nobody has declared or shown expertise in."""

    __tablename__ = "knowledge_gaps"
    __table_args__ = (
        UniqueConstraint("question_id", "tag"),
        Index("ix_knowledge_gaps_team_tag", "team_id", "tag"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    team_id: Mapped[str] = mapped_column(String(32))
    question_id: Mapped[int] = mapped_column(ForeignKey("questions.id", ondelete="CASCADE"))
    channel_id: Mapped[str] = mapped_column(String(32))
    tag: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime]


# --- store functions (session first) ---------------------------------------------------------


def declared_topics(session: Session, team_id: str, user_id: str) -> list[str]:
    return list(
        session.scalars(
            select(Expertise.tag)
            .where(Expertise.team_id == team_id, Expertise.user_id == user_id)
            .order_by(Expertise.tag)
        )
    )


def declare_topics(session: Session, team_id: str, user_id: str, tags: Iterable[str], now: datetime) -> list[str]:
    """Add topics; returns those that were new (declaring one twice changes nothing)."""
    return [
        tag
        for tag in dict.fromkeys(tags)
        if insert_once(session, Expertise(team_id=team_id, user_id=user_id, tag=tag, declared_at=now))
    ]


def remove_topics(session: Session, team_id: str, user_id: str, tags: Iterable[str]) -> list[str]:
    """Drop topics; returns those that were there."""
    wanted = list(dict.fromkeys(tags))
    found = list(
        session.scalars(
            select(Expertise.tag).where(
                Expertise.team_id == team_id, Expertise.user_id == user_id, Expertise.tag.in_(wanted)
            )
        )
    )
    if found:
        session.execute(
            delete(Expertise).where(
                Expertise.team_id == team_id, Expertise.user_id == user_id, Expertise.tag.in_(found)
            )
        )
    return [tag for tag in wanted if tag in found]


def ensure_person(session: Session, team_id: str, user_id: str) -> Person:
    person = session.get(Person, (team_id, user_id))
    if person is None:
        person = Person(team_id=team_id, user_id=user_id)
        if not insert_once(session, person):
            person = session.get(Person, (team_id, user_id))
            assert person is not None
    return person


# Author id of content whose writer asked PeerLearn to forget them (`python app.py forget-user`, bot/export.py):
# not a Slack id (those start with U or W), so it never matches a person and rankings leave it out.
FORGOTTEN_USER_ID = "forgotten"


def remember_profile(session: Session, team_id: str, user: Mapping[str, Any], now: datetime) -> Person:
    """Cache what `users.info` says about a member: name, time zone, bot or deactivated, workspace admin."""
    person = ensure_person(session, team_id, user["id"])
    profile = user.get("profile") or {}
    name = user.get("real_name") or profile.get("real_name") or user.get("name")
    person.real_name = name[:200] if name else None
    person.tz = (user.get("tz") or None) and str(user["tz"])[:64]
    person.is_bot = bool(user.get("is_bot"))
    person.deleted = bool(user.get("deleted"))
    person.is_admin = bool(user.get("is_admin") or user.get("is_owner") or user.get("is_primary_owner"))
    person.profile_fetched_at = now
    return person


def routed_to(
    session: Session, team_id: str, expert_id: str, *, readable_private: Collection[str] | None, limit: int = 10
) -> list[tuple[Question, RouteRequest]]:
    """Open questions routed to this expert (DM sent, or waiting for their morning) they haven't taken or declined,
    in the channels they may read (models.question.readable)."""
    rows = session.execute(
        select(Question, RouteRequest)
        .join(RouteRequest, RouteRequest.question_id == Question.id)
        .where(
            RouteRequest.team_id == team_id,
            RouteRequest.expert_id == expert_id,
            RouteRequest.status.in_((ROUTE_SCHEDULED, ROUTE_SENT)),
            Question.status == STATUS_OPEN,
            readable(readable_private),
        )
        .order_by(Question.created_at.desc(), Question.id.desc())
        .limit(limit)
    ).all()
    return [(question, request) for question, request in rows]


def open_questions_on_topics(
    session: Session,
    team_id: str,
    user_id: str,
    since: datetime,
    *,
    readable_private: Collection[str] | None,
    limit: int = 10,
) -> list[Question]:
    """Open questions since `since` on one of the person's topics that still wait for someone: not asked or
    answered by them, not routed to them (those are listed apart), not taken by another expert, and in a
    channel they may read (models.question.readable)."""
    on_my_topic = exists().where(
        QuestionTag.question_id == Question.id,
        QuestionTag.tag.in_(select(Expertise.tag).where(Expertise.team_id == team_id, Expertise.user_id == user_id)),
    )
    answered_by_me = exists().where(
        Answer.question_id == Question.id, Answer.user_id == user_id, Answer.deleted_at.is_(None)
    )
    routed_to_me = exists().where(RouteRequest.question_id == Question.id, RouteRequest.expert_id == user_id)
    taken = exists().where(RouteRequest.question_id == Question.id, RouteRequest.status == ROUTE_TAKEN)
    return list(
        session.scalars(
            select(Question)
            .where(
                Question.team_id == team_id,
                Question.status == STATUS_OPEN,
                Question.asker_id != user_id,
                Question.created_at >= since,
                on_my_topic,
                ~answered_by_me,
                ~routed_to_me,
                ~taken,
                readable(readable_private),
            )
            .order_by(Question.created_at.desc(), Question.id.desc())
            .limit(limit)
        )
    )
