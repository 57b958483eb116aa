"""The inbox: Slack requests acknowledged before any work, kept until a worker has handled them.

`python app.py serve`'s front (bot/front.py) answers an Events API delivery, or an /ask whose ack says
nothing, as soon as its raw body is stored here (bot/inbox_writer.py: one INSERT, with the database driver
alone); a worker (bot/worker.py) takes the stored requests through this module and feeds them to Bolt
afterwards. The ack then costs about what a do-nothing app's costs (bench/ack_latency.py) and the work after
it, whatever its backlog, waits on disk instead of in memory, and survives a restart.

Where it lives:
- PostgreSQL: the `inbox` table of the main database (migration 0007). Several servers and workers share
  it; a worker locks the rows of its batch (FOR UPDATE SKIP LOCKED) in a transaction it keeps open while it
  hands them to Bolt and that deletes them, so a row is handled by one worker. A worker that dies (killed,
  its connection lost) never committed: PostgreSQL rolls its transaction back and the rows are free at once
  for another worker, which handles them again (idempotently, below).
- SQLite: a file of its own next to the database (peerlearn.db → peerlearn.db-inbox), written by the
  front alone. SQLite has one writer per file and makes a waiting writer sleep in steps of milliseconds;
  in one file, every ack would wait for the worker's transactions. There is one worker per SQLite store:
  batches are read, not claimed, so a worker takes them only while it holds an exclusive lock on a file
  beside the inbox (peerlearn.db-inbox.worker), until it closes the inbox or its process ends. A worker that
  outlives its `serve` to finish its batch and the new `serve`'s worker never handle the same requests.

Every write is idempotent: a redelivered event (same event_id) or a repeated command (same trigger_id) has
the same key and is stored once (INSERT … ON CONFLICT DO NOTHING); handling one twice changes nothing either,
since every listener's write is idempotent too.
"""

from __future__ import annotations

import fcntl
import logging
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    Engine,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    delete,
    event,
    func,
    select,
)

from bot.inbox_writer import SQLITE_TABLE, InboxWriter, inbox_location, no_automatic_checkpoints
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
    # No longer set: a batch's rows are claimed by row locks held while it is handled (Inbox.batch). Kept for the
    # workers of the release before, which still set it, during a rolling upgrade.
    Column("claimed_until", UTCDateTime(), nullable=True),
)
_OLDEST = select(inbox_table).order_by(inbox_table.c.id)


def inbox_url(database_url: str) -> str | None:
    """The inbox's database as a SQLAlchemy URL (bot/inbox_writer.py's inbox_location says where it is)."""
    location = inbox_location(database_url)
    if location is None:
        return None
    if location.dialect == "sqlite":
        return f"sqlite:///{location.target}"
    return normalize_url(database_url)


@dataclass(frozen=True)
class InboxRequest:
    id: int
    request_key: str
    content_type: str
    body: str


