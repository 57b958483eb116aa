"""Appending to the inbox (models/inbox.py) with the database driver alone.

`serve`'s HTTP front (bot/front.py) stores each request it acknowledges here, in a process that loads neither
SQLAlchemy nor the models: that is why this lives in `bot/` (importing anything under `models/` loads every
model). Workers read and remove the rows through models/inbox.py.

Group commit: one write at a time, many rows per write under load (Appender); the HTTP threads never contend
for the database's write lock. Measured in-process with 8 threads: 211 µs of CPU per ack when each thread
inserted its own row (every insert released and fought for the interpreter and SQLite's lock), ~80 µs with
one thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

logger = logging.getLogger("peerlearn.inbox")

SQLITE_RETRY = 0.0001  # seconds between tries of an insert into a SQLite inbox another connection is writing
SQLITE_BUSY_WAIT = 2.0  # …until the ack gives up on the inbox and lets Bolt handle the request at once
APPEND_WAIT = 5.0  # seconds an HTTP thread waits for its row to be stored before letting Bolt handle it
# A redelivery (same request_key) is stored once; duplicates within one statement are skipped too.
_INSERT = {
    "sqlite": "INSERT OR IGNORE INTO inbox (received_at, request_key, content_type, body) VALUES {rows}",
    "postgresql": "INSERT INTO inbox (received_at, request_key, content_type, body) VALUES {rows} "
    "ON CONFLICT (request_key) DO NOTHING",
}
ROWS_PER_INSERT = 200  # 800 parameters, far under SQLite's limit (32,766) and PostgreSQL's (65,535)
# The SQLite inbox is a file of its own, created by whoever opens it first (PostgreSQL's table comes from
# migration 0007). The same table as models/inbox.py's `inbox_table` (tests/test_inbox.py compares them).
SQLITE_TABLE = """CREATE TABLE IF NOT EXISTS inbox (
\tid INTEGER NOT NULL,
\treceived_at DATETIME NOT NULL,
\trequest_key VARCHAR(255) NOT NULL,
\tcontent_type VARCHAR(100) NOT NULL,
\tbody TEXT NOT NULL,
\tclaimed_until DATETIME,
\tCONSTRAINT pk_inbox PRIMARY KEY (id),
\tCONSTRAINT uq_inbox_request_key UNIQUE (request_key)
)"""


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


def create_private_file(path: str) -> None:
    """Create the SQLite file `path` readable and writable by its owner only (0600), unless it exists already.
    SQLite itself creates a database 0644 (less the umask): readable by every user of the machine. Its -wal and
    -shm files take the database file's mode, so they are private too. Shared with models/session.py."""
    # It exists (it keeps its mode), or cannot be created (no such folder…): then SQLite says why, as before.
    with contextlib.suppress(OSError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))


def connect(location: InboxLocation) -> Any:
    """A connection for appending: autocommit, the table in place (SQLite), no waiting on SQLite's lock."""
    if location.dialect == "postgresql":
        import psycopg  # only where the store is PostgreSQL

        pg = psycopg.connect(location.target, autocommit=True, connect_timeout=2)
        # The ack does not wait for PostgreSQL's WAL to reach the disk (~1 ms here, most of an ack): the row is
        # safe once PostgreSQL has it, whatever happens to this process (bench/durability.py kills it with
        # SIGKILL); a crash of the database server itself may lose the last ~0.6 s of inserts (3 x
        # wal_writer_delay). The same promise as SQLite's (WAL, synchronous=NORMAL).
        pg.execute("SET synchronous_commit = off")
        pg.execute("SET client_encoding = 'UTF8'")  # what _PostgresInserts encodes the texts in
        return _PostgresInserts(pg)
    create_private_file(location.target)
    connection = sqlite3.connect(location.target, isolation_level=None, check_same_thread=False, timeout=30)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=NORMAL")
    no_automatic_checkpoints(connection)
    connection.execute(SQLITE_TABLE)  # may wait for a worker's delete (the 30 s timeout above)
    # From now on the Appender waits for the lock itself (see Appender._store).
    connection.execute("PRAGMA busy_timeout=0")
    return connection


def no_automatic_checkpoints(connection: sqlite3.Connection) -> None:
    """SQLite copies its write-ahead log back into the file (a checkpoint, with an fsync) from inside whichever
    commit finds the log over 1,000 pages; for the inbox that would be an ack, now and then. The worker does
    it instead, after each batch it removes (models/inbox.py; PASSIVE: never waits for, nor holds up, the
    server's inserts)."""
    connection.execute("PRAGMA wal_autocheckpoint=0")


