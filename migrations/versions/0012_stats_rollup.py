"""stats rollup: the analytics figures kept per workspace, period of whole UTC days and tag (issue 21)

- `question_stats`: what each question last contributed to the rollup (asked, answered, accepted, and the
  histogram buckets of its seconds to first answer and to the accepted answer), by the UTC day it was created;
- `stats_rollup`: per (team, span of 1, 7, 28 or 112 days counted from Monday 1970-01-05, first day, tag or '' for
  every question) the counts and two histograms of 64 buckets (first_00 … first_63, accepted_00 … accepted_63).

The upgrade fills both from the existing questions and answers, so that stats do not start empty. It is a
frozen copy of models.stats_rollup.rebuild_stats as of this revision (for every workspace at once), so this
migration does the same thing whatever that module becomes. Downgrade drops both tables (derived data).

Revision ID: 0012
Revises: 0001
Create Date: 2026-12-10 09:00:00.000000
"""

import itertools
import sqlite3
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BUCKETS = 64
LOWEST = 30
HIGHEST = 180 * 86_400
BOUNDS = tuple(round(LOWEST * (HIGHEST / LOWEST) ** (k / (BUCKETS - 2))) for k in range(BUCKETS - 1))
FIRST = tuple(f"first_{k:02d}" for k in range(BUCKETS))
ACCEPTED = tuple(f"accepted_{k:02d}" for k in range(BUCKETS))
FIGURES = ("asked", "answered", "accepted", *FIRST, *ACCEPTED)
SPANS = (1, 7, 28, 112)
MONDAY = 4

questions = sa.table(
    "questions",
    sa.column("id", sa.Integer),
    sa.column("team_id", sa.String),
    sa.column("status", sa.String),
    sa.column("created_at", sa.DateTime),
    sa.column("accepted_answer_id", sa.Integer),
)
answers = sa.table(
    "answers",
    sa.column("id", sa.Integer),
    sa.column("question_id", sa.Integer),
    sa.column("created_at", sa.DateTime),
    sa.column("deleted_at", sa.DateTime),
)
question_tags = sa.table("question_tags", sa.column("question_id", sa.Integer), sa.column("tag", sa.String))


