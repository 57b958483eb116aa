"""The inbox: Slack requests acknowledged before any work, kept until a worker has handled them.

`python app.py serve` answers an Events API delivery, or an /ask whose ack says nothing, as soon as its raw
body is stored here (one INSERT, no ORM, no Bolt); a worker (bot/worker.py) feeds the stored requests to Bolt
afterwards. The ack then costs about what a do-nothing app's costs (bench/ack_latency.py) and the work after
it, whatever its backlog, waits on disk instead of in memory, and survives a restart.

Where it lives:
- PostgreSQL: the `inbox` table of the main database (migration 0007). Several servers and workers share
  it; a worker claims rows with FOR UPDATE SKIP LOCKED and deletes them in the same transaction, so a row
  is handled by one worker, and again only if that worker died before committing.
- SQLite: a file of its own next to the database (peerlearn.db → peerlearn.db-inbox), written by the
  server alone. SQLite has one writer per file and makes a waiting writer sleep in steps of milliseconds;
  in one file, every ack would wait for the worker's transactions. There is one worker per SQLite store.

Every write is idempotent: a redelivered event (same event_id) or a repeated command (same trigger_id) has
the same key and is stored once (INSERT … ON CONFLICT DO NOTHING); handling one twice changes nothing either,
since every listener's write is idempotent too.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import BigInteger, Column, Engine, Integer, MetaData, String, Table, Text, delete, func, select
from sqlalchemy.engine import make_url

from models.base import NAMING_CONVENTION, UTCDateTime
from models.session import create_store_engine, normalize_url

logger = logging.getLogger("peerlearn.inbox")

inbox_metadata = MetaData(naming_convention=NAMING_CONVENTION)

inbox_table = Table(
    "inbox",
    inbox_metadata,
    Column("id", BigInteger().with_variant(Integer(), "sqlite"), primary_key=True, autoincrement=True),
    Column("received_at", UTCDateTime(), nullable=False),
    # "event:<event_id>" or "cmd:<trigger_id>": a redelivery is stored once.
    Column("request_key", String(255), nullable=False, unique=True),
    Column("content_type", String(100), nullable=False),
    Column("body", Text(), nullable=False),
)

_UTC = UTCDateTime()
_INSERT = {
    "sqlite": "INSERT OR IGNORE INTO inbox (received_at, request_key, content_type, body) VALUES (?, ?, ?, ?)",
    "postgresql": "INSERT INTO inbox (received_at, request_key, content_type, body) VALUES (%s, %s, %s, %s) "
    "ON CONFLICT (request_key) DO NOTHING",
}


def inbox_url(database_url: str) -> str | None:
    """Where the inbox of this store lives: the database itself (PostgreSQL), a sibling file (SQLite), or
    nowhere (an in-memory SQLite database, which no other connection can see)."""
    url = make_url(normalize_url(database_url))
    if url.get_backend_name() != "sqlite":
        return url.render_as_string(hide_password=False)
    if not url.database or url.database == ":memory:":
        return None
    return url.set(database=url.database + "-inbox").render_as_string(hide_password=False)


@dataclass(frozen=True)
class InboxRequest:
    id: int
    request_key: str
    content_type: str
    body: str


class Inbox:
    """Appends from the HTTP server's threads (`put`), taken in order by workers (`batch`)."""

    def __init__(self, engine: Engine, *, shared: bool) -> None:
        # `shared`: the table is in the main database, maintained by its migrations (PostgreSQL); otherwise
        # the inbox is a file of its own and creates its table itself.
        self.engine = engine
        self.dialect = engine.dialect.name
        self._insert = _INSERT[self.dialect]
        self._local = threading.local()
        # One appender at a time in this process: SQLite would make a second one sleep ≥ 1 ms.
        self._append = threading.Lock()
        self.arrived = threading.Event()  # set by every put: an in-process worker wakes at once
        if not shared:
            inbox_metadata.create_all(engine)

    @classmethod
    def for_database(cls, database_url: str) -> Inbox | None:
        url = inbox_url(database_url)
        if url is None:
            return None
        shared = not url.startswith("sqlite")
        return cls(create_store_engine(url), shared=shared)

    # --- appending (the HTTP server's threads) ---------------------------------------------------------

    def put(self, request_key: str, content_type: str, body: str, now: datetime) -> None:
        """Store one request durably (a crash of this process after put returns loses nothing). Raises
        the driver's error when the database cannot take it."""
        connection = self._connection()
        received_at = _UTC.process_bind_param(now, self.engine.dialect)
        try:
            with self._append:
                connection.cursor().execute(self._insert, (received_at, request_key, content_type, body))
        except Exception:
            self._drop_connection()
            raise
        self.arrived.set()

    def _connection(self) -> Any:
        """This thread's own connection, checked out of the pool once and kept (no checkout, no pre-ping
        per request); a failed put throws it away, and the next put connects afresh."""
        connection = getattr(self._local, "connection", None)
        if connection is None:
            connection = self.engine.raw_connection()
            # One statement is one transaction: SQLite's on-connect hook already turns the driver's own
            # transactions off (models/session.py); psycopg is told so.
            if self.dialect == "postgresql":
                connection.driver_connection.autocommit = True  # type: ignore[union-attr]
            self._local.connection = connection
        return connection

    def _drop_connection(self) -> None:
        connection = getattr(self._local, "connection", None)
        self._local.connection = None
        if connection is not None:
            try:
                connection.invalidate()
            except Exception:  # already broken: nothing more to give back
                logger.debug("closing a broken inbox connection failed", exc_info=True)

    # --- taking (workers) ---------------------------------------------------------------------------------

    @contextmanager
    def batch(self, limit: int) -> Iterator[list[InboxRequest]]:
        """The oldest requests not being handled elsewhere, removed once the block ends without an error.

        PostgreSQL: claimed and deleted in one transaction (FOR UPDATE SKIP LOCKED), committed after the
        block: another worker never sees them, and they come back if this one dies or raises. SQLite: read,
        then deleted in a short transaction of its own after the block (holding the file's write lock while
        the requests are handled would hold up every ack)."""
        if self.dialect == "postgresql":
            with self.engine.begin() as conn:
                oldest = select(inbox_table.c.id).order_by(inbox_table.c.id).limit(limit)
                claimed = oldest.with_for_update(skip_locked=True)
                rows = conn.execute(
                    delete(inbox_table).where(inbox_table.c.id.in_(claimed)).returning(inbox_table)
                ).all()
                yield sorted((_request(row) for row in rows), key=lambda request: request.id)
            return
        with self.engine.connect() as conn:
            rows = conn.execute(select(inbox_table).order_by(inbox_table.c.id).limit(limit)).all()
        requests = [_request(row) for row in rows]
        yield requests
        if requests:
            with self.engine.begin() as conn:
                conn.execute(delete(inbox_table).where(inbox_table.c.id.in_([request.id for request in requests])))

    def pending(self) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(inbox_table)).scalar_one())

    def close(self) -> None:
        self._drop_connection()
        self.engine.dispose()


def _request(row: Any) -> InboxRequest:
    return InboxRequest(row.id, row.request_key, row.content_type, row.body)


def inbox_file(database_url: str) -> Path | None:
    """The SQLite inbox's file, for tools that clean up after a store (None on PostgreSQL)."""
    url = inbox_url(database_url)
    if url is None or not url.startswith("sqlite"):
        return None
    return Path(make_url(url).database or "")
