"""The inbox (models/inbox.py): events and /ask questions acknowledged before any work, handed to Bolt by a
worker (bot/runtime/worker.py) afterwards.

The store itself: where it lives, one row per request key, batches taken oldest first and removed only when
handled (on PostgreSQL, claimed with SKIP LOCKED so that two workers never share a request), and an ack that
never waits for a worker (a redelivery of a request being handled; more HTTP threads than the pool holds).
Through the HTTP endpoint and the worker: tests/test_inbox_queueing.py.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict
from sqlalchemy import func, inspect, select
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

from bot.runtime.wiring import Runtime
from models.inbox import Inbox, InboxLocation, InboxRequest, inbox_file, inbox_location, inbox_table, inbox_url
from models.session import Store, create_store_engine, normalize_url

ROOT = Path(__file__).resolve().parent.parent
NOW = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
FORM = "application/x-www-form-urlencoded"


# --- helpers ----------------------------------------------------------------------------------------------


def keys(requests: list[InboxRequest]) -> list[str]:
    return [request.request_key for request in requests]


def put_events(inbox: Inbox, count: int) -> list[str]:
    """`count` events stored one after the other; their keys, oldest first."""
    stored = []
    for number in range(1, count + 1):
        key = f"event:Ev{number:04d}"
        inbox.put(key, "application/json", json.dumps({"n": number}), NOW + timedelta(seconds=number))
        stored.append(key)
    return stored


def take(inbox: Inbox, limit: int) -> list[InboxRequest]:
    """What a worker's batch holds, handled (removed) at once."""
    with inbox.batch(limit) as requests:
        return requests


def needs_postgresql(inbox: Inbox, why: str) -> None:
    if inbox.dialect != "postgresql":
        pytest.skip(why)


def count(runtime: Runtime, model: Any) -> int:
    with runtime.store.session() as session:
        return int(session.scalar(select(func.count()).select_from(model)) or 0)


def in_threads(count: int, work: Callable[[int], Any], timeout: float = 10.0) -> list[Any]:
    """`work(0..count-1)` on threads of their own; their results, or the first error."""
    results: list[Any] = [None] * count
    errors: list[BaseException] = []

    def run(number: int) -> None:
        try:
            results[number] = work(number)
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=run, args=(n,), daemon=True) for n in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout)
    assert not any(thread.is_alive() for thread in threads), f"still running after {timeout}s"
    if errors:
        raise errors[0]
    return results


@pytest.fixture
def inbox(database_url: str) -> Iterator[Inbox]:
    inbox = Inbox.for_database(database_url)
    assert inbox is not None
    try:
        yield inbox
    finally:
        inbox.close()


# --- models.inbox -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    ["postgresql://peer:s%40cret@db.example:5433/peerlearn", "postgres://peer@db.example/peerlearn?sslmode=require"],
)
def test_on_postgresql_the_inbox_is_the_database_itself(url):
    assert inbox_url(url) == normalize_url(url)
    same, given = make_url(inbox_url(url) or ""), make_url(url)
    assert (same.host, same.port, same.database, same.username, same.password, dict(same.query)) == (
        given.host,
        given.port,
        given.database,
        given.username,
        given.password,
        dict(given.query),
    )
    assert inbox_file(url) is None
    # Tools (and the tests) may connect with psycopg alone, to the same place.
    location = inbox_location(url)
    assert location is not None and location.dialect == "postgresql"
    info = conninfo_to_dict(location.target)
    assert (info.get("host"), info.get("port"), info.get("dbname"), info.get("user"), info.get("password")) == (
        given.host,
        str(given.port) if given.port else None,
        given.database,
        given.username,
        given.password,
    )


def test_on_sqlite_the_inbox_is_a_sibling_file(tmp_path):
    database = tmp_path / "peerlearn.db"
    assert inbox_url(f"sqlite:///{database}") == f"sqlite:///{database}-inbox"
    assert inbox_url("sqlite:///peerlearn.db") == "sqlite:///peerlearn.db-inbox"
    assert inbox_file(f"sqlite:///{database}") == Path(f"{database}-inbox")
    assert inbox_location(f"sqlite+pysqlite:///{database}?timeout=5") == InboxLocation("sqlite", f"{database}-inbox")


