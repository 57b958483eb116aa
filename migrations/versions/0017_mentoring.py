"""mentoring: offers to mentor, requests for a mentor, and the pairings made between them

- `mentor_offers`: (team, person, tag) a person offered to mentor on, with how many people at once;
- `mentor_requests`: one per `/ask mentor` command, unique by (team, request key) so a redelivered command
  is stored once; waiting or matched (`ix_mentor_requests_team_status`: the waiting ones of a workspace);
- `mentor_pairings`: one per request (unique request id: never paired twice), with its state, dates, group DM
  and the claims of its introduction and check-in; by mentor and by mentee (Home, load), and by state and
  check-in time (the tick's due check-ins).

Revision ID: 0017
Revises: 0001
Create Date: 2026-12-07 14:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0017"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "mentor_offers",
        sa.Column("team_id", sa.String(length=32), nullable=False),
        sa.Column("user_id", sa.String(length=32), nullable=False),
        sa.Column("tag", sa.String(length=64), nullable=False),
        sa.Column("capacity", sa.Integer(), nullable=False),
        sa.Column("offered_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("team_id", "user_id", "tag", name=op.f("pk_mentor_offers")),
    )
    op.create_table(
        "mentor_requests",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("team_id", sa.String(length=32), nullable=False),
        sa.Column("mentee_id", sa.String(length=32), nullable=False),
        sa.Column("tag", sa.String(length=64), nullable=False),
        sa.Column("request_key", sa.String(length=200), nullable=False),
        sa.Column("channel_id", sa.String(length=32), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("matched_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_mentor_requests")),
        sa.UniqueConstraint("team_id", "request_key", name=op.f("uq_mentor_requests_team_id_request_key")),
    )
    op.create_index("ix_mentor_requests_team_status", "mentor_requests", ["team_id", "status"], unique=False)
    op.create_table(
        "mentor_pairings",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("team_id", sa.String(length=32), nullable=False),
        sa.Column("request_id", sa.Integer(), nullable=False),
        sa.Column("mentor_id", sa.String(length=32), nullable=False),
        sa.Column("mentee_id", sa.String(length=32), nullable=False),
        sa.Column("tag", sa.String(length=64), nullable=False),
        sa.Column("reason", sa.String(length=500), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ends_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("checkin_due_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("checkin_sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("intro_claimed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("channel_id", sa.String(length=32), nullable=True),
        sa.Column("intro_ts", sa.String(length=32), nullable=True),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("ended_by", sa.String(length=32), nullable=True),
        sa.ForeignKeyConstraint(
            ["request_id"],
            ["mentor_requests.id"],
            name=op.f("fk_mentor_pairings_request_id_mentor_requests"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_mentor_pairings")),
        sa.UniqueConstraint("request_id", name=op.f("uq_mentor_pairings_request_id")),
    )
    op.create_index("ix_mentor_pairings_team_mentor", "mentor_pairings", ["team_id", "mentor_id"], unique=False)
    op.create_index("ix_mentor_pairings_team_mentee", "mentor_pairings", ["team_id", "mentee_id"], unique=False)
    op.create_index("ix_mentor_pairings_status_checkin", "mentor_pairings", ["status", "checkin_due_at"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_mentor_pairings_status_checkin", table_name="mentor_pairings")
    op.drop_index("ix_mentor_pairings_team_mentee", table_name="mentor_pairings")
    op.drop_index("ix_mentor_pairings_team_mentor", table_name="mentor_pairings")
    op.drop_table("mentor_pairings")
    op.drop_index("ix_mentor_requests_team_status", table_name="mentor_requests")
    op.drop_table("mentor_requests")
    op.drop_table("mentor_offers")
