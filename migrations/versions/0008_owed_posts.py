"""owed posts: a question is claimed while it is posted, and replies that outrun its ts are kept

A question stored by /ask (status "posting") is owed to its channel until Slack confirmed the post. Whoever
posts it (the listener after the ack, or the posting tick after a crash, a stop or a slow Slack) claims it
first (bot/posting.py):
- `questions.post_attempts`: attempts that claimed it; after the first, an attempt may follow one that
  reached Slack, so it looks for that message before it posts;
- `questions.post_claimed_until`: until when the current attempt holds it (NULL: nobody);
- `ix_questions_owed`: the owed questions by age, a partial index (only rows still "posting").
`early_replies` keeps a thread reply handled before its question's ts was stored (Slack answered the post,
the reply event came first), until the ts is (bot/qa.py record_posted).

Revision ID: 0008
Revises: 0001
Create Date: 2026-12-07 09:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OWED = sa.text("status = 'posting'")


def upgrade() -> None:
    op.add_column("questions", sa.Column("post_attempts", sa.Integer(), server_default="0", nullable=False))
    op.add_column("questions", sa.Column("post_claimed_until", sa.DateTime(timezone=True), nullable=True))
    op.create_index(
        "ix_questions_owed", "questions", ["created_at"], unique=False, postgresql_where=OWED, sqlite_where=OWED
    )
    op.create_table(
        "early_replies",
        sa.Column("team_id", sa.String(length=32), nullable=False),
        sa.Column("channel_id", sa.String(length=32), nullable=False),
        sa.Column("ts", sa.String(length=32), nullable=False),
        sa.Column("thread_ts", sa.String(length=32), nullable=False),
        sa.Column("user_id", sa.String(length=32), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("team_id", "channel_id", "ts", name=op.f("pk_early_replies")),
    )
    op.create_index("ix_early_replies_thread", "early_replies", ["team_id", "channel_id", "thread_ts"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_early_replies_thread", table_name="early_replies")
    op.drop_table("early_replies")
    op.drop_index("ix_questions_owed", table_name="questions", postgresql_where=OWED, sqlite_where=OWED)
    # A plain DROP COLUMN (SQLite 3.35+), not a batch table copy, which would drop the search triggers of 0002.
    op.drop_column("questions", "post_claimed_until")
    op.drop_column("questions", "post_attempts")