@pytest.mark.parametrize("url", ["sqlite://", "sqlite:///:memory:"])
def test_an_in_memory_database_has_no_inbox(url):
    assert inbox_url(url) is None
    assert inbox_file(url) is None
    assert Inbox.for_database(url) is None


def test_the_inbox_lives_where_its_url_says(database_url, inbox):
    inbox.put("event:Ev1", "application/json", "{}", NOW)
    store = Store.from_url(database_url)
    try:
        in_main_database = "inbox" in inspect(store.engine).get_table_names()
    finally:
        store.dispose()
    if inbox.dialect == "postgresql":
        assert in_main_database, "migration 0007 creates the inbox table in the database"
    else:
        assert not in_main_database, "SQLite's inbox has a file of its own"
        path = inbox_file(database_url)
        assert path is not None and path.exists()
        with contextlib.closing(sqlite3.connect(path)) as conn:
            assert conn.execute("SELECT request_key FROM inbox").fetchall() == [("event:Ev1",)]


def test_a_request_key_is_stored_once(inbox):
    inbox.put("event:Ev1", "application/json", '{"delivery": 1}', NOW)
    inbox.put("event:Ev1", "application/json", '{"delivery": 2}', NOW + timedelta(seconds=5))
    inbox.put("cmd:1.2.3", FORM, "command=%2Fask&text=hi", NOW)
    assert inbox.pending() == 2
    with inbox.batch(10) as requests:
        assert [(r.request_key, r.content_type, r.body) for r in requests] == [
            ("event:Ev1", "application/json", '{"delivery": 1}'),
            ("cmd:1.2.3", FORM, "command=%2Fask&text=hi"),
        ]


def test_what_is_stored_comes_back_as_it_was_put(inbox):
    # On PostgreSQL the writer sends every value as text to a prepared statement: the time (given here in
    # another zone) and the body's characters must survive that.
    berlin_noon = datetime(2026, 11, 23, 12, 0, 0, 123456, tzinfo=timezone(timedelta(hours=1)))
    body = '{"text": "Grüße, 日本語 & <@U1> \\n ✅"}'
    inbox.put("event:EvText", "application/json", body, berlin_noon)
    inbox.put("event:EvOther", FORM, "a=1", berlin_noon)  # two statements of one row: prepared once
    with inbox.engine.connect() as conn:
        stored = conn.execute(select(inbox_table.c.received_at, inbox_table.c.body).order_by(inbox_table.c.id))
        assert list(stored) == [(berlin_noon, body), (berlin_noon, "a=1")]


def test_a_lost_postgresql_connection_fails_one_put_and_the_next_reconnects(inbox, database_url):
    needs_postgresql(inbox, "SQLite's inbox is a file: no connection to lose")
    inbox.put("event:EvBefore", "application/json", "{}", NOW)
    with inbox.writer.connect() as conn:  # the acks' one pooled connection: no ping at checkout
        writer_pid = conn.exec_driver_sql("SELECT pg_backend_pid()").scalar()
    location = inbox_location(database_url)
    assert location is not None
    admin = psycopg.connect(location.target, autocommit=True)
    try:
        admin.execute("SELECT pg_terminate_backend(%s)", [writer_pid])
    finally:
        admin.close()
    with pytest.raises(OperationalError):  # the HTTP thread hands this request to Bolt at once
        inbox.put("event:EvLost", "application/json", "{}", NOW)
    inbox.put("event:EvAfter", "application/json", "{}", NOW)
    assert keys(take(inbox, 10)) == ["event:EvBefore", "event:EvAfter"]


