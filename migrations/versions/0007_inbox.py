"""inbox: Slack requests acknowledged before they are handled (PostgreSQL)

`python app.py serve` stores an Events API delivery or an /ask question here and acks it at once; worker
processes hand the stored requests to Bolt afterwards (models/inbox.py, bot/runtime/worker.py). One row per request,
its raw body as Slack sent it; `request_key` ("event:<event_id>", "cmd:<trigger_id>") is unique so that a
redelivery is stored once; `claimed_until` says until when a worker has it. Rows live for the seconds
between the ack and a worker's turn.

On SQLite the inbox is a file of its own next to the database (one writer per SQLite file: the server),
which models/inbox.py creates; this migration changes nothing there.

Revision ID: 0007
Revises: 0001
Create Date: 2026-11-28 09:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.create_table(
        "inbox",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("request_key", sa.String(length=255), nullable=False),
        sa.Column("content_type", sa.String(length=100), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("claimed_until", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_inbox")),
        sa.UniqueConstraint("request_key", name=op.f("uq_inbox_request_key")),
    )


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.drop_table("inbox")
