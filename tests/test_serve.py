"""`serve`'s front (bot/front.py) and the worker processes behind it, as `python app.py serve` runs them.

A real `serve` (front and one worker process) against the fake Slack API, on SQLite and PostgreSQL: what the
front acknowledges into the inbox is handled by the worker; what it forwards (help, a badly signed request,
/healthz) comes back with Bolt's answer; a worker killed with SIGKILL is replaced and answers again. And the
front stays light: importing it loads no Bolt, SQLAlchemy or models.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import psycopg
import pytest
from sqlalchemy import select

from bot import acks, blocks, front
from bot.acks import Queueing
from bot.cli import WORKER_GRACE
from bot.clock import Clock
from bot.front import MAX_BODY, Upstream, create_front_app
from bot.inbox_writer import InboxLocation, inbox_location
from bot.runtime import HttpServer
from models.question import Answer
from models.session import Store
from tests.production_harness import GENERAL
from tests.slack.fake_api import BOT_TOKEN, FakeSlackAPI
from tests.slack.fixtures import SIGNING_SECRET
from tests.slack.signing import Response, SlackSender, event_envelope, signature_headers, slash_command_fields
from tests.slack.workspace import APP_ID, BOT_USER_ID, TEAM_DOMAIN, TEAM_ID

ROOT = Path(__file__).resolve().parent.parent
START_TIMEOUT = 60.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def get(url: str) -> tuple[int, dict[str, str], str]:
    try:
        with urllib.request.urlopen(url, timeout=15) as reply:
            return reply.status, dict(reply.headers.items()), reply.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers.items()), error.read().decode()
    except OSError:
        return 0, {}, ""


def eventually(check: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"not {what} after {timeout}s")
        time.sleep(0.1)


def worker_pids(server: subprocess.Popen[bytes]) -> list[int]:
    """The server's live child processes (whichever of its threads started them)."""
    pids = []
    for children in Path(f"/proc/{server.pid}/task").glob("*/children"):
        try:
            pids += [int(pid) for pid in children.read_text().split()]
        except FileNotFoundError:  # a thread that just ended
            continue
    return sorted(pid for pid in pids if Path(f"/proc/{pid}/stat").exists() and not is_zombie(pid))


def is_zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


class Served:
    def __init__(self, process: subprocess.Popen[bytes], url: str, log: Path) -> None:
        self.process, self.url, self.log = process, url, log
        self.sender = SlackSender(f"{url}/slack/events", SIGNING_SECRET)


@pytest.fixture
def served(fake_slack: FakeSlackAPI, database_url: str, tmp_path: Path) -> Iterator[Served]:
    fake_slack.add_user("U_ASKER")
    fake_slack.add_user("U_EXPERT")
    fake_slack.add_channel(GENERAL, name="general", members=["U_ASKER", "U_EXPERT"])
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLACK_") and k != "DATABASE_URL"}
    env |= {
        "DATABASE_URL": database_url,
        "SLACK_BOT_TOKEN": BOT_TOKEN,
        "SLACK_SIGNING_SECRET": SIGNING_SECRET,
        "SLACK_API_URL": fake_slack.base_url,
        "PYTHONPATH": str(ROOT),
    }
    log = tmp_path / "serve.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [sys.executable, str(ROOT / "app.py"), "serve", "--host", "127.0.0.1", "--port", str(port)],
            cwd=tmp_path,  # no developer's .env
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    served = Served(process, f"http://127.0.0.1:{port}", log)
    try:
        # /healthz is the worker's (forwarded): 200 once it has migrated the database.
        eventually(lambda: get(f"{served.url}/healthz")[0] == 200, START_TIMEOUT, f"healthy:\n{log.read_text()}")
        yield served
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        eventually(lambda: not any(Path(f"/proc/{pid}").exists() for pid in worker_pids(process)), 30, "stopped")


def ask(fake: FakeSlackAPI, served: Served, text: str, **signing: Any) -> Response:
    fields = slash_command_fields(
        team_id=TEAM_ID,
        team_domain=TEAM_DOMAIN,
        api_app_id=APP_ID,
        channel_id=GENERAL,
        channel_name="general",
        user_id="U_ASKER",
        user_name=fake.users["U_ASKER"].name,
        command="/ask",
        text=text,
        response_url=fake.new_response_url("U_ASKER", GENERAL),
        trigger_id=fake.new_trigger_id("U_ASKER"),
    )
    return served.sender.slash_command(fields, **signing)