def upgrade() -> None:
    stored = op.create_table(
        "question_stats",
        sa.Column("question_id", sa.Integer(), nullable=False),
        sa.Column("team_id", sa.String(length=32), nullable=False),
        sa.Column("day", sa.Integer(), nullable=False),
        sa.Column("asked", sa.Integer(), nullable=False),
        sa.Column("answered", sa.Integer(), nullable=False),
        sa.Column("accepted", sa.Integer(), nullable=False),
        sa.Column("first_bucket", sa.Integer(), nullable=True),
        sa.Column("accepted_bucket", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["question_id"],
            ["questions.id"],
            name=op.f("fk_question_stats_question_id_questions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("question_id", name=op.f("pk_question_stats")),
    )
    op.create_index(op.f("ix_question_stats_team_id"), "question_stats", ["team_id"], unique=False)
    rollup = op.create_table(
        "stats_rollup",
        sa.Column("team_id", sa.String(length=32), nullable=False),
        sa.Column("span", sa.Integer(), nullable=False),
        sa.Column("first_day", sa.Integer(), nullable=False),
        sa.Column("tag", sa.String(length=64), nullable=False),
        *(sa.Column(name, sa.Integer(), server_default="0", nullable=False) for name in FIGURES),
        sa.PrimaryKeyConstraint("team_id", "span", "first_day", "tag", name=op.f("pk_stats_rollup")),
    )
    assert stored is not None and rollup is not None
    _fill(stored, rollup)


def downgrade() -> None:
    op.drop_table("stats_rollup")
    op.drop_index(op.f("ix_question_stats_team_id"), table_name="question_stats")
    op.drop_table("question_stats")


def _fill(stored: sa.Table, rollup: sa.Table) -> None:
    bind = op.get_bind()
    dialect = bind.dialect.name

    def day_of(moment):  # type: ignore[no-untyped-def]
        if dialect == "sqlite":
            return sa.cast(sa.func.julianday(sa.func.date(moment)) - 2440587.5, sa.Integer)
        return sa.type_coerce(
            sa.cast(sa.func.timezone("UTC", moment), sa.Date) - sa.literal_column("DATE '1970-01-01'"), sa.Integer
        )

    def seconds(later, earlier):  # type: ignore[no-untyped-def]
        if dialect == "sqlite":
            whole = sa.cast(sa.func.strftime("%s", later), sa.Integer) - sa.cast(
                sa.func.strftime("%s", earlier), sa.Integer
            )
            return sa.cast(
                whole + sa.cast(sa.func.substr(later, 20), sa.Float) - sa.cast(sa.func.substr(earlier, 20), sa.Float),
                sa.Float,
            )
        return sa.cast(sa.extract("epoch", later - earlier), sa.Float)

    def bucket(value):  # type: ignore[no-untyped-def]
        return sa.case(
            (value.is_(None), None), *((value < bound, k) for k, bound in enumerate(BOUNDS)), else_=len(BOUNDS)
        )

    q = questions
    asked = q.c.status.in_(("open", "resolved"))
    resolved = q.c.status == "resolved"
    first_at = (
        sa.select(sa.func.min(answers.c.created_at))
        .where(answers.c.question_id == q.c.id, answers.c.deleted_at.is_(None))
        .correlate(q)
        .scalar_subquery()
    )
    accepted_at = (
        sa.select(answers.c.created_at)
        .where(answers.c.id == q.c.accepted_answer_id, answers.c.deleted_at.is_(None))
        .correlate(q)
        .scalar_subquery()
    )
    timed = sa.select(
        q.c.id.label("question_id"),
        q.c.team_id.label("team_id"),
        day_of(q.c.created_at).label("day"),
        sa.case((asked, 1), else_=0).label("asked"),
        sa.case((sa.and_(asked, resolved), 1), else_=0).label("resolved"),
        sa.case((asked, seconds(first_at, q.c.created_at))).label("first_seconds"),
        sa.case((sa.and_(asked, resolved), seconds(accepted_at, q.c.created_at))).label("accepted_seconds"),
    ).cte("timed")
    if dialect != "sqlite" or sqlite3.sqlite_version_info >= (3, 35):
        timed = timed.prefix_with("MATERIALIZED")
    first, accepted = timed.c.first_seconds, timed.c.accepted_seconds
    contributions = sa.select(
        timed.c.question_id,
        timed.c.team_id,
        timed.c.day,
        timed.c.asked,
        sa.case((sa.or_(first.is_not(None), timed.c.resolved == 1), 1), else_=0),
        sa.case((accepted.is_not(None), 1), else_=0),
        bucket(first),
        bucket(accepted),
    )
    op.execute(
        stored.insert().from_select(
            ["question_id", "team_id", "day", "asked", "answered", "accepted", "first_bucket", "accepted_bucket"],
            contributions,
        )
    )

    tagged = sa.union_all(
        sa.select(question_tags.c.question_id, question_tags.c.tag),
        sa.select(stored.c.question_id, sa.literal("", sa.String).label("tag")),
    ).subquery("tagged")
    combined = (
        sa.select(
            stored.c.team_id,
            stored.c.day,
            tagged.c.tag,
            stored.c.first_bucket,
            stored.c.accepted_bucket,
            sa.func.count().label("n"),
            sa.func.sum(stored.c.answered).label("answered"),
            sa.func.sum(stored.c.accepted).label("accepted"),
        )
        .join(tagged, tagged.c.question_id == stored.c.question_id)
        .where(stored.c.asked == 1)
        .group_by(stored.c.team_id, stored.c.day, tagged.c.tag, stored.c.first_bucket, stored.c.accepted_bucket)
        .subquery("combined")
    )
    days = sa.select(
        combined.c.team_id,
        sa.literal(1, sa.Integer),
        combined.c.day,
        combined.c.tag,
        sa.func.sum(combined.c.n),
        sa.func.sum(combined.c.answered),
        sa.func.sum(combined.c.accepted),
        *(sa.func.sum(sa.case((combined.c.first_bucket == k, combined.c.n), else_=0)) for k in range(BUCKETS)),
        *(sa.func.sum(sa.case((combined.c.accepted_bucket == k, combined.c.n), else_=0)) for k in range(BUCKETS)),
    ).group_by(combined.c.team_id, combined.c.day, combined.c.tag)
    columns = ["team_id", "span", "first_day", "tag", *FIGURES]
    op.execute(rollup.insert().from_select(columns, days))
    for shorter, span in itertools.pairwise(SPANS):
        start = (rollup.c.first_day - (rollup.c.first_day - MONDAY) % span).label("start")
        longer = (
            sa.select(
                rollup.c.team_id,
                sa.literal(span, sa.Integer),
                start,
                rollup.c.tag,
                *(sa.func.sum(rollup.c[name]) for name in FIGURES),
            )
            .where(rollup.c.span == shorter)
            .group_by(rollup.c.team_id, start, rollup.c.tag)
        )
        op.execute(rollup.insert().from_select(columns, longer))
