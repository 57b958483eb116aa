"""home and stats indexes: workspace-wide windows and one person's data, read by aggregate queries

App Home, `python app.py stats` and `forget-user` read the store in ways the earlier indexes do not
serve (they are per channel, or per tag):
- stats: a workspace's questions in a time window (questions by team_id, created_at), and each
  question's first live answer (answers by question_id, created_at, partial on deleted_at IS NULL:
  MIN() is one index-only lookup);
- App Home: my open questions (questions by team_id, asker_id, status), my lessons (lessons by
  team_id, author_id), the workspace's top helpers this month (votes by team_id, created_at).
No table changes: the notification preferences the Home edits (notify_mode, work_start_hour,
work_end_hour, paused_until) and the admin flag are columns of `people` since 0001.

Revision ID: 0005
Revises: 0001
Create Date: 2026-11-26 09:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_questions_team_created", "questions", ["team_id", "created_at"])
    op.create_index("ix_questions_team_asker_status", "questions", ["team_id", "asker_id", "status"])
    live = sa.text("deleted_at IS NULL")
    op.create_index(
        "ix_answers_question_live",
        "answers",
        ["question_id", "created_at"],
        postgresql_where=live,
        sqlite_where=live,
    )
    op.create_index("ix_votes_team_created", "votes", ["team_id", "created_at"])
    op.create_index("ix_lessons_team_author", "lessons", ["team_id", "author_id"])


def downgrade() -> None:
    op.drop_index("ix_lessons_team_author", table_name="lessons")
    op.drop_index("ix_votes_team_created", table_name="votes")
    op.drop_index("ix_answers_question_live", table_name="answers")
    op.drop_index("ix_questions_team_asker_status", table_name="questions")
    op.drop_index("ix_questions_team_created", table_name="questions")