@contextlib.contextmanager
def inbox_refusing(location: InboxLocation) -> Iterator[None]:
    """While the block runs, the inbox takes nothing: on SQLite another connection keeps writing the file
    (longer than an ack waits for it), on PostgreSQL the table is gone."""
    if location.dialect == "sqlite":
        with contextlib.closing(sqlite3.connect(location.target, isolation_level=None)) as holder:
            holder.execute("BEGIN IMMEDIATE")
            yield
            holder.execute("ROLLBACK")
        return
    with psycopg.connect(location.target, autocommit=True) as admin:
        admin.execute("ALTER TABLE inbox RENAME TO inbox_away")
        try:
            yield
        finally:
            admin.execute("ALTER TABLE inbox_away RENAME TO inbox")


def help_text() -> str:
    return str(blocks.help_message(blocks.ASK_USAGE).as_kwargs()["text"])


def metric(served: Served, name: str, **labels: str) -> float:
    status, _, page = get(f"{served.url}/metrics")
    assert status == 200
    wanted = name + "{" + ",".join(f'{key}="{value}"' for key, value in labels.items()) + "}"
    for line in page.splitlines():
        if line.startswith(wanted + " "):
            return float(line.split()[-1])
    return 0.0


def test_the_front_acks_into_the_inbox_and_its_worker_does_the_work(served, fake_slack, database_url):
    asked = ask(fake_slack, served, "How do I vacuum a big table? #postgres")
    assert (asked.status, asked.body, asked.headers.get("Content-Length")) == (200, "", "0")
    posted = fake_slack.wait_for(
        "chat.postMessage", timeout=30, channel=GENERAL, where=lambda call: "vacuum a big table" in str(call.args)
    )
    # An answer in its thread, as an Events API delivery: acked empty too, stored by the worker.
    question_ts = posted.response["ts"]
    reply = fake_slack.add_message(GENERAL, "U_EXPERT", "VACUUM (VERBOSE) big_table;", thread_ts=question_ts)
    event = {
        "type": "message",
        "text": reply["text"],
        "user": "U_EXPERT",
        "ts": reply["ts"],
        "thread_ts": question_ts,
        "parent_user_id": BOT_USER_ID,
        "team": TEAM_ID,
        "channel": GENERAL,
        "event_ts": reply["ts"],
        "channel_type": "channel",
    }
    envelope = event_envelope(
        event,
        team_id=TEAM_ID,
        api_app_id=APP_ID,
        event_id="Ev0FRONT1",
        event_time=int(time.time()),
        bot_user_id=BOT_USER_ID,
    )
    delivered = served.sender.event(envelope)
    assert (delivered.status, delivered.body) == (200, "")
    store = Store.from_url(database_url)
    try:

        def answers() -> list[str]:
            with store.session() as session:
                return list(session.scalars(select(Answer.ts)))

        assert eventually(answers, 30, "answered") == [reply["ts"]]
    finally:
        store.dispose()
    assert metric(served, "peerlearn_acks_total", kind="command") == 1.0
    assert metric(served, "peerlearn_acks_total", kind="event") == 1.0


def test_what_the_front_does_not_queue_is_answered_by_bolt_in_the_worker(served, fake_slack):
    helped = ask(fake_slack, served, "help")
    assert helped.status == 200 and helped.headers.get("Content-Type", "").startswith("application/json")
    assert json.loads(helped.body)["text"] == help_text()

    forged = ask(fake_slack, served, "How do I vacuum a big table? #postgres", signing="forged")
    assert (forged.status, json.loads(forged.body)) == (401, {"error": "invalid request"})  # refused by the front
    forged_help = ask(fake_slack, served, "help", signing="forged")
    assert forged_help.status == 401  # by the front too: nothing but the signature is read before it checks
    # Unauthenticated, a request is not even read to know what it is.
    assert metric(served, "peerlearn_requests_total", kind="other", status="401") == 2.0
    assert metric(served, "peerlearn_requests_total", kind="command", status="401") == 0.0
    assert not fake_slack.calls_to("chat.postMessage")

    status, _, body = get(f"{served.url}/no/such/page")
    assert (status, json.loads(body)) == (404, {"error": "not found"})


