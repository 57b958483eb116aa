"""The inbox (models/inbox.py): events and /ask questions acknowledged before any work, handed to Bolt by a
worker (bot/worker.py) afterwards.

- the store itself: where it lives, one row per request key, batches taken oldest first and removed only
  when handled (on PostgreSQL, claimed with SKIP LOCKED so that two workers never share a request);
- the front (bot/web.py) through the real endpoint: what is queued, what still goes to Bolt at once, badly
  signed requests, an inbox that cannot take a request;
- the worker: an ack with something to say goes through the response_url, a redelivery is handled once;
- the `work` verb started by `serve`'s WorkerProcesses ends by itself when its server is gone.

The last section: an ack never waits for a worker (a redelivery of a request being handled; more HTTP threads
than the workers' connection pool holds).

Tests that stop the worker (`pause`) send requests while no one takes them from the inbox, which is how they
tell a queued request (it waits) from one Bolt handles at once (it is done when the response comes back).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict
from sqlalchemy import func, inspect, select
from sqlalchemy.engine import make_url

from bot import inbox_writer
from bot.front import WORKER_NICENESS
from bot.inbox_writer import InboxLocation, InboxWriter, inbox_location
from bot.messages.help import ASK_USAGE, help_message
from bot.playground.emulator.fake_api import BOT_TOKEN, FakeSlackAPI
from bot.playground.emulator.signing import event_envelope, slash_command_fields
from bot.playground.emulator.workspace import APP_ID, BOT_USER_ID, TEAM_DOMAIN, TEAM_ID
from bot.playground.emulator.world import SlackWorld
from bot.runtime import Runtime
from bot.worker import InboxWorker
from models.inbox import Inbox, InboxRequest, inbox_file, inbox_metadata, inbox_table, inbox_url
from models.question import Answer, Question
from models.session import Store, create_store_engine, normalize_url
from tests.production_harness import GENERAL, populate

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


def pause(runtime: Runtime) -> None:
    """Stop this process's inbox worker: what is queued from now on waits in the inbox."""
    assert runtime.worker is not None
    runtime.worker.stop()
    runtime.worker = None  # the world no longer waits for it after each request


def resume(runtime: Runtime) -> InboxWorker:
    """A fresh worker, once it has handed everything waiting to Bolt."""
    worker = runtime.start_worker()
    assert worker is not None
    worker.wait_idle()
    return worker


def count(runtime: Runtime, model: Any) -> int:
    with runtime.store.session() as session:
        return int(session.scalar(select(func.count()).select_from(model)) or 0)


def question_texts(runtime: Runtime) -> list[str]:
    with runtime.store.session() as session:
        return sorted(session.scalars(select(Question.text)))


def ack_text(response: Any) -> str:
    payload = response.json() or {}
    texts = [payload.get("text", "")]
    texts += [b["text"]["text"] for b in payload.get("blocks", []) if b.get("type") == "section"]
    return "\n".join(texts)


def is_empty_ack(response: Any) -> bool:
    return response.status == 200 and response.body == "" and response.headers.get("Content-Length") == "0"


