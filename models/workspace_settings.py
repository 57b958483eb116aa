"""A workspace's own settings, as its admins changed them from App Home, and the record of every change.

`workspace_settings` holds one row per setting a workspace changed (its name and its value as text; a setting
without a row follows the environment's default: bot/workspace_settings.py reads them); `settings_changes` keeps
who changed which setting, when, from what to what.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Index, String, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from models.base import Base, insert_once
from models.workspace import Workspace, ensure_workspace


class WorkspaceSetting(Base):
    __tablename__ = "workspace_settings"

    team_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    value: Mapped[str] = mapped_column(String(200))
    changed_at: Mapped[datetime]


class SettingsChange(Base):
    """One setting changed by one admin: from what (the value that applied then) to what."""

    __tablename__ = "settings_changes"
    __table_args__ = (Index("ix_settings_changes_team_changed", "team_id", "changed_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    team_id: Mapped[str] = mapped_column(String(32))
    user_id: Mapped[str] = mapped_column(String(32))
    changed_at: Mapped[datetime]
    setting: Mapped[str] = mapped_column(String(32))
    old_value: Mapped[str] = mapped_column(String(200))
    new_value: Mapped[str] = mapped_column(String(200))


def stored_settings(session: Session, team_id: str) -> dict[str, str]:
    """The settings the workspace changed, by name, as stored."""
    rows = session.execute(
        select(WorkspaceSetting.name, WorkspaceSetting.value).where(WorkspaceSetting.team_id == team_id)
    )
    return {name: value for name, value in rows}


def lock_settings(session: Session, team_id: str, now: datetime) -> None:
    """Take the workspace's row for the rest of the transaction (PostgreSQL; SQLite's BEGIN IMMEDIATE already
    runs one writer at a time), so two admins saving at once are recorded one after the other, each change
    from the value the other one left."""
    ensure_workspace(session, team_id, now)
    session.execute(select(Workspace.team_id).where(Workspace.team_id == team_id).with_for_update())


def store_setting(session: Session, team_id: str, name: str, value: str, now: datetime) -> None:
    row = session.get(WorkspaceSetting, (team_id, name))
    if row is None and insert_once(session, WorkspaceSetting(team_id=team_id, name=name, value=value, changed_at=now)):
        return
    row = row or session.get(WorkspaceSetting, (team_id, name))
    assert row is not None
    row.value, row.changed_at = value, now


def recent_changes(session: Session, team_id: str, limit: int) -> list[SettingsChange]:
    """The workspace's latest setting changes, newest first."""
    return list(
        session.scalars(
            select(SettingsChange)
            .where(SettingsChange.team_id == team_id)
            .order_by(SettingsChange.changed_at.desc(), SettingsChange.id.desc())
            .limit(limit)
        )
    )
