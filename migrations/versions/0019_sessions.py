"""lunch-and-learn sessions

- `learning_sessions`: a session announced with `/teach session #tag <title> <when>` (host, tag, title, where the
  command ran, start and length, scheduled or cancelled); one per command (`team_id, request_key`); by
  workspace and start (App Home, `/teach sessions`) and by status and start (the scheduler's tick); the host's
  notes DM is claimed once (`notes_asked_at`), and the lesson the notes became is `lesson_id`;
- `session_posts`: the announcement in each channel (owed, posting, posted, failed; its ts for chat.update);
- `session_signups`: who answered "Sign me up" or "Can't make it" (one row per person and session), and the
  reminder and cancellation DMs claimed once (`reminded_at`, `told_cancelled_at`); by workspace and person
  (export, forget-user);
- `session_invites`: an expert an admin invited to run a session on a tag, once per tag.

Revision ID: 0019
Revises: 0001
Create Date: 2026-12-07 14:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0019"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "learning_sessions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("team_id", sa.String(length=32), nullable=False),
        sa.Column("host_id", sa.String(length=32), nullable=False),
        sa.Column("tag", sa.String(length=64), nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("channel_id", sa.String(length=32), nullable=False),
        sa.Column("public", sa.Boolean(), nullable=False),
        sa.Column("starts_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("minutes", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("request_key", sa.String(length=255), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("cancelled_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("notes_asked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("lesson_id", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["lesson_id"],
            ["lessons.id"],
            name=op.f("fk_learning_sessions_lesson_id_lessons"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_learning_sessions")),
        sa.UniqueConstraint("team_id", "request_key", name=op.f("uq_learning_sessions_team_id_request_key")),
    )
    op.create_index("ix_learning_sessions_team_starts", "learning_sessions", ["team_id", "starts_at"])
    op.create_index("ix_learning_sessions_status_starts", "learning_sessions", ["status", "starts_at"])
    op.create_table(
        "session_posts",
        sa.Column("session_id", sa.Integer(), nullable=False),
        sa.Column("channel_id", sa.String(length=32), nullable=False),
        sa.Column("team_id", sa.String(length=32), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("message_ts", sa.String(length=32), nullable=True),
        sa.ForeignKeyConstraint(
            ["session_id"],
            ["learning_sessions.id"],
            name=op.f("fk_session_posts_session_id_learning_sessions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("session_id", "channel_id", name=op.f("pk_session_posts")),
    )
    op.create_table(
        "session_signups",
        sa.Column("session_id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.String(length=32), nullable=False),
        sa.Column("team_id", sa.String(length=32), nullable=False),
        sa.Column("going", sa.Boolean(), nullable=False),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("reminded_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("told_cancelled_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["session_id"],
            ["learning_sessions.id"],
            name=op.f("fk_session_signups_session_id_learning_sessions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("session_id", "user_id", name=op.f("pk_session_signups")),
    )
    op.create_index("ix_session_signups_team_user", "session_signups", ["team_id", "user_id"])
    op.create_table(
        "session_invites",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("team_id", sa.String(length=32), nullable=False),
        sa.Column("tag", sa.String(length=64), nullable=False),
        sa.Column("expert_id", sa.String(length=32), nullable=False),
        sa.Column("invited_by", sa.String(length=32), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_session_invites")),
        sa.UniqueConstraint("team_id", "tag", "expert_id", name=op.f("uq_session_invites_team_id_tag_expert_id")),
    )


def downgrade() -> None:
    op.drop_table("session_invites")
    op.drop_index("ix_session_signups_team_user", table_name="session_signups")
    op.drop_table("session_signups")
    op.drop_table("session_posts")
    op.drop_index("ix_learning_sessions_status_starts", table_name="learning_sessions")
    op.drop_index("ix_learning_sessions_team_starts", table_name="learning_sessions")
    op.drop_table("learning_sessions")
