"""The front's inbox writer (bot/inbox_writer.LoopAppender): group commit on an event loop, on SQLite and
PostgreSQL.

What is put in one turn of the loop is written with one INSERT; the loop never waits for the database (a
SQLite file another connection is writing, a PostgreSQL round trip); a failed write fails each of its `put`s
(the front then hands those requests to Bolt) and the next write opens a new connection. Read back through
models/inbox.py, as the workers read it.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any, TypeVar

import psycopg
import pytest
import uvloop

from bot import inbox_writer
from bot.inbox_writer import LoopAppender, inbox_location
from models.inbox import Inbox

NOW = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
T = TypeVar("T")


def run(main: Callable[[], Awaitable[T]]) -> T:
    """On the loop the front runs on (uvicorn picks uvloop where it is installed)."""
    return uvloop.run(main())  # type: ignore[arg-type]


@pytest.fixture
def inbox(database_url: str) -> Iterator[Inbox]:
    inbox = Inbox.for_database(database_url)
    assert inbox is not None
    try:
        yield inbox
    finally:
        inbox.close()


@pytest.fixture
def appender(database_url: str, inbox: Inbox) -> Iterator[LoopAppender]:
    location = inbox_location(database_url)
    assert location is not None
    appender = LoopAppender(location)
    try:
        yield appender
    finally:
        appender.close()


def taken(inbox: Inbox) -> list[tuple[str, str, str]]:
    with inbox.batch(100) as requests:
        return [(request.request_key, request.content_type, request.body) for request in requests]


def counting_writes(appender: LoopAppender) -> list[int]:
    """The number of rows of each write the appender starts, from now on."""
    writes: list[int] = []
    original = appender._write_queued

    def write_queued() -> None:
        if appender._connection is not None and appender._queue:
            writes.append(min(len(appender._queue), inbox_writer.ROWS_PER_INSERT))
        original()

    appender._write_queued = write_queued  # type: ignore[method-assign]
    return writes


def test_puts_of_one_turn_are_one_insert_and_a_redelivery_is_stored_once(appender, inbox):
    async def main() -> None:
        await appender.put("event:EvOpen", "application/json", "{}", NOW)  # opens the connection
        writes = counting_writes(appender)
        await asyncio.gather(
            *(appender.put(f"event:Ev{n}", "application/json", f'{{"n": {n}}}', NOW) for n in range(30)),
            appender.put("event:Ev3", "application/json", '{"delivery": 2}', NOW),
        )
        assert writes == [31]

    run(main)
    stored = taken(inbox)
    assert len(stored) == 31
    assert ("event:Ev3", "application/json", '{"n": 3}') in stored  # the first delivery; the second skipped


def test_what_is_stored_comes_back_as_it_was_put(appender, inbox):
    berlin_noon = datetime(2026, 11, 23, 12, 0, 0, 123456, tzinfo=timezone(timedelta(hours=1)))
    body = '{"text": "Grüße, 日本語 & <@U1> \\n ✅"}'

    async def main() -> None:
        await appender.put("event:EvText", "application/json", body, berlin_noon)
        await appender.put("cmd:1.2", "application/x-www-form-urlencoded", "a=1", berlin_noon)

    run(main)
    with inbox.engine.connect() as conn:
        rows = conn.exec_driver_sql("SELECT request_key, received_at, body FROM inbox ORDER BY id").all()
    assert [row[0] for row in rows] == ["event:EvText", "cmd:1.2"]
    assert rows[0][2] == body and rows[1][2] == "a=1"
    received = rows[0][1]
    if isinstance(received, str):  # SQLite: naive UTC text, as models/base.py's UTCDateTime reads it
        received = datetime.fromisoformat(received).replace(tzinfo=UTC)
    assert received == berlin_noon


def test_while_another_connection_writes_the_sqlite_file_the_loop_goes_on_and_the_put_waits(
    appender, inbox, database_url
):
    if inbox.dialect != "sqlite":
        pytest.skip("PostgreSQL has no file lock to wait for")
    holder = sqlite3.connect(inbox_location(database_url).target, isolation_level=None)  # type: ignore[union-attr]

    async def main() -> list[str]:
        await appender.put("event:EvFirst", "application/json", "{}", NOW)
        holder.execute("BEGIN IMMEDIATE")  # as the worker does while it removes handled rows
        order: list[str] = []

        async def put() -> None:
            await appender.put("event:EvLocked", "application/json", "{}", NOW)
            order.append("stored")

        async def meanwhile() -> None:
            for _ in range(5):
                await asyncio.sleep(0.01)
            order.append("the loop went on")
            holder.execute("COMMIT")

        await asyncio.gather(put(), meanwhile())
        return order

    try:
        assert run(main) == ["the loop went on", "stored"]
    finally:
        holder.close()
    assert [key for key, _, _ in taken(inbox)] == ["event:EvFirst", "event:EvLocked"]


def test_a_sqlite_file_locked_too_long_refuses_the_put_and_the_next_one_is_stored(
    appender, inbox, database_url, monkeypatch
):
    if inbox.dialect != "sqlite":
        pytest.skip("PostgreSQL has no file lock to wait for")
    monkeypatch.setattr(inbox_writer, "SQLITE_BUSY_WAIT", 0.2)
    holder = sqlite3.connect(inbox_location(database_url).target, isolation_level=None)  # type: ignore[union-attr]

    async def main() -> None:
        await appender.put("event:EvFirst", "application/json", "{}", NOW)
        holder.execute("BEGIN IMMEDIATE")
        with pytest.raises(sqlite3.OperationalError, match="locked"):  # the front hands it to Bolt
            await appender.put("event:EvRefused", "application/json", "{}", NOW)
        holder.execute("COMMIT")
        await appender.put("event:EvAfter", "application/json", "{}", NOW)

    try:
        run(main)
    finally:
        holder.close()
    assert [key for key, _, _ in taken(inbox)] == ["event:EvFirst", "event:EvAfter"]


def test_a_lost_postgresql_connection_fails_one_write_and_the_next_reconnects(appender, inbox, database_url):
    if inbox.dialect != "postgresql":
        pytest.skip("SQLite's inbox is a file: no connection to lose")
    location = inbox_location(database_url)
    assert location is not None

    async def main() -> None:
        await appender.put("event:EvBefore", "application/json", "{}", NOW)
        backend = appender._connection.connection.info.backend_pid
        with contextlib.closing(psycopg.connect(location.target, autocommit=True)) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", [backend])
        with pytest.raises(psycopg.OperationalError):
            await appender.put("event:EvLost", "application/json", "{}", NOW)
        await appender.put("event:EvAfter", "application/json", "{}", NOW)

    run(main)
    assert [key for key, _, _ in taken(inbox)] == ["event:EvBefore", "event:EvAfter"]


def test_a_failed_write_fails_each_of_its_puts_and_the_next_write_starts_afresh(appender, inbox):
    async def main() -> dict[str, str]:
        await appender.put("event:EvFirst", "application/json", "{}", NOW)
        real = appender._connection
        appender._connection = _Broken(inbox.dialect)
        outcomes: dict[str, str] = {}

        async def put(key: str) -> None:
            try:
                await appender.put(key, "application/json", "{}", NOW)
                outcomes[key] = "stored"
            except Exception as error:
                outcomes[key] = type(error).__name__

        await asyncio.gather(*(put(f"event:EvFailed{n}") for n in range(3)))
        assert appender._connection is None  # dropped: the next write opens another
        real.close()
        await put("event:EvAfter")
        return outcomes

    outcomes = run(main)
    failure = "OperationalError"
    assert outcomes == {f"event:EvFailed{n}": failure for n in range(3)} | {"event:EvAfter": "stored"}
    assert [key for key, _, _ in taken(inbox)] == ["event:EvFirst", "event:EvAfter"]


def test_a_put_whose_write_never_starts_gives_up_and_leaves_the_appender_working(appender, inbox, monkeypatch):
    monkeypatch.setattr(inbox_writer, "APPEND_WAIT", 0.2)

    async def main() -> None:
        await appender.put("event:EvFirst", "application/json", "{}", NOW)
        appender._writing = True  # as if a write were under way and not ending
        with pytest.raises(TimeoutError):  # the front hands it to Bolt
            await appender.put("event:EvGaveUp", "application/json", "{}", NOW)
        assert appender._queue == []  # never written: it is not left behind for a later write
        appender._writing = False
        await appender.put("event:EvNext", "application/json", "{}", NOW)

    run(main)
    assert [key for key, _, _ in taken(inbox)] == ["event:EvFirst", "event:EvNext"]


def test_a_database_that_cannot_be_reached_fails_the_puts_without_stopping_the_loop(tmp_path):
    location = inbox_location(f"sqlite:///{tmp_path / 'missing' / 'peerlearn.db'}")  # no such folder
    assert location is not None
    appender = LoopAppender(location)

    async def main() -> list[str]:
        ticks: list[str] = []

        async def tick() -> None:
            await asyncio.sleep(0)
            ticks.append("tick")

        results = await asyncio.gather(
            appender.put("event:Ev1", "application/json", "{}", NOW), tick(), return_exceptions=True
        )
        assert isinstance(results[0], sqlite3.OperationalError)
        return ticks

    assert run(main) == ["tick"]
    appender.close()


class _Broken:
    """A connection whose every write fails as a lost one does."""

    def __init__(self, dialect: str) -> None:
        self.dialect = dialect

    def execute(self, *_: Any) -> Any:  # SQLite's
        raise sqlite3.OperationalError("disk I/O error")

    def send(self, _rows: Any) -> None:  # PostgreSQL's
        raise psycopg.OperationalError("server closed the connection unexpectedly")

    def close(self) -> None:
        pass
