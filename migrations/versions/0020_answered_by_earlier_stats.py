"""stats rollup: questions the knowledge base answered by itself, a figure of its own (issue 22, section 6)

- `question_stats.answered_by_earlier`: 1 when the question (asked) was resolved by "This answers it" on a
  suggested earlier question or lesson and has no accepted answer since (Question.answered_by_earlier);
- `stats_rollup.answered_by_earlier`: how many of the period's questions (of the tag, or all for '') that is.

The upgrade fills both for existing data: the questions the rule selects are marked in question_stats, then
each rollup row gets the count of its period's and tag's marked questions, counted in Python from those few
questions (only "This answers it" makes one) and written with one UPDATE per row that counts any. What it
writes equals models.stats_rollup.rebuild_stats (tests/test_stats_rollup.py checks it). Downgrade drops the
two columns (derived data).

It alters migration 0012's tables, so it revises 0012 (as 0013 revises 0002), not 0001. It reads
questions.resolution, which 0006 adds on a branch of its own that may run after this one: without that column no
question was ever resolved by an earlier item, and there is nothing to fill. (Alembic's depends_on would order
them, but it takes 0006 out of the version table, where /healthz and `pending_migrations` expect every head.)

Revision ID: 0020
Revises: 0012
Create Date: 2026-12-07 14:30:00.000000
"""

from collections import Counter
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0020"
down_revision: str | Sequence[str] | None = "0012"  # stats_rollup, question_stats
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SPANS = (1, 7, 28, 112)  # as in 0012
MONDAY = 4

questions = sa.table(
    "questions",
    sa.column("id", sa.Integer),
    sa.column("status", sa.String),
    sa.column("accepted_answer_id", sa.Integer),
    sa.column("resolution", sa.String),
)
question_tags = sa.table("question_tags", sa.column("question_id", sa.Integer), sa.column("tag", sa.String))


def upgrade() -> None:
    with op.batch_alter_table("question_stats") as batch:
        batch.add_column(sa.Column("answered_by_earlier", sa.Integer(), server_default="0", nullable=False))
    with op.batch_alter_table("stats_rollup") as batch:
        batch.add_column(sa.Column("answered_by_earlier", sa.Integer(), server_default="0", nullable=False))
    _fill()


def downgrade() -> None:
    with op.batch_alter_table("stats_rollup") as batch:
        batch.drop_column("answered_by_earlier")
    with op.batch_alter_table("question_stats") as batch:
        batch.drop_column("answered_by_earlier")


def _fill() -> None:
    bind = op.get_bind()
    if "resolution" not in {column["name"] for column in sa.inspect(bind).get_columns("questions")}:
        return  # 0006 has not run yet: no question was resolved by an earlier item
    stored = sa.table(
        "question_stats",
        sa.column("question_id", sa.Integer),
        sa.column("team_id", sa.String),
        sa.column("day", sa.Integer),
        sa.column("asked", sa.Integer),
        sa.column("answered_by_earlier", sa.Integer),
    )
    rollup = sa.table(
        "stats_rollup",
        sa.column("team_id", sa.String),
        sa.column("span", sa.Integer),
        sa.column("first_day", sa.Integer),
        sa.column("tag", sa.String),
        sa.column("answered_by_earlier", sa.Integer),
    )
    # Question.answered_by_earlier as of this revision: resolved, no accepted answer, resolution 'similar'.
    by_earlier = sa.select(questions.c.id).where(
        questions.c.status == "resolved",
        questions.c.accepted_answer_id.is_(None),
        questions.c.resolution == "similar",
    )
    marked = stored.c.question_id.in_(by_earlier)
    bind.execute(stored.update().where(marked, stored.c.asked == 1).values(answered_by_earlier=1))

    found = bind.execute(
        sa.select(stored.c.question_id, stored.c.team_id, stored.c.day).where(stored.c.answered_by_earlier == 1)
    ).all()
    if not found:
        return
    tags: dict[int, list[str]] = {}
    ids = [row.question_id for row in found]
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        for question_id, tag in bind.execute(
            sa.select(question_tags.c.question_id, question_tags.c.tag).where(question_tags.c.question_id.in_(chunk))
        ):
            tags.setdefault(question_id, []).append(tag)
    counts: Counter[tuple[str, int, int, str]] = Counter()
    for question_id, team_id, day in found:
        for span in SPANS:
            first_day = day - (day - MONDAY) % span
            for tag in ("", *tags.get(question_id, ())):
                counts[team_id, span, first_day, tag] += 1
    bind.execute(
        rollup.update()
        .where(
            rollup.c.team_id == sa.bindparam("b_team_id"),
            rollup.c.span == sa.bindparam("b_span"),
            rollup.c.first_day == sa.bindparam("b_first_day"),
            rollup.c.tag == sa.bindparam("b_tag"),
        )
        .values(answered_by_earlier=sa.bindparam("b_count")),
        [
            {"b_team_id": team, "b_span": span, "b_first_day": day, "b_tag": tag, "b_count": n}
            for (team, span, day, tag), n in sorted(counts.items())
        ],
    )
