"""`python app.py serve` as it runs in production: one process (Bolt under waitress, the inbox worker and the
scheduler as threads) against the fake Slack API, on SQLite and PostgreSQL.

What it acknowledges into the inbox is handled by its worker; what it does not queue (help, a badly signed
request, /healthz) comes back with Bolt's answer; /metrics shows every counter, Slack API calls included; HEAD
answers without a body and leaves the connection usable; SIGTERM lets the work started finish and exits 0.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import psycopg
import pytest
from sqlalchemy import select

from bot.clock import Clock
from bot.messages.help import ASK_USAGE, help_message
from bot.playground.emulator.fake_api import BOT_TOKEN, FakeSlackAPI
from bot.playground.emulator.signing import Response, SlackSender, event_envelope
from bot.playground.emulator.workspace import APP_ID, BOT_USER_ID, TEAM_ID
from bot.runtime.http import MAX_BODY
from models.inbox import Inbox, InboxLocation, inbox_location
from models.question import Answer, Question
from models.session import Store
from tests.production_harness import GENERAL
from tests.slack.fixtures import SIGNING_SECRET

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
        # 200 once it has migrated the database.
        eventually(lambda: get(f"{served.url}/healthz")[0] == 200, START_TIMEOUT, f"healthy:\n{log.read_text()}")
        yield served
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def ask(fake: FakeSlackAPI, served: Served, text: str, **signing: Any) -> Response:
    fields = fake.command_fields("U_ASKER", text, GENERAL, channel_name="general")
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
    return str(help_message(ASK_USAGE).as_kwargs()["text"])


def metric(served: Served, name: str, **labels: str) -> float:
    status, _, page = get(f"{served.url}/metrics")
    assert status == 200
    wanted = name + "{" + ",".join(f'{key}="{value}"' for key, value in labels.items()) + "}"
    for line in page.splitlines():
        if line.startswith(wanted + " "):
            return float(line.split()[-1])
    return 0.0


def test_serve_acks_into_the_inbox_and_its_worker_does_the_work(served, fake_slack, database_url):
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
    # The worker's Slack calls are counted in the same process, on the same page.
    assert metric(served, "peerlearn_slack_api_calls_total", method="chat.postMessage", outcome="ok") >= 1.0


def test_what_serve_does_not_queue_is_answered_by_bolt_at_once(served, fake_slack):
    helped = ask(fake_slack, served, "help")
    assert helped.status == 200 and helped.headers.get("Content-Type", "").startswith("application/json")
    assert json.loads(helped.body)["text"] == help_text()

    forged = ask(fake_slack, served, "How do I vacuum a big table? #postgres", signing="forged")
    assert (forged.status, json.loads(forged.body)) == (401, {"error": "invalid request"})
    forged_help = ask(fake_slack, served, "help", signing="forged")
    assert forged_help.status == 401  # nothing but the signature is read before it checks
    # Unauthenticated, a request is not even read to know what it is.
    assert metric(served, "peerlearn_requests_total", kind="other", status="401") == 2.0
    assert metric(served, "peerlearn_requests_total", kind="command", status="401") == 0.0
    assert not fake_slack.calls_to("chat.postMessage")

    status, _, body = get(f"{served.url}/no/such/page")
    assert (status, json.loads(body)) == (404, {"error": "not found"})


def test_a_request_the_inbox_cannot_take_is_handled_by_bolt_at_once(served, fake_slack, database_url):
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
    """Refused by waitress (max_request_body_size) as soon as its Content-Length says so, before the body."""
    parts = urllib.parse.urlsplit(served.url)
    connection = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=10)
    try:
        connection.putrequest("POST", "/slack/events")
        connection.putheader("Content-Length", str(MAX_BODY + 1))
        connection.endheaders()
        assert connection.getresponse().status == 413
    finally:
        connection.close()


def head_then_get(url: str, path: str) -> tuple[tuple[int, bytes], tuple[int, bytes]]:
    """HEAD `path`, then GET /healthz on the same kept-alive connection: (status, body) of each."""
    parts = urllib.parse.urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=10)
    try:
        connection.request("HEAD", path)
        head = connection.getresponse()
        answered = (head.status, head.read())
        connection.request("GET", "/healthz")
        after = connection.getresponse()
        return answered, (after.status, after.read())
    finally:
        connection.close()


@pytest.mark.parametrize("path", ["/slack/events", "/healthz", "/metrics", "/no/such/page"])
def test_head_answers_without_a_body_and_the_next_request_is_served(served, path):
    (status, body), (after_status, after_body) = head_then_get(served.url, path)
    assert status in (200, 401, 404, 405) and body == b""
    assert (after_status, json.loads(after_body)["status"]) == (200, "ok")


def children(pid: int) -> list[int]:
    tasks = Path(f"/proc/{pid}/task")
    found: list[int] = []
    for task in tasks.iterdir():
        found += [int(child) for child in (task / "children").read_text().split()]
    return found


def test_serve_is_one_process(served, fake_slack):
    assert ask(fake_slack, served, "How do I vacuum a big table? #postgres").status == 200
    fake_slack.wait_for("chat.postMessage", timeout=30, channel=GENERAL)
    assert children(served.process.pid) == []


def test_sigterm_lets_a_started_question_be_posted_then_exits_0(served, fake_slack, database_url):
    posting = threading.Event()

    def slow_answer(_call: Any) -> None:  # Slack posted it and is slow to say so: SIGTERM comes meanwhile
        posting.set()
        time.sleep(2)

    fake_slack.after_applying("chat.postMessage", slow_answer)
    asked = ask(fake_slack, served, "Will this survive a deploy? #ops")
    assert (asked.status, asked.body) == (200, "")
    assert posting.wait(30), served.log.read_text()
    served.process.send_signal(signal.SIGTERM)
    assert served.process.wait(30) == 0, served.log.read_text()
    store = Store.from_url(database_url)
    try:
        with store.session() as session:
            [posted] = session.scalars(select(Question.message_ts)).all()
        assert posted is not None, "the listener that was posting finished within the grace and recorded it"
    finally:
        store.dispose()
    assert "Traceback" not in served.log.read_text()


def test_work_handles_what_was_acked_into_the_inbox_and_stops_on_sigterm(fake_slack, database_url, tmp_path):
    """`work`: an inbox worker and the scheduler without HTTP (more hands for the `serve` replicas)."""
    fake_slack.add_user("U_ASKER")
    fake_slack.add_channel(GENERAL, name="general", members=["U_ASKER"])
    fields = fake_slack.command_fields("U_ASKER", "help", GENERAL, channel_name="general")
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLACK_") and k != "DATABASE_URL"}
    env |= {"DATABASE_URL": database_url, "SLACK_BOT_TOKEN": BOT_TOKEN, "SLACK_API_URL": fake_slack.base_url}
    log = tmp_path / "work.log"
    with log.open("wb") as output:
        worker = subprocess.Popen(
            [sys.executable, str(ROOT / "app.py"), "work"], cwd=tmp_path, env=env, stdout=output, stderr=output
        )
    inbox = Inbox.for_database(database_url)
    assert inbox is not None
    try:
        inbox.put(f"cmd:{fields['trigger_id']}", "application/x-www-form-urlencoded", urlencode(fields), Clock().now())
        fake_slack.wait_for("response_url", timeout=START_TIMEOUT)  # the help, through the response_url
        eventually(lambda: inbox.pending() == 0, 30, "handled")
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(30) == 0, log.read_text()
    finally:
        inbox.close()
        if worker.poll() is None:
            worker.kill()
            worker.wait()
