"""digest indexes: one channel's week, read by indexed aggregate queries

The weekly digest reads, per (team, channel) and a 7-day window: questions resolved in the window,
votes cast in the window (top helpers) and expertise declared in the window (new experts). The
initial schema indexes questions by created_at only, votes by author and expertise by tag, so these
reads would scan a whole channel (or workspace) each week. Three composite indexes fix that; no
table changes (DigestSubscription and DigestRun from 0001 already hold everything the digest stores).

Revision ID: 0003
Revises: 0001
Create Date: 2026-11-25 10:00:00.000000
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_questions_team_channel_resolved", "questions", ["team_id", "channel_id", "resolved_at"])
    op.create_index("ix_votes_team_channel_created", "votes", ["team_id", "channel_id", "created_at"])
    op.create_index("ix_expertise_team_declared", "expertise", ["team_id", "declared_at"])


def downgrade() -> None:
    op.drop_index("ix_expertise_team_declared", table_name="expertise")
    op.drop_index("ix_votes_team_channel_created", table_name="votes")
    op.drop_index("ix_questions_team_channel_resolved", table_name="questions")