class _PostgresInserts:
    """The front's PostgreSQL connection: each INSERT runs as a prepared statement through libpq itself
    (psycopg's PGconn), with the values as text.

    psycopg's `execute` spent 79-87 µs of this process's CPU on a one-row INSERT and let go of the
    interpreter's lock several times while it waited (each time, an HTTP thread could keep it up to 5 ms);
    a prepared statement through libpq spends 25-38 µs and lets go of the lock once, for the whole round
    trip (measured: 4,000 inserts of 1.5 kB rows, 194-200 → 116-148 µs each)."""

    def __init__(self, connection: Any) -> None:
        import psycopg

        self.connection = connection
        self.psycopg = psycopg
        self._prepared: set[int] = set()  # row counts whose statement this connection has prepared

    def insert(self, rows: list[tuple[Any, ...]]) -> None:
        """One INSERT of `rows`, waiting for PostgreSQL's answer."""
        self._check(self.connection.pgconn.exec_prepared(self._statement(len(rows)), self._values(rows)))

    def send(self, rows: list[tuple[Any, ...]]) -> None:
        """Start one INSERT of `rows` without waiting for the answer: `answered` says when `finish` may read it
        (the front's event loop watches `socket` meanwhile)."""
        # In libpq's blocking mode the whole statement is sent before this returns (a few kB; PostgreSQL reads
        # it at once). Raises psycopg.OperationalError when the connection is lost.
        self.connection.pgconn.send_query_prepared(self._statement(len(rows)), self._values(rows))

    @property
    def socket(self) -> int:
        return int(self.connection.pgconn.socket)

    def answered(self) -> bool:
        """Whether the answer to `send` has arrived (reads what the socket holds)."""
        pgconn = self.connection.pgconn
        pgconn.consume_input()
        return not pgconn.is_busy()

    def finish(self) -> None:
        """Read the answer to `send`; raises psycopg's error when the INSERT failed."""
        failure: Exception | None = None
        while (result := self.connection.pgconn.get_result()) is not None:
            try:
                self._check(result)
            except Exception as error:
                failure = failure or error
        if failure is not None:
            raise failure

    def _statement(self, count: int) -> bytes:
        """The prepared INSERT of `count` rows (prepared on first use: at most ROWS_PER_INSERT, one round trip
        each, over the connection's life)."""
        name = f"peerlearn_inbox_{count}".encode()
        if count not in self._prepared:
            placeholders = ", ".join(f"(${n + 1}, ${n + 2}, ${n + 3}, ${n + 4})" for n in range(0, 4 * count, 4))
            self._check(self.connection.pgconn.prepare(name, _INSERT["postgresql"].format(rows=placeholders).encode()))
            self._prepared.add(count)
        return name

    @staticmethod
    def _values(rows: list[tuple[Any, ...]]) -> list[bytes]:
        return [
            field.isoformat().encode() if isinstance(field, datetime) else field.encode()
            for row in rows
            for field in row
        ]

    def _lost(self) -> None:
        raise self.psycopg.OperationalError(self.connection.pgconn.error_message.decode(errors="replace").strip())

    def _check(self, result: Any) -> None:
        """psycopg's own error for a statement that failed (OperationalError when the connection is lost: the
        Appender then opens a new one)."""
        if result.status == self.psycopg.pq.ExecStatus.COMMAND_OK:
            return
        if self.connection.pgconn.status == self.psycopg.pq.ConnStatus.BAD:
            self._lost()
        raise self.psycopg.errors.error_from_result(result)

    def close(self) -> None:
        self.connection.close()


def inbox_row(dialect: str, request_key: str, content_type: str, body: str, now: datetime) -> tuple[Any, ...]:
    """A request as the INSERT takes it: (received_at, request_key, content_type, body)."""
    received_at = now.astimezone(UTC)
    # SQLite: naive UTC text, as models/base.py's UTCDateTime stores it.
    stored = received_at.replace(tzinfo=None).isoformat(" ") if dialect == "sqlite" else received_at
    return (stored, request_key, content_type, body)


def sqlite_insert(connection: sqlite3.Connection, rows: list[tuple[Any, ...]]) -> None:
    """One INSERT of `rows`; raises sqlite3.OperationalError ("database is locked") at once when another
    connection is writing (the connection's busy_timeout is 0: callers wait their own way)."""
    statement = _INSERT["sqlite"].format(rows=", ".join(["(?, ?, ?, ?)"] * len(rows)))
    connection.execute(statement, [value for row in rows for value in row])