class Inbox:
    """Appends from the HTTP server's threads (`put`), taken in order by workers (`batch`)."""

    def __init__(self, engine: Engine, writer: InboxWriter) -> None:
        # `engine`: the workers' (pooled). `writer`: the HTTP threads' (one connection of its own, kept for
        # good, so it never takes, nor waits for, a place in the workers' pool).
        self.engine = engine
        self.writer = writer
        self.dialect = engine.dialect.name
        self.arrived = threading.Event()  # set by every put: an in-process worker wakes at once
        self._turn: int | None = None  # SQLite: the locked file's descriptor while this is the inbox's worker
        self._waiting = False  # SQLite: another worker has the turn (logged once)
        if self.dialect == "sqlite":  # a file of its own: the table is created by whoever opens it first
            _checkpoint_by_worker(engine)
            with engine.connect() as conn:
                conn.exec_driver_sql(SQLITE_TABLE)
                conn.commit()

    @classmethod
    def for_database(cls, database_url: str) -> Inbox | None:
        location = inbox_location(database_url)
        if location is None:
            return None
        return cls(create_store_engine(inbox_url(database_url) or ""), InboxWriter(location))

    # --- appending (the HTTP server's threads) ---------------------------------------------------------

    def put(self, request_key: str, content_type: str, body: str, now: datetime) -> None:
        """Store one request durably (bot/inbox_writer.py). Raises the driver's error when the database
        cannot take it."""
        self.writer.put(request_key, content_type, body, now)
        self.arrived.set()

    # --- taking (workers) ---------------------------------------------------------------------------------

    @contextmanager
    def batch(self, limit: int) -> Iterator[list[InboxRequest]]:
        """The oldest requests not being handled elsewhere, removed once the block ends without an error.

        PostgreSQL: locked FOR UPDATE SKIP LOCKED (two workers never take the same row) in a transaction held
        while the block runs, which deletes them when it ends; an error rolls it back and a dead worker's
        connection ends it, so the rows are free again at once. Only these rows are locked, and an INSERT …
        ON CONFLICT DO NOTHING does not wait for a row lock: a redelivery's ack never waits for a worker.
        SQLite (one worker): read, then deleted in a short transaction after the block (holding the file's
        write lock meanwhile would hold up every ack)."""
        if self.dialect == "postgresql":
            with self._claimed(limit) as requests:
                yield requests
            return
        if not self._has_the_turn():
            requests = []
        else:
            with self.engine.connect() as conn:
                requests = [_request(row) for row in conn.execute(_OLDEST.limit(limit))]
        yield requests
        if requests:
            with self.engine.begin() as conn:
                conn.execute(delete(inbox_table).where(inbox_table.c.id.in_([request.id for request in requests])))
            self._checkpoint()

    @contextmanager
    def _claimed(self, limit: int) -> Iterator[list[InboxRequest]]:
        with self.engine.connect() as conn:
            rows = conn.execute(_OLDEST.limit(limit).with_for_update(skip_locked=True)).all()
            requests = [_request(row) for row in rows]
            try:
                yield requests
            except BaseException:
                conn.rollback()
                raise
            if requests:
                conn.execute(delete(inbox_table).where(inbox_table.c.id.in_([request.id for request in requests])))
            conn.commit()

    def _has_the_turn(self) -> bool:
        """SQLite: whether this is the inbox's one worker (see the module's docstring); taken when free."""
        if self._turn is not None:
            return True
        descriptor = os.open(f"{self.engine.url.database}.worker", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(descriptor)
            if not self._waiting:
                logger.warning("another worker is handling this SQLite inbox; waiting until it stops")
                self._waiting = True
            return False
        if self._waiting:
            logger.info("this worker now handles the SQLite inbox")
        self._turn, self._waiting = descriptor, False
        return True

    def _checkpoint(self) -> None:
        """Copy SQLite's write-ahead log back into the inbox file (see _checkpoint_by_worker); outside any
        transaction, which a checkpoint needs."""
        connection = self.engine.raw_connection()
        try:
            connection.driver_connection.execute("PRAGMA wal_checkpoint(PASSIVE)")  # type: ignore[union-attr]
        finally:
            connection.close()

    def pending(self) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(inbox_table)).scalar_one())

    def close(self) -> None:
        self.writer.close()
        self.engine.dispose()
        if self._turn is not None:
            os.close(self._turn)  # another worker may take the turn
            self._turn = None


def _checkpoint_by_worker(engine: Engine) -> None:
    """The worker checkpoints the SQLite inbox, never a commit (bot/inbox_writer.no_automatic_checkpoints)."""

    @event.listens_for(engine, "connect")
    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        no_automatic_checkpoints(dbapi_connection)


def _request(row: Any) -> InboxRequest:
    return InboxRequest(row.id, row.request_key, row.content_type, row.body)


def inbox_file(database_url: str) -> Path | None:
    """The SQLite inbox's file, for tools that clean up after a store (None on PostgreSQL)."""
    location = inbox_location(database_url)
    return Path(location.target) if location is not None and location.dialect == "sqlite" else None
