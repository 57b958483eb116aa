"""tag statistics: questions per tag, per pair of tags and per workspace, kept as questions are stored

Routing read its tag frequencies with GROUP BY over every question_tags row of the workspace for each /ask
(questions per tag, tags asked together, the workspace's question count), a cost growing with history.
`tag_stats` keeps those counts (models/tag_stats.py; '' stands for "any tag"): ('', '') the workspace's
questions, (t, '') the questions tagged t, (t, u) and (u, t) those tagged t and u. bot/qa.py counts each
question in the transaction that stores it. ix_tag_stats_related serves "the tags most often asked with t"
(ORDER BY questions DESC, other_tag LIMIT n) as one index range. Tag names compare bytewise on PostgreSQL
(collation "C"): ties go to the first name in code-point order, as before.

The upgrade counts the questions already stored (INSERT … SELECT … GROUP BY, every workspace at once).

Revision ID: 0011
Revises: 0001
Create Date: 2026-12-08 09:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COUNT_EXISTING = (
    "INSERT INTO tag_stats (team_id, tag, other_tag, questions) "
    "SELECT team_id, '', '', count(*) FROM questions GROUP BY team_id",
    "INSERT INTO tag_stats (team_id, tag, other_tag, questions) "
    "SELECT team_id, tag, '', count(*) FROM question_tags GROUP BY team_id, tag",
    "INSERT INTO tag_stats (team_id, tag, other_tag, questions) "
    "SELECT a.team_id, a.tag, b.tag, count(*) FROM question_tags a "
    "JOIN question_tags b ON b.question_id = a.question_id AND b.tag <> a.tag "
    "GROUP BY a.team_id, a.tag, b.tag",
)


def upgrade() -> None:
    tag_name = sa.String(length=64, collation="C") if op.get_bind().dialect.name == "postgresql" else sa.String(64)
    op.create_table(
        "tag_stats",
        sa.Column("team_id", sa.String(length=32), nullable=False),
        sa.Column("tag", tag_name, nullable=False),
        sa.Column("other_tag", tag_name, nullable=False),
        sa.Column("questions", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("team_id", "tag", "other_tag", name=op.f("pk_tag_stats")),
    )
    op.create_index(
        "ix_tag_stats_related", "tag_stats", ["team_id", "tag", sa.text("questions DESC"), "other_tag"], unique=False
    )
    for statement in COUNT_EXISTING:
        op.execute(statement)


def downgrade() -> None:
    op.drop_index("ix_tag_stats_related", table_name="tag_stats")
    op.drop_table("tag_stats")