def is_locked(error: BaseException) -> bool:
    return isinstance(error, sqlite3.OperationalError) and "locked" in str(error)


class InboxWriter:
    """Stores requests durably: a crash of this process after `put` returns loses nothing."""

    def __init__(self, location: InboxLocation) -> None:
        self.location = location
        self._appender = Appender(lambda: connect(location), location.dialect)

    def put(self, request_key: str, content_type: str, body: str, now: datetime) -> None:
        """Raises the driver's error (or TimeoutError) when the database cannot take it."""
        self._appender.append(inbox_row(self.location.dialect, request_key, content_type, body, now))

    def close(self) -> None:
        self._appender.close()


class _Slot:
    __slots__ = ("done", "error", "lead", "values")

    def __init__(self, values: tuple[Any, ...]) -> None:
        self.values = values
        # Released when the row is stored (or failed: `error`), or when it is this thread's turn to write
        # (`lead`). A bare lock: waking a thread through it costs less than through an Event (a Condition).
        self.done = threading.Lock()
        self.done.acquire()
        self.error: BaseException | None = None
        self.lead = False


class Appender:
    """Group commit. A thread that finds no write in progress writes its row itself, at once; threads that
    arrive meanwhile queue their rows and wait; when the write ends, the first of them is woken to write
    everything queued so far in one write (one multi-row INSERT, see _store), and so on."""

    def __init__(self, connect: Callable[[], Any], dialect: str) -> None:
        self.connect = connect
        self.dialect = dialect
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
            if not slot.done.acquire(timeout=APPEND_WAIT):
                with self._lock:
                    if slot in self._queue and not slot.lead:  # still waiting: give up (and never lead)
                        self._queue.remove(slot)
                        raise TimeoutError(f"the inbox did not take the request within {APPEND_WAIT}s")
                slot.done.acquire()  # its write has started meanwhile, or it was just handed the lead
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
            slot.done.release()
        if following is not None:
            following.done.release()

    def _store(self, rows: list[tuple[Any, ...]]) -> None:
        """One INSERT of many rows per ROWS_PER_INSERT, each its own transaction (autocommit).

        One statement rather than one per row: on SQLite every call into the library lets go of the
        interpreter's lock, and with several HTTP threads waiting for it getting it back is what costs (BEGIN,
        a step per row, COMMIT: at 8 clients 0.43-0.50 ms of CPU per ack, 0.38-0.42 with one statement); on
        PostgreSQL psycopg's pipelined executemany spent 247 µs of CPU on 8 rows, one statement 106 µs."""
        if self._connection is None:  # opened once and kept: no pool checkout or pre-ping per batch
            self._connection = self.connect()
        for start in range(0, len(rows), ROWS_PER_INSERT):
            chunk = rows[start : start + ROWS_PER_INSERT]
            if self.dialect == "postgresql":
                self._connection.insert(chunk)
            else:
                self._sqlite_insert(chunk)

    def _sqlite_insert(self, rows: list[tuple[Any, ...]]) -> None:
        # The worker's delete may hold the file's lock for a moment; SQLite's own wait would sleep 1 ms,
        # then 2, 5…; try again every SQLITE_RETRY seconds instead.
        give_up = time.monotonic() + SQLITE_BUSY_WAIT
        while True:
            try:
                sqlite_insert(self._connection, rows)
                return
            except sqlite3.OperationalError as error:
                if not is_locked(error) or time.monotonic() > give_up:
                    raise
            time.sleep(SQLITE_RETRY)

    def _drop_connection(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            try:
                connection.close()
            except Exception:  # already broken: nothing more to give back
                logger.debug("closing a broken inbox connection failed", exc_info=True)

    def close(self) -> None:
        self._drop_connection()


class _Waiting:
    __slots__ = ("done", "row")

    def __init__(self, row: tuple[Any, ...], done: asyncio.Future[None]) -> None:
        self.row, self.done = row, done


class LoopAppender:
    """Group commit on an event loop (the front's, bot/front.py): the rows `put` in one turn of the loop are
    written with one INSERT, and so are those that arrive while a write is under way, once it ends.

    The loop never waits for the database: SQLite's INSERT is tried at once (tens of µs) and, while the worker
    holds the file's lock, tried again every SQLITE_RETRY seconds by a timer; PostgreSQL's is sent through libpq
    and its answer read when the socket says it has come (no thread, no interpreter lock handed around).
    Connections are opened on a thread, since opening may wait (SQLite's table creation, PostgreSQL's connect).
    A write that fails fails its rows' `put` (the front then hands those requests to Bolt at once) and drops the
    connection; the next write opens another."""

    def __init__(self, location: InboxLocation, opener: Callable[[InboxLocation], Any] = connect) -> None:
        self.location = location
        self._open = opener
        self._connection: Any = None
        self._queue: list[_Waiting] = []
        self._writing = False
        self._watched: int | None = None  # the PostgreSQL socket the loop watches for an answer
        self._loop: asyncio.AbstractEventLoop | None = None

    async def put(self, request_key: str, content_type: str, body: str, now: datetime) -> None:
        """Store one request durably. Raises the driver's error, or TimeoutError when it waited APPEND_WAIT
        seconds without its write starting."""
        loop = self._loop = asyncio.get_running_loop()
        waiting = _Waiting(inbox_row(self.location.dialect, request_key, content_type, body, now), loop.create_future())
        self._queue.append(waiting)
        if not self._writing:
            self._writing = True
            loop.call_soon(self._write_queued)  # after the loop's turn: the requests read in it join this write
        try:
            await asyncio.wait_for(asyncio.shield(waiting.done), APPEND_WAIT)
        except TimeoutError:
            if waiting not in self._queue:  # its write is under way: its outcome is coming
                await waiting.done
                return
            self._queue.remove(waiting)
            raise TimeoutError(f"the inbox did not take the request within {APPEND_WAIT}s") from None

    def close(self) -> None:
        """Close the connection (after the loop has stopped, or from it)."""
        self._drop_connection()

    # --- one write at a time ------------------------------------------------------------------------------

    def _write_queued(self) -> None:
        if not self._queue:
            self._writing = False
            return
        if self._connection is None:
            opening = self._running_loop().run_in_executor(None, self._open, self.location)
            opening.add_done_callback(self._opened)
            return
        batch, self._queue = self._queue[:ROWS_PER_INSERT], self._queue[ROWS_PER_INSERT:]
        rows = [waiting.row for waiting in batch]
        if self.location.dialect == "sqlite":
            self._sqlite_write(batch, rows, time.monotonic() + SQLITE_BUSY_WAIT)
            return
        try:
            self._connection.send(rows)
        except Exception as error:
            self._finish(batch, error)
            return
        self._watched = self._connection.socket
        self._running_loop().add_reader(self._watched, self._postgres_answer, batch)

    def _opened(self, opening: asyncio.Future[Any]) -> None:
        error = opening.exception()
        if error is None:
            self._connection = opening.result()
            self._write_queued()
            return
        batch, self._queue = self._queue, []
        self._finish(batch, error)

    def _sqlite_write(self, batch: list[_Waiting], rows: list[tuple[Any, ...]], give_up: float) -> None:
        try:
            sqlite_insert(self._connection, rows)
        except Exception as error:
            if is_locked(error) and time.monotonic() < give_up:  # the worker is removing rows: in a moment
                self._running_loop().call_later(SQLITE_RETRY, self._sqlite_write, batch, rows, give_up)
                return
            self._finish(batch, error)
            return
        self._finish(batch, None)

    def _postgres_answer(self, batch: list[_Waiting]) -> None:
        try:
            if not self._connection.answered():
                return  # part of it: the rest is on its way
            self._stop_watching()
            self._connection.finish()
        except Exception as error:
            self._finish(batch, error)
            return
        self._finish(batch, None)

    def _finish(self, batch: list[_Waiting], error: BaseException | None) -> None:
        if error is not None:
            logger.warning("the inbox could not store %s request(s): %s", len(batch), error.__class__.__name__)
            self._drop_connection()
        for waiting in batch:
            if waiting.done.done():
                continue
            if error is None:
                waiting.done.set_result(None)
            else:
                waiting.done.set_exception(error)
        self._write_queued()

    def _running_loop(self) -> asyncio.AbstractEventLoop:
        assert self._loop is not None, "called back by the loop a put ran on"
        return self._loop

    def _stop_watching(self) -> None:
        if self._watched is not None:
            if self._loop is not None and not self._loop.is_closed():
                self._loop.remove_reader(self._watched)
            self._watched = None

    def _drop_connection(self) -> None:
        self._stop_watching()
        connection, self._connection = self._connection, None
        if connection is not None:
            try:
                connection.close()
            except Exception:  # already broken: nothing more to give back
                logger.debug("closing a broken inbox connection failed", exc_info=True)