def test_a_request_the_inbox_cannot_take_is_handled_by_bolt_in_the_worker_at_once(served, fake_slack, database_url):
    location = inbox_location(database_url)
    assert location is not None
    with inbox_refusing(location):
        asked = ask(fake_slack, served, "How do I vacuum a big table? #postgres")
        assert (asked.status, asked.body) == (200, "")  # Bolt's own ack of a question: empty too
        posted = fake_slack.wait_for("chat.postMessage", timeout=30, channel=GENERAL)
        assert "vacuum a big table" in str(posted.args)
    assert metric(served, "peerlearn_acks_total", kind="command") == 1.0
    assert "the inbox could not take a request" in served.log.read_text()


def test_a_request_too_large_for_slack_is_refused(served):
    request = urllib.request.Request(f"{served.url}/slack/events", data=b"x" * (MAX_BODY + 1), method="POST")
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=10)
    assert (refused.value.code, json.loads(refused.value.read())) == (413, {"error": "request too large"})


def test_a_killed_worker_is_replaced_and_answers_again(served, fake_slack):
    [worker] = eventually(lambda: worker_pids(served.process), 10, "started a worker")
    assert ask(fake_slack, served, "help").status == 200  # a kept-alive connection to this worker now
    os.kill(worker, signal.SIGKILL)
    [replacement] = eventually(
        lambda: [pid for pid in worker_pids(served.process) if pid != worker], 30, "replaced the worker"
    )

    def helped() -> bool:
        response = ask(fake_slack, served, "help")
        return response.status == 200 and json.loads(response.body)["text"] == help_text()

    eventually(helped, START_TIMEOUT, f"answered by the new worker:\n{served.log.read_text()}")
    assert worker_pids(served.process) == [replacement]


def test_the_front_loads_no_bolt_sqlalchemy_or_models():
    code = (
        "import sys, bot.cli, bot.front; "
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'slack_bolt', 'sqlalchemy', 'alembic', 'models'}))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True, timeout=60
    ).stdout
    assert loaded.strip() == "[]"


def test_sigterm_stops_the_workers_then_the_front(served):
    workers = eventually(lambda: worker_pids(served.process), 10, "started a worker")
    served.process.send_signal(signal.SIGTERM)
    assert served.process.wait(30) == 0
    assert not [pid for pid in workers if Path(f"/proc/{pid}").exists() and not is_zombie(pid)]
    # The front stopped them itself (they did not have to notice that it was gone).
    assert "the server that started this worker is gone" not in served.log.read_text()


def test_a_stopping_worker_may_use_its_whole_grace_before_the_front_kills_it(monkeypatch, tmp_path):
    # A worker that SIGTERM finds busy: it finishes its lazy listeners (posting questions to a slow Slack) within
    # its grace, then ends by itself. The front must not kill it first.
    ready = tmp_path / "ready"
    worker = tmp_path / "busy_worker.py"
    worker.write_text(
        "import signal, sys, threading\n"
        "stopping = threading.Event()\n"
        "signal.signal(signal.SIGTERM, lambda *_: stopping.set())\n"
        f"open({str(ready)!r}, 'w').close()\n"
        "stopping.wait()\n"
        f"threading.Event().wait({WORKER_GRACE - 1})  # its listeners finishing\n"
        "sys.exit(0)\n"
    )
    monkeypatch.setattr(front, "APP", worker)
    processes = front.WorkerProcesses(1).start()
    [process] = processes._processes
    eventually(ready.exists, 30, "the worker ready")
    started = time.monotonic()
    processes.stop()
    assert process.returncode == 0, "it ended by itself, not killed"
    assert time.monotonic() - started >= WORKER_GRACE - 1