def spy_on_puts(runtime: Runtime, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The keys of every request the front stores in the inbox from now on (stored as before)."""
    assert runtime.inbox is not None
    stored: list[str] = []
    put = runtime.inbox.put

    def recording_put(request_key: str, *args: Any) -> None:
        stored.append(request_key)
        put(request_key, *args)

    monkeypatch.setattr(runtime.inbox, "put", recording_put)
    return stored


def ask_fields(fake: FakeSlackAPI, user: str, text: str, channel: str = GENERAL) -> dict[str, str]:
    """A /ask as Slack sends it, with a response_url and a trigger_id of the emulator."""
    return slash_command_fields(
        team_id=TEAM_ID,
        team_domain=TEAM_DOMAIN,
        api_app_id=APP_ID,
        channel_id=channel,
        channel_name="general",
        user_id=user,
        user_name=fake.users[user].name,
        command="/ask",
        text=text,
        response_url=fake.new_response_url(user, channel),
        trigger_id=fake.new_trigger_id(user),
    )


def without_block_ids(blocks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{key: value for key, value in block.items() if key != "block_id"} for block in blocks]


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


@pytest.fixture
def world(slack: SlackWorld) -> SlackWorld:
    populate(slack)
    return slack


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
    # The front's writer connects with psycopg alone, to the same place.
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


def test_the_sqlite_inbox_file_has_the_table_models_describe(tmp_path):
    # bot/inbox_writer.py creates the file's table without SQLAlchemy; the workers query it through
    # models/inbox.py's inbox_table: the two must not drift apart.
    written = tmp_path / "written.db"
    InboxWriter(InboxLocation("sqlite", str(written))).put("event:Ev1", "application/json", "{}", NOW)
    described = create_store_engine(f"sqlite:///{tmp_path / 'described.db'}")
    inbox_metadata.create_all(described)
    by_writer = create_store_engine(f"sqlite:///{written}")
    try:
        shapes = []
        for engine in (by_writer, described):
            inspector = inspect(engine)
            columns = [(c["name"], str(c["type"]), c["nullable"]) for c in inspector.get_columns("inbox")]
            shapes.append((columns, inspector.get_pk_constraint("inbox"), inspector.get_unique_constraints("inbox")))
        assert shapes[0] == shapes[1]
    finally:
        by_writer.dispose()
        described.dispose()


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


def test_a_lost_postgresql_connection_fails_one_write_and_the_next_reconnects(inbox, database_url):
    needs_postgresql(inbox, "SQLite's inbox is a file: no connection to lose")
    inbox.put("event:EvBefore", "application/json", "{}", NOW)
    writer_pid = inbox.writer._appender._connection.connection.info.backend_pid
    location = inbox_location(database_url)
    assert location is not None
    admin = psycopg.connect(location.target, autocommit=True)
    try:
        admin.execute("SELECT pg_terminate_backend(%s)", [writer_pid])
    finally:
        admin.close()
    with pytest.raises(psycopg.OperationalError):  # the HTTP thread hands this request to Bolt at once
        inbox.put("event:EvLost", "application/json", "{}", NOW)
    inbox.put("event:EvAfter", "application/json", "{}", NOW)
    assert keys(take(inbox, 10)) == ["event:EvBefore", "event:EvAfter"]


def test_concurrent_puts_are_stored_together_and_a_failed_write_is_reported_to_each_of_its_requests(inbox):
    appender = inbox.writer._appender
    store, writes = appender._store, []
    first_write_started, release = threading.Event(), threading.Event()

    def slow_then_failing_store(rows):  # the first write waits, so that the others queue behind it
        writes.append(len(rows))
        if len(writes) == 1:
            first_write_started.set()
            release.wait(10)
            return store(rows)
        raise sqlite3.OperationalError("disk I/O error")

    appender._store = slow_then_failing_store
    outcomes: dict[str, str] = {}

    def put(key: str) -> None:
        try:
            inbox.put(key, "application/json", "{}", NOW)
            outcomes[key] = "stored"
        except sqlite3.OperationalError:
            outcomes[key] = "refused"

    first = started(lambda: put("event:EvFirst"))
    assert first_write_started.wait(10)
    queued = [started(lambda n=n: put(f"event:EvQueued{n}")) for n in range(5)]
    wait_until(lambda: len(appender._queue) == 5, 10, "queued behind the first write")
    release.set()
    for thread in [first, *queued]:
        thread.join(10)
    assert writes == [1, 5]  # the five that queued meanwhile were written together, in one transaction
    assert outcomes == {"event:EvFirst": "stored"} | {f"event:EvQueued{n}": "refused" for n in range(5)}
    appender._store = store
    inbox.put("event:EvAfter", "application/json", "{}", NOW)  # the next write starts afresh
    with inbox.batch(10) as taken:
        assert keys(taken) == ["event:EvFirst", "event:EvAfter"]


def test_a_put_that_gives_up_waiting_leaves_the_inbox_working(inbox, monkeypatch):
    monkeypatch.setattr(inbox_writer, "APPEND_WAIT", 0.2)
    appender = inbox.writer._appender
    store = appender._store
    writing, release = threading.Event(), threading.Event()

    def slow_store(rows):
        writing.set()
        release.wait(10)
        return store(rows)

    appender._store = slow_store
    first = started(lambda: inbox.put("event:EvSlow", "application/json", "{}", NOW))
    assert writing.wait(10)
    with pytest.raises(TimeoutError):
        inbox.put("event:EvGaveUp", "application/json", "{}", NOW)  # the HTTP thread lets Bolt handle it
    release.set()
    first.join(10)
    appender._store = store
    inbox.put("event:EvNext", "application/json", "{}", NOW)  # the next one is stored: nobody is stuck
    with inbox.batch(10) as taken:
        assert keys(taken) == ["event:EvSlow", "event:EvNext"]  # the one that gave up was never written


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


# --- the front: what is queued and what is not ------------------------------------------------------------


def test_an_event_and_a_question_are_acked_empty_and_handled_from_the_inbox(world, monkeypatch):
    runtime = world.runtime
    stored = spy_on_puts(runtime, monkeypatch)

    asked = world.command("U_ASKER", "/ask", "How do I vacuum a big table? #postgres", GENERAL)
    assert is_empty_ack(asked), (asked.status, asked.headers, asked.body)
    posted = world.wait_post(GENERAL)
    assert "How do I vacuum a big table?" in posted.plain
    world.settle()

    world.reply("U_EXPERT", posted, "VACUUM (VERBOSE) big_table;")
    delivery = world.last_response
    assert delivery is not None and is_empty_ack(delivery)
    assert stored == [f"cmd:{asked.meta['trigger_id']}", f"event:{delivery.meta['event_id']}"]
    assert count(runtime, Answer) == 1
    assert runtime.inbox.pending() == 0


def test_queued_requests_wait_for_a_worker(world):
    runtime = world.runtime
    question = world.ask("U_ASKER", "Who rotates the TLS certificates? #security", GENERAL)
    pause(runtime)

    asked = world.command("U_FAN", "/ask", "Where do the runbooks live? #ops", GENERAL)
    answered = world.reply("U_EXPERT", question, "The platform team, every quarter.")
    delivery = world.last_response
    assert is_empty_ack(asked) and delivery is not None and is_empty_ack(delivery)
    world.settle()
    assert runtime.inbox.pending() == 2
    assert question_texts(runtime) == ["Who rotates the TLS certificates?"]
    assert count(runtime, Answer) == 0

    since = world.fake.mark()
    resume(runtime)
    posted = world.wait_post(GENERAL, since=since)
    assert "Where do the runbooks live?" in posted.plain
    world.settle()
    assert runtime.inbox.pending() == 0
    assert question_texts(runtime) == ["Where do the runbooks live?", "Who rotates the TLS certificates?"]
    with runtime.store.session() as session:
        assert session.scalars(select(Answer.ts)).all() == [answered]


def test_acks_with_something_to_say_and_interactivity_are_not_queued(world):
    runtime = world.runtime
    pause(runtime)
    queued = world.command("U_ASKER", "/ask", "Who owns the CI runners? #ci", GENERAL)
    assert is_empty_ack(queued)
    assert runtime.inbox.pending() == 1

    helped = world.command("U_ASKER", "/ask", "help", GENERAL)
    assert helped.status == 200 and "/ask" in ack_text(helped)
    refused = world.command("U_ASKER", "/ask", "#postgres #ops", GENERAL)
    assert refused.status == 200 and "only found tags" in ack_text(refused)
    taught = world.command("U_ASKER", "/teach", "help", GENERAL)
    assert taught.status == 200 and "/teach" in ack_text(taught)

    since = world.fake.mark()
    form = world.command("U_ASKER", "/ask", "", GENERAL)
    assert form.status == 200
    world.fake.wait_for("views.open", since=since)
    submitted = world.submit_view(
        "U_ASKER", "ask_modal", {"question": "What's our on-call rotation?", "tags": "#oncall"}
    )
    assert submitted.status == 200 and not submitted.body.strip()
    assert "What's our on-call rotation?" in world.wait_post(GENERAL, since=since).plain
    world.settle()
    assert runtime.inbox.pending() == 1, "only the question waits for a worker"
    assert question_texts(runtime) == ["What's our on-call rotation?"]

    since = world.fake.mark()
    resume(runtime)
    assert "Who owns the CI runners?" in world.wait_post(GENERAL, since=since).plain
    world.settle()
    assert runtime.inbox.pending() == 0
    assert question_texts(runtime) == ["What's our on-call rotation?", "Who owns the CI runners?"]


def test_badly_signed_requests_are_refused_and_never_stored(world):
    runtime = world.runtime
    question = world.ask("U_ASKER", "How do I read a flame graph? #perf", GENERAL)
    pause(runtime)
    event = {"type": "message", "user": "U_EXPERT", "text": "Widest frames first.", "channel": GENERAL}
    event |= {"ts": world.fake.new_ts(), "thread_ts": question.ts, "channel_type": "channel"}
    for number, signing in enumerate(("forged", "missing", "stale"), start=1):
        envelope = event_envelope(
            event,
            team_id=TEAM_ID,
            api_app_id=APP_ID,
            event_id=f"EvForged{number}",
            event_time=int(world.clock.now().timestamp()),
            bot_user_id=BOT_USER_ID,
        )
        delivery = world.sender.event(envelope, signing=signing)
        asked = world.sender.slash_command(ask_fields(world.fake, "U_FAN", "Sneaky question? #x"), signing=signing)
        assert (delivery.status, asked.status) == (401, 401), signing
        assert delivery.json() == asked.json() == {"error": "invalid request"}
        assert runtime.inbox.pending() == 0, signing

    resume(runtime)
    world.settle()
    assert count(runtime, Answer) == 0
    assert question_texts(runtime) == ["How do I read a flame graph?"]


def test_a_request_the_inbox_cannot_take_is_handled_at_once(world, monkeypatch):
    runtime = world.runtime
    question = world.ask("U_ASKER", "Why is the runner queue long? #ci", GENERAL)
    pause(runtime)  # whatever is done below is done by Bolt in the request, not by a worker
    outage: Exception
    if runtime.inbox.dialect == "postgresql":
        outage = psycopg.OperationalError("server closed the connection unexpectedly")
    else:
        outage = sqlite3.OperationalError("disk I/O error")
    refused: list[str] = []

    def failing_put(request_key: str, *_: Any) -> None:
        refused.append(request_key)
        raise outage

    monkeypatch.setattr(runtime.inbox, "put", failing_put)

    answer_ts = world.reply("U_EXPERT", question, "Two runners are offline.")
    delivery = world.last_response
    assert delivery is not None and delivery.status == 200
    assert count(runtime, Answer) == 1, "stored before the ack, as without an inbox"

    since = world.fake.mark()
    asked = world.command("U_FAN", "/ask", "Are the runners back? #ci", GENERAL)
    assert asked.status == 200 and ack_text(asked) == ""
    assert question_texts(runtime) == ["Are the runners back?", "Why is the runner queue long?"]
    assert "Are the runners back?" in world.wait_post(GENERAL, since=since).plain
    world.settle()

    assert refused == [f"event:{delivery.meta['event_id']}", f"cmd:{asked.meta['trigger_id']}"]
    assert runtime.inbox.pending() == 0
    with runtime.store.session() as session:
        assert session.scalars(select(Answer.ts)).all() == [answer_ts]


# --- the worker -------------------------------------------------------------------------------------------


def test_a_queued_command_whose_ack_speaks_is_answered_through_its_response_url(world):
    runtime = world.runtime
    through_http = world.command("U_ASKER", "/ask", "help", GENERAL).json()
    assert world.ephemerals("U_ASKER") == []

    fields = ask_fields(world.fake, "U_ASKER", "help")
    runtime.inbox.put(f"cmd:{fields['trigger_id']}", FORM, urlencode(fields), world.clock.now())
    runtime.worker.wait_idle()
    call = world.fake.wait_for("response_url")
    assert call.target == fields["response_url"]
    [shown] = world.ephemerals("U_ASKER")
    assert shown["channel"] == GENERAL
    assert shown["text"] == through_http["text"]
    assert without_block_ids(shown["blocks"]) == through_http["blocks"], "what the ack would have shown"
    world.settle()
    assert world.fake.calls_to("chat.postMessage") == []
    assert count(runtime, Question) == 0


def test_a_redelivered_event_is_stored_once_and_handled_once(world, monkeypatch):
    runtime = world.runtime
    question = world.ask("U_ASKER", "How do I bisect a flaky test? #ci", GENERAL)
    handled: list[str] = []
    handle = InboxWorker.handle

    def recording_handle(worker: InboxWorker, request: InboxRequest) -> None:
        handled.append(request.request_key)
        handle(worker, request)

    monkeypatch.setattr(InboxWorker, "handle", recording_handle)
    pause(runtime)

    answer_ts = world.reply("U_EXPERT", question, "git bisect run with a loop around the test.")
    first = world.last_response
    assert first is not None
    message = world.fake.message(GENERAL, answer_ts)
    event = {k: message[k] for k in ("type", "user", "text", "ts", "thread_ts")} | {"channel": GENERAL}
    for retry_num in (1, 2):
        again = world.send_event(event, event_id=first.meta["event_id"], retry_num=retry_num)
        assert is_empty_ack(again)
    assert runtime.inbox.pending() == 1
    assert count(runtime, Answer) == 0

    resume(runtime)
    world.settle()
    assert handled == [f"event:{first.meta['event_id']}"]
    with runtime.store.session() as session:
        assert session.scalars(select(Answer.ts)).all() == [answer_ts]


# --- worker processes -------------------------------------------------------------------------------------

# A stand-in for `serve`: starts its inbox worker process as serve does, then waits to be killed.
SERVER = """
import sys
from bot.front import WorkerProcesses
workers = WorkerProcesses(1).start()
print(workers.pids[0], flush=True)
sys.stdin.readline()
"""


def app_env(database_url: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLACK_") and k != "DATABASE_URL"}
    return env | {"DATABASE_URL": database_url, "PYTHONPATH": str(ROOT)} | extra


def process_state(pid: int) -> str | None:
    """The process's state letter (Z: ended, waiting to be reaped), None once it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return stat.rsplit(")", 1)[1].split()[0]


def alive(pid: int) -> bool:
    return process_state(pid) not in (None, "Z")


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not {what} after {timeout}s")
        time.sleep(0.05)


def test_a_worker_process_stops_by_itself_when_its_server_is_gone(fake_slack, tmp_path):
    url = f"sqlite:///{tmp_path / 'peerlearn.db'}"
    fake_slack.add_user("U_ASKER")
    fake_slack.add_channel(GENERAL, name="general", members=["U_ASKER"])
    inbox = Inbox.for_database(url)
    assert inbox is not None
    fields = ask_fields(fake_slack, "U_ASKER", "help")
    inbox.put(f"cmd:{fields['trigger_id']}", FORM, urlencode(fields), NOW)

    log = tmp_path / "server.log"
    env = app_env(url, SLACK_BOT_TOKEN=BOT_TOKEN, SLACK_API_URL=fake_slack.base_url)
    with log.open("wb") as stderr:
        server = subprocess.Popen(
            [sys.executable, "-c", SERVER],
            cwd=tmp_path,  # no developer's .env
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=stderr,
        )
    worker = 0
    try:
        assert server.stdout is not None
        worker = int(server.stdout.readline() or 0)
        assert worker, log.read_text()
        # The worker process takes what the server acknowledged into the SQLite inbox file.
        fake_slack.wait_for("response_url", timeout=30)
        wait_until(lambda: inbox.pending() == 0, 10, "drained")
        help_text = help_message(ASK_USAGE).as_kwargs()["text"]
        assert [e["text"] for e in fake_slack.ephemerals if e["user"] == "U_ASKER"] == [help_text]
        assert os.getpriority(os.PRIO_PROCESS, worker) == min(19, os.getpriority(os.PRIO_PROCESS, 0) + WORKER_NICENESS)
        assert alive(worker)

        server.kill()  # SIGKILL: the server has no chance to stop its workers
        server.wait(10)
        wait_until(lambda: not alive(worker), 30, "ended")
        assert "the server that started this worker is gone" in log.read_text()
    finally:
        if worker and alive(worker):
            os.kill(worker, signal.SIGKILL)
        if server.poll() is None:
            server.kill()
            server.wait()
        for pipe in (server.stdin, server.stdout):
            if pipe is not None:
                pipe.close()
        inbox.close()


def test_serve_refuses_several_worker_processes_on_sqlite(tmp_path):
    env = app_env(f"sqlite:///{tmp_path / 'peerlearn.db'}", SLACK_BOT_TOKEN="xoxb-1", SLACK_SIGNING_SECRET="s")
    result = subprocess.run(
        [sys.executable, str(ROOT / "app.py"), "serve", "--workers", "2"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2, result.stderr
    assert "--workers 1" in result.stderr and "Traceback" not in result.stderr


# --- acks never wait for a worker, however many HTTP threads ------------------------------------------------

ACK_BUDGET = 1.0  # seconds: far more than an INSERT takes, far less than Slack's 3 s for the whole ack


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
    location = inbox_location(database_url)
    assert location is not None
    inbox = Inbox(create_store_engine(url, pool_timeout=0.5), InboxWriter(location))
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
            with inbox.batch(100) as taken:  # an in-process worker (`serve --workers 0`, tests)
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
