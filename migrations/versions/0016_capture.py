"""capture: questions asked about a message, and messages or threads saved as lessons (issue 20, section 1)

- `question_sources`: the message an "Ask PeerLearn about this" question is about (channel, ts, author, link),
  one per question, gone with it;
- `saved_threads`: a thread (or a lone message) saved with "Save as knowledge": the lesson it became (unique:
  one thread, one lesson), title, link, who saved it and the form submission that did (a retried submission
  changes nothing); one per thread (`team_id, channel_id, thread_ts`);
- `saved_thread_messages`: the messages kept, with who wrote each (the lesson's contributors); by person
  (`ix_saved_thread_messages_team_user`, forget-user).

Revision ID: 0016
Revises: 0001
Create Date: 2026-12-07 14:20:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0016"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "question_sources",
        sa.Column("question_id", sa.Integer(), nullable=False),
        sa.Column("team_id", sa.String(length=32), nullable=False),
        sa.Column("channel_id", sa.String(length=32), nullable=False),
        sa.Column("message_ts", sa.String(length=32), nullable=False),
        sa.Column("author_id", sa.String(length=32), nullable=True),
        sa.Column("permalink", sa.String(length=500), nullable=True),
        sa.ForeignKeyConstraint(
            ["question_id"],
            ["questions.id"],
            name=op.f("fk_question_sources_question_id_questions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("question_id", name=op.f("pk_question_sources")),
    )
    op.create_index("ix_question_sources_team_author", "question_sources", ["team_id", "author_id"], unique=False)
    op.create_table(
        "saved_threads",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("team_id", sa.String(length=32), nullable=False),
        sa.Column("channel_id", sa.String(length=32), nullable=False),
        sa.Column("thread_ts", sa.String(length=32), nullable=False),
        sa.Column("lesson_id", sa.Integer(), nullable=False),
        sa.Column("title", sa.String(length=150), nullable=False),
        sa.Column("permalink", sa.String(length=500), nullable=True),
        sa.Column("saved_by", sa.String(length=32), nullable=False),
        sa.Column("view_id", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["lesson_id"], ["lessons.id"], name=op.f("fk_saved_threads_lesson_id_lessons"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_saved_threads")),
        sa.UniqueConstraint("lesson_id", name=op.f("uq_saved_threads_lesson_id")),
        sa.UniqueConstraint(
            "team_id", "channel_id", "thread_ts", name=op.f("uq_saved_threads_team_id_channel_id_thread_ts")
        ),
    )
    op.create_index("ix_saved_threads_team_saved_by", "saved_threads", ["team_id", "saved_by"], unique=False)
    op.create_table(
        "saved_thread_messages",
        sa.Column("saved_thread_id", sa.Integer(), nullable=False),
        sa.Column("ts", sa.String(length=32), nullable=False),
        sa.Column("team_id", sa.String(length=32), nullable=False),
        sa.Column("user_id", sa.String(length=32), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["saved_thread_id"],
            ["saved_threads.id"],
            name=op.f("fk_saved_thread_messages_saved_thread_id_saved_threads"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("saved_thread_id", "ts", name=op.f("pk_saved_thread_messages")),
    )
    op.create_index("ix_saved_thread_messages_team_user", "saved_thread_messages", ["team_id", "user_id"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_saved_thread_messages_team_user", table_name="saved_thread_messages")
    op.drop_table("saved_thread_messages")
    op.drop_index("ix_saved_threads_team_saved_by", table_name="saved_threads")
    op.drop_table("saved_threads")
    op.drop_index("ix_question_sources_team_author", table_name="question_sources")
    op.drop_table("question_sources")
