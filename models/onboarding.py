"""Onboarding buddies: the workspace's onboarding settings, the volunteers, and each newcomer's pairing.

- `onboarding_settings`: one row per workspace that set any of them: the onboarding channel (newcomers are the
  people who join it), whether new members of the workspace (`team_join`) are newcomers too, and the
  first-week checklist (None: the default one). Who changed what is recorded in `settings_changes`.
- `buddy_volunteers`: who volunteered (`/teach buddy [up to N]`) and for how many newcomers at a time;
  `/teach buddy off` keeps the row with `active` false.
- `buddy_pairings`: one row per newcomer (unique per workspace: a redelivered join pairs once). `buddy_id` is
  None while no volunteer could take them; `introduced_at` is claimed (a conditional UPDATE) before the
  introduction is sent, `waiting_noted_at` before "no buddy yet" is said, so several replicas never say either
  twice. `ends_at`: until then the newcomer's questions reach their buddy first.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Index, String, Text, UniqueConstraint, func, select, update
from sqlalchemy.orm import Mapped, Session, mapped_column

from models.base import Base, insert_once
from models.expert import Person
from models.workspace import Workspace

PAIRING_WAITING = "waiting"  # no buddy yet
PAIRING_PAIRED = "paired"
PAIRING_SKIPPED = "skipped"  # a bot or a deactivated account: nobody to onboard


class OnboardingSettings(Base):
    __tablename__ = "onboarding_settings"

    team_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    channel_id: Mapped[str | None] = mapped_column(String(32))
    team_join: Mapped[bool] = mapped_column(default=False)
    checklist: Mapped[str | None] = mapped_column(Text)
    changed_at: Mapped[datetime]


class BuddyVolunteer(Base):
    __tablename__ = "buddy_volunteers"

    team_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    capacity: Mapped[int]
    active: Mapped[bool] = mapped_column(default=True)
    changed_at: Mapped[datetime]


class BuddyPairing(Base):
    __tablename__ = "buddy_pairings"
    __table_args__ = (
        UniqueConstraint("team_id", "newcomer_id"),
        Index("ix_buddy_pairings_team_status", "team_id", "status"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    team_id: Mapped[str] = mapped_column(String(32))
    newcomer_id: Mapped[str] = mapped_column(String(32))
    buddy_id: Mapped[str | None] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16), default=PAIRING_WAITING)
    source: Mapped[str] = mapped_column(String(16))  # "channel" or "team_join"
    joined_at: Mapped[datetime]
    paired_at: Mapped[datetime | None]
    ends_at: Mapped[datetime]
    introduced_at: Mapped[datetime | None]
    waiting_noted_at: Mapped[datetime | None]


def onboarding_settings(session: Session, team_id: str) -> OnboardingSettings | None:
    return session.get(OnboardingSettings, team_id)


def settings_row(session: Session, team_id: str, now: datetime) -> OnboardingSettings:
    """The workspace's row, created (once, whoever races) when it has none."""
    row = session.get(OnboardingSettings, team_id)
    if row is None and not insert_once(session, OnboardingSettings(team_id=team_id, changed_at=now)):
        row = session.get(OnboardingSettings, team_id)
    return row or session.get(OnboardingSettings, team_id)  # type: ignore[return-value]


def volunteer(session: Session, team_id: str, user_id: str, capacity: int, now: datetime) -> None:
    row = session.get(BuddyVolunteer, (team_id, user_id))
    if row is None and insert_once(
        session, BuddyVolunteer(team_id=team_id, user_id=user_id, capacity=capacity, active=True, changed_at=now)
    ):
        return
    row = row or session.get(BuddyVolunteer, (team_id, user_id))
    assert row is not None
    row.capacity, row.active, row.changed_at = capacity, True, now


def stop_volunteering(session: Session, team_id: str, user_id: str, now: datetime) -> bool:
    """False when they were not volunteering."""
    row = session.get(BuddyVolunteer, (team_id, user_id))
    if row is None or not row.active:
        return False
    row.active, row.changed_at = False, now
    return True


def active_volunteers(session: Session, team_id: str) -> dict[str, int]:
    """Volunteers now, with their capacity."""
    rows = session.execute(
        select(BuddyVolunteer.user_id, BuddyVolunteer.capacity).where(
            BuddyVolunteer.team_id == team_id, BuddyVolunteer.active.is_(True)
        )
    )
    return {user_id: capacity for user_id, capacity in rows}


def current_load(session: Session, team_id: str, now: datetime) -> dict[str, int]:
    """How many newcomers each buddy has whose first weeks are not over."""
    rows = session.execute(
        select(BuddyPairing.buddy_id, func.count())
        .where(BuddyPairing.team_id == team_id, BuddyPairing.status == PAIRING_PAIRED, BuddyPairing.ends_at > now)
        .group_by(BuddyPairing.buddy_id)
    )
    return {str(buddy_id): int(count) for buddy_id, count in rows}


