"""work days: each person's working days, beside their working hours

`people.work_days`: the weekdays the person works, as the digits of `date.weekday()` numbers in order
("01234" is Monday to Friday, "01236" Sunday to Thursday; bot/workdays.py), set in App Home. NULL (everyone
until they choose) means the workspace's default days, Monday to Friday.

Revision ID: 0014
Revises: 0001
Create Date: 2026-12-14 09:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("people", sa.Column("work_days", sa.String(length=7), nullable=True))


def downgrade() -> None:
    # A plain DROP COLUMN (SQLite 3.35+), as 0008 does.
    op.drop_column("people", "work_days")
