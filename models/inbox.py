"""The inbox: Slack requests acknowledged before any work, kept until a worker has handled them.

`python app.py serve` answers an Events API delivery, or an /ask whose ack says nothing, as soon as its raw
body is stored here (one INSERT, no ORM, no Bolt); a worker (bot/worker.py) feeds the stored requests to Bolt
afterwards. The ack then costs about what a do-nothing app's costs (bench/ack_latency.py) and the work after
it, whatever its backlog, waits on disk instead of in memory, and survives a restart.

Where it lives:
- PostgreSQL: the `inbox` table of the main database (migration 0007). Several servers and workers share
  it; a worker claims rows for a while (FOR UPDATE SKIP LOCKED, `claimed_until`) and deletes them once
  handled, so a row is handled by one worker, and again only if that worker died before deleting it.
- SQLite: a file of its own next to the database (peerlearn.db → peerlearn.db-inbox), written by the
  server alone. SQLite has one writer per file and makes a waiting writer sleep in steps of milliseconds;
  in one file, every ack would wait for the worker's transactions. There is one worker per SQLite store.

Every write is idempotent: a redelivered event (same event_id) or a repeated command (same trigger_id) has
the same key and is stored once (INSERT … ON CONFLICT DO NOTHING); handling one twice changes nothing either,
since every listener's write is idempotent too.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
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
    or_,
    select,
    update,
)
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

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
    # PostgreSQL: until when a worker has it (see Inbox.batch); SQLite's single worker needs no claims.
    Column("claimed_until", UTCDateTime(), nullable=True),
)
_OLDEST = select(inbox_table).order_by(inbox_table.c.id)
CLAIM_SECONDS = 300  # a claim outlives any batch's handling (seconds: it only stores); then it is free again

_UTC = UTCDateTime()
SQLITE_RETRY = 0.0001  # seconds between tries of an insert into a SQLite inbox another connection is writing
SQLITE_BUSY_WAIT = 2.0  # …until the ack gives up on the inbox and lets Bolt handle the request at once
APPEND_WAIT = 5.0  # seconds an HTTP thread waits for its row to be stored before letting Bolt handle it
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

    def __init__(self, engine: Engine, appenders: Engine, *, shared: bool) -> None:
        # `engine`: the workers' (pooled). `appenders`: where the writer's connection comes from (unpooled: it
        # is kept for good, so it never takes, nor waits for, a place in the workers' pool).
        # `shared`: the table is in the main database, maintained by its migrations (PostgreSQL); otherwise
        # the inbox is a file of its own and creates its table itself.
        self.engine = engine
        self._appenders = appenders
        self.dialect = engine.dialect.name
        self._insert = _INSERT[self.dialect]
        self._appender = _Appender(appenders, self._insert)
        self.arrived = threading.Event()  # set by every put: an in-process worker wakes at once
        if not shared:
            _checkpoint_by_worker(engine)
            _checkpoint_by_worker(appenders)
            inbox_metadata.create_all(engine)

    @classmethod
    def for_database(cls, database_url: str) -> Inbox | None:
        url = inbox_url(database_url)
        if url is None:
            return None
        shared = not url.startswith("sqlite")
        return cls(create_store_engine(url), create_store_engine(url, poolclass=NullPool), shared=shared)

    # --- appending (the HTTP server's threads) ---------------------------------------------------------

    def put(self, request_key: str, content_type: str, body: str, now: datetime) -> None:
        """Store one request durably (a crash of this process after put returns loses nothing). Raises
        the driver's error when the database cannot take it.

        One write at a time, many rows per write under load (group commit, _Appender): the HTTP threads never
        contend for the database's write lock. Measured in-process with 8 threads: 211 µs of CPU per ack when
        each thread inserted its own row (every insert released and fought for the interpreter and SQLite's
        lock), ~80 µs with one thread."""
        values = (_UTC.process_bind_param(now, self.engine.dialect), request_key, content_type, body)
        self._appender.append(values)
        self.arrived.set()

    # --- taking (workers) ---------------------------------------------------------------------------------

    @contextmanager
    def batch(self, limit: int) -> Iterator[list[InboxRequest]]:
        """The oldest requests not being handled elsewhere, removed once the block ends without an error.

        PostgreSQL: claimed for CLAIM_SECONDS in a short transaction (FOR UPDATE SKIP LOCKED, so two workers
        never claim the same row), deleted in another after the block; an error gives the claim back, a
        worker that dies leaves it to expire. No row stays locked while requests are handled, so a
        redelivery's INSERT … ON CONFLICT never waits for a worker. SQLite (one worker): read, then deleted
        in a short transaction after the block (holding the file's write lock meanwhile would hold up every
        ack)."""
        if self.dialect == "postgresql":
            requests = self._claim(limit)
        else:
            with self.engine.connect() as conn:
                requests = [_request(row) for row in conn.execute(_OLDEST.limit(limit))]
        ids = [request.id for request in requests]
        try:
            yield requests
        except BaseException:
            if ids and self.dialect == "postgresql":
                with self.engine.begin() as conn:
                    conn.execute(update(inbox_table).where(inbox_table.c.id.in_(ids)).values(claimed_until=None))
            raise
        if ids:
            with self.engine.begin() as conn:
                conn.execute(delete(inbox_table).where(inbox_table.c.id.in_(ids)))
            if self.dialect == "sqlite":
                self._checkpoint()

    def _claim(self, limit: int) -> list[InboxRequest]:
        now = func.now()
        free = or_(inbox_table.c.claimed_until.is_(None), inbox_table.c.claimed_until < now)
        claimable = _OLDEST.with_only_columns(inbox_table.c.id).where(free).limit(limit)
        with self.engine.begin() as conn:
            rows = conn.execute(
                update(inbox_table)
                .where(inbox_table.c.id.in_(claimable.with_for_update(skip_locked=True)))
                .values(claimed_until=now + timedelta(seconds=CLAIM_SECONDS))
                .returning(*inbox_table.c)
            ).all()
        return sorted((_request(row) for row in rows), key=lambda request: request.id)

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
        self._appender.close()
        self.engine.dispose()
        self._appenders.dispose()


class _Slot:
    __slots__ = ("done", "error", "lead", "values")

    def __init__(self, values: tuple[Any, ...]) -> None:
        self.values = values
        self.done = threading.Event()  # stored (or failed: `error`), or it is this thread's turn to write (`lead`)
        self.error: BaseException | None = None
        self.lead = False


class _Appender:
    """Group commit for the inbox (see Inbox.put). A thread that finds no write in progress writes its row
    itself, at once; threads that arrive meanwhile queue their rows and wait; when the write ends, the first
    of them is woken to write everything queued so far in one write (SQLite: one transaction; PostgreSQL:
    one pipelined round trip), and so on."""

    def __init__(self, engine: Engine, insert: str) -> None:
        self.engine = engine
        self.insert = insert
        self.dialect = engine.dialect.name
        self._lock = threading.Lock()
        self._queue: list[_Slot] = []
        self._writing = False
        self._connection: Any = None

    def append(self, values: tuple[Any, ...]) -> None:
        slot = _Slot(values)
        with self._lock:
            self._queue.append(slot)
            leading, self._writing = not self._writing, True
        if not leading:
            if not slot.done.wait(APPEND_WAIT):
                raise TimeoutError(f"the inbox did not take the request within {APPEND_WAIT}s")
            leading = slot.lead
        if leading:
            self._write_queued()
        if slot.error is not None:
            raise slot.error

    def _write_queued(self) -> None:
        with self._lock:
            batch, self._queue = self._queue, []
        try:
            self._store([slot.values for slot in batch])
        except BaseException as error:
            logger.warning("the inbox could not store %s request(s): %s", len(batch), error.__class__.__name__)
            self._drop_connection()
            for slot in batch:
                slot.error = error
        with self._lock:
            following = self._queue[0] if self._queue else None
            if following is None:
                self._writing = False
            else:
                following.lead = True
        for slot in batch:
            slot.done.set()
        if following is not None:
            following.done.set()

    def _store(self, rows: list[tuple[Any, ...]]) -> None:
        connection = self._connect()
        if self.dialect == "postgresql":
            # Each row its own statement in autocommit, all sent at once (psycopg pipelines executemany): one
            # round trip for the batch, no BEGIN and COMMIT round trips. Rows are independent (ON CONFLICT).
            connection.driver_connection.cursor().executemany(self.insert, rows)
            return
        # SQLite: the worker's delete may hold the file's lock for a moment; its own wait would sleep
        # 1 ms, then 2, 5…; try again every SQLITE_RETRY seconds instead.
        give_up = time.monotonic() + SQLITE_BUSY_WAIT
        while True:
            try:
                connection.driver_connection.execute("BEGIN IMMEDIATE")
                break
            except sqlite3.OperationalError as error:
                if "locked" not in str(error) or time.monotonic() > give_up:
                    raise
            time.sleep(SQLITE_RETRY)
        try:
            connection.driver_connection.executemany(self.insert, rows)
            connection.driver_connection.execute("COMMIT")
        except BaseException:
            connection.driver_connection.execute("ROLLBACK")
            raise

    def _connect(self) -> Any:
        """The writer's connection, opened once and kept (no pool checkout or pre-ping per batch)."""
        if self._connection is None:
            connection = self.engine.raw_connection()
            if self.dialect == "postgresql":
                connection.driver_connection.autocommit = True  # type: ignore[union-attr]
                # The ack does not wait for PostgreSQL's WAL to reach the disk (~1 ms here, most of an ack):
                # the row is safe once PostgreSQL has it, whatever happens to this process (bench/durability.py
                # kills it with SIGKILL); a crash of the database server itself may lose the last ~0.6 s of
                # inserts (3 x wal_writer_delay). The same promise as SQLite's (WAL, synchronous=NORMAL).
                connection.driver_connection.execute("SET synchronous_commit = off")  # type: ignore[union-attr]
            else:
                connection.driver_connection.execute("PRAGMA busy_timeout=0")  # type: ignore[union-attr]
            self._connection = connection
        return self._connection

    def _drop_connection(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            try:
                connection.invalidate()
            except Exception:  # already broken: nothing more to give back
                logger.debug("closing a broken inbox connection failed", exc_info=True)

    def close(self) -> None:
        self._drop_connection()


def _checkpoint_by_worker(engine: Engine) -> None:
    """SQLite copies its write-ahead log back into the file (a checkpoint, with an fsync) from inside whichever
    commit finds the log over 1,000 pages; for the inbox that would be an ack, now and then. The worker does it
    instead, after each batch it removes (PASSIVE: never waits for, nor holds up, the server's inserts)."""

    @event.listens_for(engine, "connect")
    def no_automatic_checkpoints(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.execute("PRAGMA wal_autocheckpoint=0")


def _request(row: Any) -> InboxRequest:
    return InboxRequest(row.id, row.request_key, row.content_type, row.body)


def inbox_file(database_url: str) -> Path | None:
    """The SQLite inbox's file, for tools that clean up after a store (None on PostgreSQL)."""
    url = inbox_url(database_url)
    if url is None or not url.startswith("sqlite"):
        return None
    return Path(make_url(url).database or "")