def test_batches_come_oldest_first_and_leave_the_inbox_once_handled(inbox):
    stored = put_events(inbox, 5)
    with inbox.batch(2) as first:
        assert keys(first) == stored[:2]
        assert inbox.pending() == 5, "still there while being handled"
    assert inbox.pending() == 3
    with inbox.batch(10) as rest:
        assert keys(rest) == stored[2:]
    assert inbox.pending() == 0
    with inbox.batch(10) as nothing:
        assert nothing == []


def test_a_batch_whose_handling_fails_stays_in_the_inbox(inbox):
    stored = put_events(inbox, 3)
    with pytest.raises(RuntimeError, match="Bolt fell over"), inbox.batch(2) as taken:
        assert keys(taken) == stored[:2]
        raise RuntimeError("Bolt fell over")
    assert inbox.pending() == 3
    with inbox.batch(10) as again:
        assert keys(again) == stored
    assert inbox.pending() == 0


def test_concurrent_batches_never_share_a_request(inbox):
    needs_postgresql(inbox, "claims with SKIP LOCKED are PostgreSQL's; SQLite has one worker per store")
    stored = put_events(inbox, 8)
    claiming = threading.Barrier(4, timeout=10)

    def claim(_: int) -> list[str]:
        with inbox.batch(2) as mine:
            # All four hold their claim at once: a worker that waited for another's rows never gets here.
            claiming.wait()
            return keys(mine)

    taken = in_threads(4, claim)
    assert all(len(mine) == 2 for mine in taken), taken
    assert sorted(key for mine in taken for key in mine) == stored, "each request went to exactly one worker"
    assert inbox.pending() == 0


def test_two_workers_on_one_inbox_never_take_the_same_request(inbox, database_url):
    """Two processes' workers, e.g. one finishing its batch after its `serve` was killed and the new `serve`'s:
    PostgreSQL claims rows; SQLite gives the whole inbox to one worker at a time, until it closes it."""
    stored = put_events(inbox, 8)
    workers = [Inbox.for_database(database_url), Inbox.for_database(database_url)]
    assert workers[0] is not None and workers[1] is not None
    try:
        with workers[0].batch(4) as first, workers[1].batch(4) as second:
            assert len(first) == 4
            assert set(keys(first)).isdisjoint(keys(second))
            assert len(second) == (4 if inbox.dialect == "postgresql" else 0)
        taken = keys(first) + keys(second)
        assert take(workers[1], 8) == []  # SQLite: the first still has the turn; PostgreSQL: none left
        workers[0].close()  # its process ends
        while inbox.pending():
            taken += keys(take(workers[1], 4))
        assert sorted(taken) == stored, "each request went to exactly one worker"
    finally:
        for worker in workers:
            worker.close()


# A worker process that takes a batch and is killed while handling it.
CLAIM_AND_HANG = """
import sys, threading
from models.inbox import Inbox
inbox = Inbox.for_database(sys.argv[1])
with inbox.batch(10) as requests:
    print(" ".join(request.request_key for request in requests), flush=True)
    threading.Event().wait()
"""


def test_the_batch_of_a_killed_worker_goes_to_another_worker_at_once(inbox, database_url):
    needs_postgresql(inbox, "SQLite's worker holds the whole inbox, by a file lock its process gives back as it ends")
    stored = put_events(inbox, 3)
    worker = subprocess.Popen(
        [sys.executable, "-c", CLAIM_AND_HANG, database_url], cwd=ROOT, stdout=subprocess.PIPE, text=True
    )
    try:
        assert worker.stdout is not None and worker.stdout.readline().split() == stored
        assert take(inbox, 10) == [], "its batch is its own while it lives"
    finally:
        worker.kill()
        worker.wait(10)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and not (taken := keys(take(inbox, 10))):
        time.sleep(0.05)  # between looks
    assert taken == stored, "free within seconds of its death, not when a lease runs out"
    assert take(inbox, 10) == [] and inbox.pending() == 0, "and handled once"


