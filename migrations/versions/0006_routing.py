"""routing: how a question was resolved when no answer in its thread was accepted

Routing, similar-question suggestions and escalation keep their state in columns that exist since 0001:
`questions.escalation_level` / `next_escalation_at` (what the routing tick does next, and when: first
routing, round 2, the thread bump), `route_requests` (one DM per expert and question, claimed by a
conditional UPDATE on its status) and `knowledge_gaps`. What 0001 cannot record is a question the asker
closed with "This answers it" on a suggested earlier question or lesson: it is resolved without an
accepted answer. Two nullable columns say so:
- `resolution`: NULL (open, or resolved by an accepted answer in the thread) or "similar";
- `resolution_ref`: which suggestion answered it, "question:<id>" or "lesson:<id>".
No new indexes: the routing tick's reads are served by ix_questions_next_escalation_at,
ix_route_requests_due, ix_route_requests_team_expert_sent, ix_question_tags_team_tag, ix_answers_team_user
and the answers/votes foreign-key indexes.

Revision ID: 0006
Revises: 0001
Create Date: 2026-11-27 09:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("questions", sa.Column("resolution", sa.String(length=16), nullable=True))
    op.add_column("questions", sa.Column("resolution_ref", sa.String(length=40), nullable=True))


def downgrade() -> None:
    # A plain DROP COLUMN (SQLite 3.35+), not a batch table copy, which would drop the search triggers of 0002.
    op.drop_column("questions", "resolution_ref")
    op.drop_column("questions", "resolution")
