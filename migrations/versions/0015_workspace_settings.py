"""workspace settings: what a workspace's admins change from App Home, and the record of every change

- `workspace_settings`: one row per setting a workspace changed (name, value as text, when); a setting
  without a row follows the environment's default (PEERLEARN_*: bot/workspace_settings.py);
- `settings_changes`: who changed which setting, when, from what to what (App Home's "last changes", the
  export); by workspace and time (`ix_settings_changes_team_changed`).
`workspaces.escalation_hours` (a workspace's own escalation period, set by hand in the database) becomes the
workspace's `escalation_hours` setting, and the column goes: one place for a workspace's settings.

Revision ID: 0015
Revises: 0001
Create Date: 2026-12-14 10:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "workspace_settings",
        sa.Column("team_id", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=32), nullable=False),
        sa.Column("value", sa.String(length=200), nullable=False),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("team_id", "name", name=op.f("pk_workspace_settings")),
    )
    op.create_table(
        "settings_changes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("team_id", sa.String(length=32), nullable=False),
        sa.Column("user_id", sa.String(length=32), nullable=False),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("setting", sa.String(length=32), nullable=False),
        sa.Column("old_value", sa.String(length=200), nullable=False),
        sa.Column("new_value", sa.String(length=200), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_settings_changes")),
    )
    op.create_index("ix_settings_changes_team_changed", "settings_changes", ["team_id", "changed_at"], unique=False)
    op.execute(
        "INSERT INTO workspace_settings (team_id, name, value, changed_at) "
        "SELECT team_id, 'escalation_hours', CAST(escalation_hours AS VARCHAR(200)), created_at FROM workspaces "
        "WHERE escalation_hours > 0"
    )
    # A plain DROP COLUMN (SQLite 3.35+), as 0008 does.
    op.drop_column("workspaces", "escalation_hours")


def downgrade() -> None:
    op.add_column("workspaces", sa.Column("escalation_hours", sa.Integer(), nullable=True))
    op.execute(
        "UPDATE workspaces SET escalation_hours = (SELECT CAST(s.value AS INTEGER) FROM workspace_settings s "
        "WHERE s.team_id = workspaces.team_id AND s.name = 'escalation_hours')"
    )
    op.drop_index("ix_settings_changes_team_changed", table_name="settings_changes")
    op.drop_table("settings_changes")
    op.drop_table("workspace_settings")