def record_newcomer(
    session: Session, team_id: str, user_id: str, source: str, now: datetime, ends_at: datetime
) -> bool:
    """A newcomer to pair; False when they were recorded already (a redelivery, or joined both ways)."""
    return insert_once(
        session,
        BuddyPairing(
            team_id=team_id,
            newcomer_id=user_id,
            status=PAIRING_WAITING,
            source=source,
            joined_at=now,
            ends_at=ends_at,
        ),
    )


def waiting_pairings(session: Session, team_id: str, now: datetime, limit: int = 200) -> list[BuddyPairing]:
    """Newcomers still without a buddy whose first weeks are not over (after that, a buddy is no use)."""
    query = select(BuddyPairing).where(
        BuddyPairing.team_id == team_id, BuddyPairing.status == PAIRING_WAITING, BuddyPairing.ends_at > now
    )
    return list(session.scalars(query.order_by(BuddyPairing.joined_at, BuddyPairing.id).limit(limit)))


def teams_with_onboarding_owed(session: Session, now: datetime) -> list[str]:
    """The active workspaces with a newcomer waiting for a buddy, or an introduction not sent yet."""
    waiting = (BuddyPairing.status == PAIRING_WAITING) & (BuddyPairing.ends_at > now)
    unintroduced = (BuddyPairing.status == PAIRING_PAIRED) & BuddyPairing.introduced_at.is_(None)
    return list(
        session.scalars(
            select(BuddyPairing.team_id)
            .join(Workspace, Workspace.team_id == BuddyPairing.team_id)
            .where(waiting | unintroduced, Workspace.active.is_(True))
            .distinct()
            .order_by(BuddyPairing.team_id)
        )
    )


def owed_introductions(session: Session, team_id: str | None = None, limit: int = 200) -> list[int]:
    query = select(BuddyPairing.id).where(BuddyPairing.status == PAIRING_PAIRED, BuddyPairing.introduced_at.is_(None))
    if team_id is not None:
        query = query.where(BuddyPairing.team_id == team_id)
    return list(session.scalars(query.order_by(BuddyPairing.id).limit(limit)))


def assign_buddy(session: Session, pairing_id: int, buddy_id: str, now: datetime) -> bool:
    """Pair a waiting newcomer; False when another replica (or call) paired or skipped them already."""
    result = session.execute(
        update(BuddyPairing)
        .where(BuddyPairing.id == pairing_id, BuddyPairing.status == PAIRING_WAITING)
        .values(buddy_id=buddy_id, status=PAIRING_PAIRED, paired_at=now)
        .execution_options(synchronize_session=False)
    )
    return result.rowcount == 1  # type: ignore[attr-defined]


def skip_newcomer(session: Session, pairing_id: int) -> None:
    session.execute(
        update(BuddyPairing)
        .where(BuddyPairing.id == pairing_id, BuddyPairing.status == PAIRING_WAITING)
        .values(status=PAIRING_SKIPPED)
        .execution_options(synchronize_session=False)
    )


def claim_once(session: Session, pairing_id: int, column: str, now: datetime) -> bool:
    """Set `introduced_at` or `waiting_noted_at` if still unset: True for the one caller that did."""
    field = getattr(BuddyPairing, column)
    result = session.execute(
        update(BuddyPairing)
        .where(BuddyPairing.id == pairing_id, field.is_(None))
        .values({column: now})
        .execution_options(synchronize_session=False)
    )
    return result.rowcount == 1  # type: ignore[attr-defined]


def pairing_of(session: Session, team_id: str, newcomer_id: str) -> BuddyPairing | None:
    return session.scalars(
        select(BuddyPairing).where(BuddyPairing.team_id == team_id, BuddyPairing.newcomer_id == newcomer_id)
    ).one_or_none()


def newcomers_of(session: Session, team_id: str, buddy_id: str, now: datetime) -> list[str]:
    """The newcomers whose first weeks `buddy_id` is accompanying now."""
    return list(
        session.scalars(
            select(BuddyPairing.newcomer_id)
            .where(
                BuddyPairing.team_id == team_id,
                BuddyPairing.buddy_id == buddy_id,
                BuddyPairing.status == PAIRING_PAIRED,
                BuddyPairing.ends_at > now,
            )
            .order_by(BuddyPairing.id)
        )
    )


def buddy_of(session: Session, team_id: str, asker_id: str, now: datetime) -> tuple[str, str] | None:
    """(their buddy, their name) while `asker_id` is a newcomer in their first weeks with a buddy; else None."""
    pairing = pairing_of(session, team_id, asker_id)
    if pairing is None or pairing.status != PAIRING_PAIRED or pairing.buddy_id is None or pairing.ends_at <= now:
        return None
    person = session.get(Person, (team_id, asker_id))
    return pairing.buddy_id, (person.real_name if person is not None and person.real_name else "")
