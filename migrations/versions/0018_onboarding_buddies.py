"""onboarding buddies: the onboarding settings, the volunteers and each newcomer's pairing

- `onboarding_settings`: per workspace, the onboarding channel, whether new members of the workspace
  (`team_join`) are newcomers too, and the first-week checklist (NULL: the default one);
- `buddy_volunteers`: who volunteered as a buddy (`/teach buddy`), for how many newcomers, and whether still;
- `buddy_pairings`: one row per newcomer (`uq_buddy_pairings_team_id_newcomer_id`: a redelivered join pairs
  once), their buddy (NULL while none is free), when the introduction and the "no buddy yet" note were
  claimed, and until when the newcomer's questions reach the buddy first; by workspace and status for the tick.

Revision ID: 0018
Revises: 0001
Create Date: 2026-12-07 14:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0018"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "onboarding_settings",
        sa.Column("team_id", sa.String(length=32), nullable=False),
        sa.Column("channel_id", sa.String(length=32), nullable=True),
        sa.Column("team_join", sa.Boolean(), nullable=False),
        sa.Column("checklist", sa.Text(), nullable=True),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("team_id", name=op.f("pk_onboarding_settings")),
    )
    op.create_table(
        "buddy_volunteers",
        sa.Column("team_id", sa.String(length=32), nullable=False),
        sa.Column("user_id", sa.String(length=32), nullable=False),
        sa.Column("capacity", sa.Integer(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("team_id", "user_id", name=op.f("pk_buddy_volunteers")),
    )
    op.create_table(
        "buddy_pairings",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("team_id", sa.String(length=32), nullable=False),
        sa.Column("newcomer_id", sa.String(length=32), nullable=False),
        sa.Column("buddy_id", sa.String(length=32), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("joined_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("paired_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("ends_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("introduced_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("waiting_noted_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_buddy_pairings")),
        sa.UniqueConstraint("team_id", "newcomer_id", name=op.f("uq_buddy_pairings_team_id_newcomer_id")),
    )
    op.create_index("ix_buddy_pairings_team_status", "buddy_pairings", ["team_id", "status"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_buddy_pairings_team_status", table_name="buddy_pairings")
    op.drop_table("buddy_pairings")
    op.drop_table("buddy_volunteers")
    op.drop_table("onboarding_settings")