def test_a_forwarded_request_survives_a_worker_that_closed_its_kept_alive_connection():
    # The front keeps a connection per forwarding thread to the workers' socket; a worker that restarts closes
    # it. The next request on that thread must reach the new worker, once (a retry only when nothing was
    # answered).
    seen: list[str] = []

    def worker_app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
        seen.append(body.decode())
        start_response("200 OK", [("Content-Type", "text/plain"), ("X-Worker", "yes")])
        return [b"handled " + body]

    listener = socket.create_server(("127.0.0.1", 0))
    upstream = Upstream(*listener.getsockname()[:2])
    answers = []
    try:
        for number in (1, 2):
            worker = HttpServer(worker_app, threads=1, sockets=[listener.dup()]).start()
            headers = [("content-type", "text/plain"), ("x-slack-signature", "v0=abc"), ("connection", "keep-alive")]
            answers.append(upstream.exchange("POST", "/slack/events", headers, str(number).encode(), "127.0.0.1"))
            worker.stop()  # closes the connection the front keeps
    finally:
        listener.close()
    assert seen == ["1", "2"]
    assert [(status, body) for status, _, body in answers] == [(200, b"handled 1"), (200, b"handled 2")]
    for _, headers, _ in answers:
        named = {name.lower(): value for name, value in headers}
        assert named["x-worker"] == "yes" and "content-length" not in named  # the front sets its own length


def test_a_forwarded_request_with_no_worker_listening_is_a_503():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    status, headers, body = Upstream("127.0.0.1", port, timeout=2).exchange("GET", "/healthz", [], b"")
    assert (status, json.loads(body)) == (503, {"error": "busy, try again shortly"})
    assert ("Content-Type", "application/json") in headers


def test_a_request_whose_client_left_before_its_body_arrived_is_neither_stored_nor_answered():
    stored: list[str] = []

    class RecordingInbox:
        async def put(self, request_key: str, *_: Any) -> None:
            stored.append(request_key)

    queueing = Queueing(RecordingInbox(), lambda body: "event:Ev1", None, Clock())
    app = create_front_app(queueing, Upstream("127.0.0.1", free_port()), ThreadPoolExecutor(1))  # type: ignore[arg-type]
    body = json.dumps({"type": "event_callback", "event_id": "Ev1"}).encode()
    sent: list[dict[str, Any]] = []

    async def call(messages: list[dict[str, Any]]) -> None:
        arriving = iter(messages)

        async def receive() -> dict[str, Any]:
            return next(arriving)

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        scope = {"type": "http", "method": "POST", "path": "/slack/events", "headers": [], "query_string": b""}
        await app(scope, receive, send)

    half = {"type": "http.request", "body": body[:10], "more_body": True}
    asyncio.run(call([half, {"type": "http.disconnect"}]))
    assert (stored, sent) == ([], [])
    asyncio.run(call([half, {"type": "http.request", "body": body[10:], "more_body": False}]))  # the whole of it
    assert stored == ["event:Ev1"] and sent[0]["status"] == 200


def test_the_front_reads_nothing_of_an_unsigned_request_but_its_size(monkeypatch):
    """An unsigned megabyte of tags once held the front's event loop (every ack, /healthz) for 32 s."""
    read: list[int] = []
    peek = acks.peek
    monkeypatch.setattr(acks, "peek", lambda raw, content_type: read.append(len(raw)) or peek(raw, content_type))
    stored: list[str] = []

    class RecordingInbox:
        async def put(self, request_key: str, *_: Any) -> None:
            stored.append(request_key)

    queueing = Queueing(RecordingInbox(), lambda body: "cmd:1", SIGNING_SECRET, Clock())
    app = create_front_app(queueing, Upstream("127.0.0.1", free_port()), ThreadPoolExecutor(1))  # type: ignore[arg-type]
    text = "Why? " + " ".join(f"#tag{i:06d}" for i in range(60_000))
    body = urllib.parse.urlencode({"command": "/ask", "text": text, "trigger_id": "1.2"}).encode()

    def call(headers: dict[str, str]) -> int:
        sent: list[dict[str, Any]] = []

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": body, "more_body": False}

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        named = [(name.lower().encode(), value.encode()) for name, value in headers.items()]
        scope = {"type": "http", "method": "POST", "path": "/slack/events", "headers": named, "query_string": b""}
        asyncio.run(app(scope, receive, send))
        return int(sent[0]["status"])

    for signing in ("missing", "forged", "stale"):
        assert call(signature_headers(SIGNING_SECRET, body, signing)) == 401  # type: ignore[arg-type]
    assert (read, stored) == ([], [])
    assert call(signature_headers(SIGNING_SECRET, body)) == 200
    assert read == [len(body)] and stored == ["cmd:1"]