def test_a_claim_rolled_back_is_not_seen_by_other_workers_meanwhile(inbox):
    needs_postgresql(inbox, "claims with SKIP LOCKED are PostgreSQL's; SQLite has one worker per store")
    stored = put_events(inbox, 3)
    with pytest.raises(RuntimeError, match="worker died"), inbox.batch(2) as claimed:
        assert keys(claimed) == stored[:2]
        [others] = in_threads(1, lambda _: keys(take(inbox, 10)))
        assert others == stored[2:], "the claimed rows are skipped, not waited for"
        raise RuntimeError("worker died")
    with inbox.batch(10) as back:
        assert keys(back) == stored[:2], "the failed claim's rows come back"


# --- acks never wait for a worker, however many HTTP threads ------------------------------------------------

ACK_BUDGET = 1.0  # seconds: far more than an INSERT takes, far less than Slack's 3 s for the whole ack


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not {what} after {timeout}s")
        time.sleep(0.05)


def started(work: Callable[[], Any]) -> threading.Thread:
    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    return thread


def test_a_redelivery_of_a_request_being_handled_is_acked_at_once(inbox):
    needs_postgresql(inbox, "SQLite's batch holds no lock while its requests are handled")
    [key] = put_events(inbox, 1)
    with inbox.batch(10) as claimed:  # a worker is handling the request…
        assert keys(claimed) == [key]
        # … when Slack redelivers it (its first ack was slow): that ack must not wait for the worker's batch.
        redelivery = started(lambda: inbox.put(key, "application/json", "{}", NOW))
        redelivery.join(ACK_BUDGET)
        acked_in_time = not redelivery.is_alive()
    redelivery.join(10)
    assert acked_in_time, f"the redelivery's put waited for the worker's batch (more than {ACK_BUDGET}s)"


def test_a_redelivery_being_stored_holds_up_no_other_ack(inbox):
    needs_postgresql(inbox, "SQLite's batch holds no lock while its requests are handled")
    [key] = put_events(inbox, 1)
    with inbox.batch(10) as claimed:
        assert keys(claimed) == [key]
        redelivery = started(lambda: inbox.put(key, "application/json", "{}", NOW))
        redelivery.join(0.2)  # were it waiting for the worker's claim, it would be by now
        other = started(lambda: inbox.put("event:EvOther", "application/json", "{}", NOW))
        other.join(ACK_BUDGET)
        other_acked_in_time = not other.is_alive()
    redelivery.join(10)
    other.join(10)
    assert other_acked_in_time, f"an unrelated request's put waited for the worker's batch (more than {ACK_BUDGET}s)"


def test_more_http_threads_than_the_pool_holds_never_starve_the_inbox(database_url):
    # As Inbox.for_database builds it, except that the workers' pool gives up after 0.5 s instead of 30 s.
    url = inbox_url(database_url)
    assert url is not None
    inbox = Inbox(create_store_engine(url, pool_timeout=0.5))
    http_threads = 32  # `serve --threads 32`: waitress keeps its threads for the life of the server
    outcomes: list[str | None] = [None] * http_threads
    server_stops = threading.Event()

    def http_thread(number: int) -> None:
        try:
            inbox.put(f"event:Ev{number:04d}", "application/json", "{}", NOW)
            outcomes[number] = "stored"
        except Exception as error:
            outcomes[number] = error.__class__.__name__
        server_stops.wait(30)  # waitress keeps its threads (and anything they hold) for the server's life

    threads = [started(lambda n=n: http_thread(n)) for n in range(http_threads)]
    try:
        wait_until(lambda: None not in outcomes, 10, "acked")
        worker_error = ""
        try:
            with inbox.batch(100) as taken:  # an in-process worker (`serve`, tests)
                worker_took = len(taken)
        except Exception as error:
            worker_took, worker_error = -1, error.__class__.__name__
        assert worker_took == http_threads, f"the worker took {worker_took} of {http_threads}: {worker_error}"
        assert outcomes == ["stored"] * http_threads, f"acks that could not use the inbox: {outcomes}"
    finally:
        server_stops.set()
        for thread in threads:
            thread.join(10)
        inbox.close()
