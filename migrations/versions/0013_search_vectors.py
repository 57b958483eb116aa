"""search vectors: one sentence embedding per searchable document (issue 22)

- `search_vectors`: the vector of one `search_documents` row (float32 little-endian bytes), the model that
  computed it, a hash of the text it was computed from, and `seq`, a number that grows with every vector
  written, so that a process holding a workspace's vectors in memory reads only what is new.
  The foreign key cascades: the triggers of 0002 rebuild a document as a new row whenever its text, tags,
  channel or answer change, or drop it, and the old vector goes with the old row in the same transaction, so
  a stale vector is never read. A document without a vector is owed one (bot/search/vectors.py fills them).
- `search_vector_counter`: one row, the last `seq` handed out. Writers take the next numbers by updating it,
  which on PostgreSQL also locks it until they commit, so vectors become visible in the order of their
  numbers and a reader that has seen number N has seen everything below it.

Starts empty: the app computes what is missing after it starts (and `python app.py reindex` does it at once).
Downgrade drops both tables (derived data).

Revision ID: 0013
Revises: 0002
Create Date: 2026-12-11 09:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | Sequence[str] | None = "0002"  # search_documents
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "search_vectors",
        sa.Column("document_id", sa.Integer(), nullable=False),
        sa.Column("team_id", sa.String(length=32), nullable=False),
        sa.Column("model", sa.String(length=64), nullable=False),
        sa.Column("content_hash", sa.String(length=64), nullable=False),
        sa.Column("vector", sa.LargeBinary(), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["document_id"],
            ["search_documents.id"],
            name=op.f("fk_search_vectors_document_id_search_documents"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("document_id", name=op.f("pk_search_vectors")),
    )
    # What a process reads to catch up: this workspace's vectors newer than the last it has.
    op.create_index("ix_search_vectors_team_id_seq", "search_vectors", ["team_id", "seq"], unique=True)
    op.create_table(
        "search_vector_counter",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("value", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_search_vector_counter")),
    )


def downgrade() -> None:
    op.drop_table("search_vector_counter")
    op.drop_index("ix_search_vectors_team_id_seq", table_name="search_vectors")
    op.drop_table("search_vectors")
