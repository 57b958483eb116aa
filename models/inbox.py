"""The inbox: Slack requests acknowledged before any work, kept until a worker has handled them.

`python app.py serve` answers an Events API delivery, or an /ask whose ack says nothing, as soon as its raw
body is stored here (`Inbox.put`, one INSERT); the inbox worker (bot/runtime/worker.py) takes the stored
requests through this module and feeds them to Bolt afterwards. The work after the ack, whatever its backlog,
waits on disk instead of in memory, and survives a restart.

Where it lives:
- PostgreSQL: the `inbox` table of the main database (migration 0007). Several replicas share it; a worker
  locks the rows of its batch (FOR UPDATE SKIP LOCKED) in a transaction it keeps open while it hands them to
  Bolt and that deletes them, so a row is handled by one worker. A worker that dies (killed, its connection
  lost) never committed: PostgreSQL rolls its transaction back and the rows are free at once for another
  worker, which handles them again (idempotently, below).
- SQLite: a file of its own next to the database (peerlearn.db → peerlearn.db-inbox), so that acks never
  wait for the main database's write transactions. There is one worker per SQLite store: batches are read,
  not claimed, so a worker takes them only while it holds an exclusive lock on a file beside the inbox
  (peerlearn.db-inbox.worker), until it closes the inbox or its process ends.

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
from datetime import UTC, datetime
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
    create_engine,
    delete,
    event,
    func,
    select,
)
from sqlalchemy.dialects import postgresql, sqlite

from models.base import NAMING_CONVENTION, UTCDateTime
from models.session import create_store_engine, normalize_url

logger = logging.getLogger("peerlearn.inbox")

SQLITE_BUSY_WAIT = 2.0  # seconds

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


@dataclass(frozen=True)
class InboxLocation:
    dialect: str  # "sqlite" or "postgresql"
    target: str  # the SQLite file's path, or a libpq connection URI


def inbox_location(database_url: str) -> InboxLocation | None:
    """Where the inbox of this store lives: the database itself (PostgreSQL), a sibling file (SQLite:
    peerlearn.db → peerlearn.db-inbox), or nowhere (an in-memory SQLite database, which no other connection
    can see). Reads the URLs models/session.py accepts (postgres://, postgresql://, postgresql+psycopg://,
    sqlite:///relative.db, sqlite:////absolute.db)."""
    scheme, separator, rest = database_url.partition("://")
    if not separator:
        raise ValueError(f"not a database URL: {database_url!r}")
    backend = scheme.split("+", 1)[0]
    if backend in ("postgres", "postgresql"):
        return InboxLocation("postgresql", f"postgresql://{rest}")
    if backend != "sqlite":
        raise ValueError(f"PeerLearn stores its data in SQLite or PostgreSQL, not {backend}")
    database = rest.split("?", 1)[0][1:]  # sqlite:///x.db → x.db, sqlite:////srv/x.db → /srv/x.db
    if not database or database == ":memory:":
        return None
    return InboxLocation("sqlite", database + "-inbox")


def inbox_url(database_url: str) -> str | None:
    """The inbox's database as a SQLAlchemy URL (inbox_location says where it is)."""
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

    def __init__(self, engine: Engine, writer: Engine | None = None) -> None:
        # `engine`: the workers'. `writer`: the acks' (by default the same), see `for_database`.
        self.engine = engine
        self.writer = writer or engine
        self.dialect = engine.dialect.name
        self.arrived = threading.Event()  # set by every put: an in-process worker wakes at once
        self._turn: int | None = None  # SQLite: the locked file's descriptor while this is the inbox's worker
        self._waiting = False  # SQLite: another worker has the turn (logged once)
        if self.dialect == "sqlite":  # a file of its own: the table is created by whoever opens it first
            _tune_inbox_sqlite(engine)
            inbox_metadata.create_all(engine)
        else:
            for tuned in {engine, self.writer}:
                _tune_inbox_postgresql(tuned)
        insert = sqlite.insert if self.dialect == "sqlite" else postgresql.insert
        self._insert = insert(inbox_table).on_conflict_do_nothing(index_elements=["request_key"])

    @classmethod
    def for_database(cls, database_url: str) -> Inbox | None:
        """On PostgreSQL the acks write through connections of their own in autocommit, without the store's
        ping at checkout nor its rollback at checkin: one round trip per ack instead of four (PING, BEGIN,
        INSERT, COMMIT). A connection that broke meanwhile fails that one put, whose request Bolt then handles
        at once (bot/runtime/http.py); the pool replaces it."""
        url = inbox_url(database_url)
        if url is None:
            return None
        if url.startswith("sqlite"):
            return cls(create_store_engine(url))
        writer = create_engine(
            url,
            isolation_level="AUTOCOMMIT",
            pool_pre_ping=False,
            pool_reset_on_return=None,
            pool_size=10,
            max_overflow=20,
            connect_args={"connect_timeout": 2},
        )
        return cls(create_store_engine(url), writer)

    # --- appending (the HTTP server's threads) ---------------------------------------------------------

    def put(self, request_key: str, content_type: str, body: str, now: datetime) -> None:
        """Store one request durably: once this returns, a crash of this process loses nothing. Raises
        SQLAlchemy's error when the database cannot take it."""
        row = {"received_at": now.astimezone(UTC), "request_key": request_key, "content_type": content_type}
        with self.writer.begin() as conn:
            conn.execute(self._insert, row | {"body": body})
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
        self.engine.dispose()
        self.writer.dispose()
        if self._turn is not None:
            os.close(self._turn)  # another worker may take the turn
            self._turn = None


def _tune_inbox_sqlite(engine: Engine) -> None:
    """SQLite copies its write-ahead log back into the file (a checkpoint, with an fsync) from inside whichever
    commit finds the log over 1,000 pages; for the inbox that would be an ack, now and then. The worker does
    it instead, after each batch it removes (Inbox._checkpoint; PASSIVE: never waits for, nor holds up, the
    server's inserts). An ack waits at most SQLITE_BUSY_WAIT for another process's write (Slack waits 3 s):
    then the request is handled at once instead."""

    @event.listens_for(engine, "connect")
    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.execute("PRAGMA wal_autocheckpoint=0")
        dbapi_connection.execute(f"PRAGMA busy_timeout={int(SQLITE_BUSY_WAIT * 1000)}")


def _tune_inbox_postgresql(engine: Engine) -> None:
    """An ack does not wait for PostgreSQL's WAL to reach the disk: the row is safe once PostgreSQL has it,
    whatever happens to this process (bench/durability.py kills it with SIGKILL); a crash of the database
    server itself may lose the last ~0.6 s of inserts (3 x wal_writer_delay). The same promise as SQLite's
    (WAL, synchronous=NORMAL). Only the inbox's connections: the rest of the store commits as usual."""

    @event.listens_for(engine, "connect")
    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        with dbapi_connection.cursor() as cursor:
            cursor.execute("SET synchronous_commit = off")
        dbapi_connection.commit()


def _request(row: Any) -> InboxRequest:
    return InboxRequest(row.id, row.request_key, row.content_type, row.body)


def inbox_file(database_url: str) -> Path | None:
    """The SQLite inbox's file, for tools that clean up after a store (None on PostgreSQL)."""
    location = inbox_location(database_url)
    return Path(location.target) if location is not None and location.dialect == "sqlite" else None
