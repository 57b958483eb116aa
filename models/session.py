"""The Store: one engine and session factory per process, tuned for SQLite (embedded) and PostgreSQL."""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

SQLITE_TURN_WAIT = 30.0  # seconds, as busy_timeout
_HOLDS_TURN = "peerlearn_holds_sqlite_turn"


def create_private_file(path: str) -> None:
    """Create the SQLite file `path` readable and writable by its owner only (0600), unless it exists already.
    SQLite itself creates a database 0644 (less the umask): readable by every user of the machine. Its -wal and
    -shm files take the database file's mode, so they are private too."""
    # It exists (it keeps its mode), or cannot be created (no such folder…): then SQLite says why, as before.
    with contextlib.suppress(OSError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))


def normalize_url(url: str) -> str:
    """Accept the URLs people paste (postgres://, postgresql://) and pick the psycopg 3 driver."""
    parsed = make_url(url.replace("postgres://", "postgresql://", 1) if url.startswith("postgres://") else url)
    if parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


def create_store_engine(url: str, **kwargs: Any) -> Engine:
    url = normalize_url(url)
    if url.startswith("sqlite"):
        database = make_url(url).database
        if database and database != ":memory:" and not database.startswith("file:"):
            create_private_file(database)  # before SQLite creates it world-readable
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30}, **kwargs)
        _tune_sqlite(engine)
        return engine
    # libpq's shortest connect timeout: an unreachable database must fail a request within Slack's 3 s.
    connect_args = {"connect_timeout": 2}
    return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20, connect_args=connect_args, **kwargs)


def _tune_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" hook below decide when transactions start.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        # Read the file through a memory map rather than a read() call per page: full-text search reads many
        # index pages (measured in bench/search_scale.py at 100k questions: p50 8.0 → 5.3 ms, p95 12.8 → 7.1 ms).
        cursor.execute("PRAGMA mmap_size=268435456")
        cursor.close()

    # This process's transactions take turns on a Python lock around BEGIN IMMEDIATE … COMMIT. SQLite's own
    # wait (busy_timeout) polls with growing sleeps (1, 2, 5, 10 … 100 ms), so when several threads write at
    # once the waits pile up (bench/ack_latency.py, 8 clients: p99 349 ms); the lock hands over at once.
    # Other processes are still waited for by busy_timeout. The turn is tied to the DBAPI connection and
    # given back after COMMIT or ROLLBACK, or at the latest when the connection returns to the pool; a turn
    # not had within SQLITE_TURN_WAIT seconds is gone without (SQLite serializes as before), never hangs.
    turn = threading.Lock()

    def give_back(record_info: dict[Any, Any]) -> None:
        if record_info.pop(_HOLDS_TURN, False):
            turn.release()

    @event.listens_for(engine, "begin")
    def on_begin(conn: Any) -> None:
        # Take the write lock up front: concurrent threads wait (busy_timeout) instead of
        # failing with "database is locked" when a read transaction later tries to write.
        info = conn.connection.info
        if not info.get(_HOLDS_TURN) and turn.acquire(timeout=SQLITE_TURN_WAIT):
            info[_HOLDS_TURN] = True
        try:
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        except BaseException:
            give_back(info)
            raise

    # SQLAlchemy announces a commit or rollback before doing it: do it here (the driver's own call then finds
    # no transaction open, a no-op with isolation_level None), so that the turn passes once it is done.
    @event.listens_for(engine, "commit")
    def on_commit(conn: Any) -> None:
        if conn.invalidated:  # nothing to commit; its turn went back when it was invalidated
            return
        try:
            conn.connection.driver_connection.commit()
        finally:
            give_back(conn.connection.info)

    @event.listens_for(engine, "rollback")
    def on_rollback(conn: Any) -> None:
        if conn.invalidated:
            return
        try:
            conn.connection.driver_connection.rollback()
        finally:
            give_back(conn.connection.info)

    @event.listens_for(engine, "checkin")
    def on_checkin(_dbapi_connection: Any, record: Any) -> None:
        give_back(record.info)

    @event.listens_for(engine, "invalidate")
    def on_invalidate(_dbapi_connection: Any, record: Any, _error: Any) -> None:
        give_back(record.info)  # a broken connection is thrown away with whatever transaction it had


class Store:
    """Owns the engine; `with store.session() as s:` is one short transaction."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._sessions = sessionmaker(engine, expire_on_commit=False)

    @classmethod
    def from_url(cls, url: str) -> Store:
        return cls(create_store_engine(url))

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @contextmanager
    def session(self) -> Iterator[Session]:
        session = self._sessions()
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()

    def ping(self) -> bool:
        try:
            with self.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
            return True
        except Exception:
            return False

    def dispose(self) -> None:
        self.engine.dispose()
