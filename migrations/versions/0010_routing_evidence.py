"""routing evidence: each person's answers folded into sums, per person and per (person, tag)

Routing read every answer on a question's tags for each /ask; these tables keep the sums the ranker needs,
recomputed for the people a change touches in the transaction of the change (bot/routing/upkeep.py):
- `person_evidence` (team_id, user_id): answers, helpful votes, accepted answers, the last answer's time,
  decayed sums (2-day and 30-day answers, 60-day accepted answers) at `as_of`, and `text_profile` (JSON: the
  words of their 30 most recent answers and the questions those answered, counted, and the answers' minutes
  of the day), so routing reads no answer, question text or tag;
- `tag_evidence` (team_id, user_id, tag): answers, accepted answers and helpful votes on the tag, the 90-day
  decayed expertise at `as_of`, and `rank_key` (log2 of it brought to a fixed epoch), indexed by
  (team_id, tag, rank_key) so the top candidates of a tag are one index range scan with a LIMIT.
`ix_answers_team_user_created` (team_id, user_id, created_at) replaces `ix_answers_team_user` (team_id,
user_id), which it covers: a candidate's most recent answers are a short index scan.
`ix_route_requests_team_expert_sent_send` (team_id, expert_id, sent_at, send_at) replaces
`ix_route_requests_team_expert_sent` (team_id, expert_id, sent_at), which it covers: a candidate's DMs of the
last days, sent (sent_at >= x) or not sent yet (sent_at IS NULL AND send_at >= x), are two index ranges.

The tables start empty: the evidence is a Python fold (bot/routing/standing.py), computed by the first start
after this upgrade (bot/runtime/wiring.py fill_missing_evidence, in batches, with requests already served;
routing knows people only from their /teach declarations until it reaches them).

Revision ID: 0010
Revises: 0001
Create Date: 2026-12-08 09:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "person_evidence",
        sa.Column("team_id", sa.String(length=32), nullable=False),
        sa.Column("user_id", sa.String(length=32), nullable=False),
        sa.Column("answers", sa.Integer(), nullable=False),
        sa.Column("helpful_votes", sa.Integer(), nullable=False),
        sa.Column("accepted", sa.Integer(), nullable=False),
        sa.Column("last_answered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("activity", sa.Double(), nullable=False),
        sa.Column("engagement", sa.Double(), nullable=False),
        sa.Column("accepted_recent", sa.Double(), nullable=False),
        sa.Column("as_of", sa.DateTime(timezone=True), nullable=False),
        sa.Column("text_profile", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("team_id", "user_id", name=op.f("pk_person_evidence")),
    )
    op.create_table(
        "tag_evidence",
        sa.Column("team_id", sa.String(length=32), nullable=False),
        sa.Column("user_id", sa.String(length=32), nullable=False),
        sa.Column("tag", sa.String(length=64), nullable=False),
        sa.Column("answers", sa.Integer(), nullable=False),
        sa.Column("accepted", sa.Integer(), nullable=False),
        sa.Column("helpful_votes", sa.Integer(), nullable=False),
        sa.Column("expertise", sa.Double(), nullable=False),
        sa.Column("as_of", sa.DateTime(timezone=True), nullable=False),
        sa.Column("rank_key", sa.Double(), nullable=False),
        sa.PrimaryKeyConstraint("team_id", "user_id", "tag", name=op.f("pk_tag_evidence")),
    )
    op.create_index("ix_tag_evidence_team_tag_rank", "tag_evidence", ["team_id", "tag", "rank_key"], unique=False)
    op.create_index("ix_answers_team_user_created", "answers", ["team_id", "user_id", "created_at"], unique=False)
    op.drop_index("ix_answers_team_user", table_name="answers")
    op.create_index(
        "ix_route_requests_team_expert_sent_send",
        "route_requests",
        ["team_id", "expert_id", "sent_at", "send_at"],
        unique=False,
    )
    op.drop_index("ix_route_requests_team_expert_sent", table_name="route_requests")


def downgrade() -> None:
    op.create_index(
        "ix_route_requests_team_expert_sent", "route_requests", ["team_id", "expert_id", "sent_at"], unique=False
    )
    op.drop_index("ix_route_requests_team_expert_sent_send", table_name="route_requests")
    op.create_index("ix_answers_team_user", "answers", ["team_id", "user_id"], unique=False)
    op.drop_index("ix_answers_team_user_created", table_name="answers")
    op.drop_index("ix_tag_evidence_team_tag_rank", table_name="tag_evidence")
    op.drop_table("tag_evidence")
    op.drop_table("person_evidence")
