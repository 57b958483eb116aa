"""A Slack workspace (team) that installed PeerLearn, and events already processed for it."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import String, func, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from models.base import Base, insert_if_new, insert_once


class Workspace(Base):
    __tablename__ = "workspaces"

    team_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str | None] = mapped_column(String(200))
    timezone: Mapped[str] = mapped_column(String(64), default="UTC")
    active: Mapped[bool] = mapped_column(default=True)
    disabled_reason: Mapped[str | None] = mapped_column(String(100))
    created_at: Mapped[datetime]


class ProcessedEvent(Base):
    """One row per Events API delivery we acted on: redeliveries of the same event_id change nothing."""

    __tablename__ = "processed_events"

    team_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    event_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    received_at: Mapped[datetime] = mapped_column(index=True)


def claim_event(session: Session, team_id: str, event_id: str, now: datetime) -> bool:
    """Record that this event is being handled; False when it was already (a redelivery).

    Runs in the caller's transaction, so the claim commits together with what the event changed.
    """
    return insert_if_new(session, ProcessedEvent, team_id=team_id, event_id=event_id, received_at=now)


def ensure_workspace(session: Session, team_id: str, now: datetime) -> Workspace:
    workspace = session.get(Workspace, team_id)
    if workspace is None:
        workspace = Workspace(team_id=team_id, created_at=now)
        if not insert_once(session, workspace):
            workspace = session.get(Workspace, team_id)
            assert workspace is not None
    return workspace


def disable_workspace(session: Session, team_id: str, reason: str) -> None:
    workspace = session.get(Workspace, team_id)
    if workspace is not None:
        workspace.active = False
        workspace.disabled_reason = reason


def enable_workspace(session: Session, team_id: str) -> bool:
    """Use the workspace again; True when it was disabled."""
    workspace = session.get(Workspace, team_id)
    if workspace is None or workspace.active:
        return False
    workspace.active, workspace.disabled_reason = True, None
    return True


def disabled_workspaces(session: Session, limit: int | None = None) -> dict[str, str]:
    """Disabled workspaces and why (the Slack error, app_uninstalled…), by team id; at most `limit`."""
    query = select(Workspace.team_id, Workspace.disabled_reason).where(Workspace.active.is_(False))
    rows = session.execute(query.order_by(Workspace.team_id).limit(limit))
    return {team_id: reason or "unknown" for team_id, reason in rows}


def count_disabled_workspaces(session: Session) -> int:
    return int(session.scalar(select(func.count()).where(Workspace.active.is_(False))) or 0)
