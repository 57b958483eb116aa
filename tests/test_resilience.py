"""When things fail: Slack's errors and rate limits, dropped connections, a refused token, the database
going away (PostgreSQL), and the server killed with SIGKILL while events arrive.
"""

from __future__ import annotations

import logging
import threading
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from slack_sdk.oauth.installation_store import Installation
from sqlalchemy import create_engine, select, text
from sqlalchemy.engine import make_url

from bench.durability import kill_after_acks, measure
from bot.messages.errors import DATABASE_DOWN, explain
from bot.playground.emulator.fake_api import BOT_TOKEN, TEAM_ID
from bot.playground.emulator.world import SlackWorld
from bot.runtime.wiring import build_runtime, serve_in_thread
from models.migrate import upgrade_to_head
from models.question import Answer, Question
from models.session import normalize_url
from models.workspace import Workspace
from tests.production_harness import GENERAL, Replica, populate, running_peerlearn, settings_for
from tests.slack.fixtures import SIGNING_SECRET


@pytest.fixture
def bot(fake_slack, database_url, slack_clock) -> Iterator[Replica]:
    with running_peerlearn(fake_slack, database_url, slack_clock) as replica:
        populate(replica.world)
        yield replica


def status_of(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=10) as reply:
            return reply.status
    except urllib.error.HTTPError as error:
        return error.code


def statuses(calls) -> list[int]:
    return [call.status for call in calls]


# --- Slack API failures ---------------------------------------------------------------------------------


def test_a_rate_limit_waits_for_retry_after_then_posts(bot):
    bot.world.fake.rate_limit("chat.postMessage", retry_after=1)
    posted = bot.world.ask("U_ASKER", "Why is the build slow? #ci", GENERAL, timeout=10)
    assert "Why is the build slow?" in posted.plain
    limited, done = bot.world.fake.calls_to("chat.postMessage")
    assert (limited.status, done.status) == (429, 200)
    assert done.at - limited.at >= 1.0, "slack_sdk slept for Retry-After before trying again"


@pytest.mark.parametrize("status", [500, 503])
def test_a_slack_server_error_is_retried(bot, status):
    bot.world.fake.fail("chat.postMessage", "internal_error", status=status)
    posted = bot.world.ask("U_ASKER", "Who owns the billing service? #billing", GENERAL, timeout=10)
    assert "Who owns the billing service?" in posted.plain
    assert statuses(bot.world.fake.calls_to("chat.postMessage")) == [status, 200]


class DroppingProxy:
    """Between the bot and Slack: drops the first `drops` connections without answering, then forwards."""

    def __init__(self, target: str, drops: int) -> None:
        proxy = self
        self.target, self.drops, self.dropped = target.rstrip("/"), drops, 0

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if proxy.dropped < proxy.drops:
                    proxy.dropped += 1
                    self.close_connection = True  # the connection dies with no response at all
                    return
                headers = {k: v for k, v in self.headers.items() if k.lower() in ("authorization", "content-type")}
                request = urllib.request.Request(proxy.target + self.path, data=body, headers=headers)
                try:
                    with urllib.request.urlopen(request, timeout=10) as reply:
                        status, payload = reply.status, reply.read()
                except urllib.error.HTTPError as error:
                    status, payload = error.code, error.read()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_a_dropped_connection_to_slack_is_retried(fake_slack, database_url, slack_clock):
    proxy = DroppingProxy(fake_slack.url, drops=0)
    try:
        with running_peerlearn(fake_slack, database_url, slack_clock, slack_api_url=proxy.url + "/api/") as bot:
            populate(bot.world)
            proxy.drops = proxy.dropped + 1  # the next connection (conversations.info) is cut
            posted = bot.world.ask("U_ASKER", "Is the VPN down? #it", GENERAL, timeout=10)
            assert "Is the VPN down?" in posted.plain
            assert proxy.dropped == 1
            assert len(fake_slack.calls_to("chat.postMessage")) == 1
    finally:
        proxy.stop()


def ask_and_hear_back(world: SlackWorld, user: str, text: str) -> str:
    """`user` runs `/ask text`; once the bot's work after the ack is done, what it told them through this
    command's response_url. The post and the note come from a lazy listener (a pool thread of lower priority
    than the acks), so the test waits for that task itself (settle) rather than for a call within a guessed
    time: on a loaded machine the note came after the 5 s the test used to allow."""
    response = world.command(user, "/ask", text, GENERAL)
    assert response.status == 200
    world.settle()
    [told] = world.fake.calls_to("response_url", where=lambda call: call.target == response.meta["response_url"])
    return str(told.args["text"])


@pytest.mark.parametrize("code", ["not_in_channel", "channel_not_found", "is_archived", "user_not_found"])
def test_slack_refusals_are_explained_to_the_person(bot, code):
    world = bot.world
    world.fake.fail("chat.postMessage", code)
    told = ask_and_hear_back(world, "U_ASKER", "Where are the design docs? #design")
    [note] = world.ephemerals("U_ASKER")
    assert note["text"] == told and explain(code) in told
    assert "Where are the design docs?" in note["text"], "the person gets their words back"
    with bot.runtime.store.session() as session:
        assert session.get(Workspace, TEAM_ID).active, f"{code} says nothing about the token"


@pytest.mark.parametrize("code", ["invalid_auth", "token_revoked", "account_inactive"])
def test_a_refused_token_disables_the_workspace_and_says_so_in_the_logs(bot, code, caplog):
    world = bot.world
    world.fake.fail("chat.postMessage", code)
    with caplog.at_level(logging.WARNING, logger="peerlearn"):
        told = ask_and_hear_back(world, "U_ASKER", "Does the token still work? #ops")
    with bot.runtime.store.session() as session:
        workspace = session.get(Workspace, TEAM_ID)
        assert (workspace.active, workspace.disabled_reason) == (False, code)
    disabled = [r for r in caplog.records if "disabled" in r.getMessage() and r.levelno == logging.WARNING]
    assert len(disabled) == 1 and TEAM_ID in disabled[0].getMessage() and code in disabled[0].getMessage()
    assert "reinstall" in told and world.ephemerals("U_ASKER")[-1]["text"] == told


def test_a_revoked_token_disables_the_workspace_once(bot, caplog):
    world = bot.world
    question = world.ask("U_ASKER", "Before the revocation? #ops", GENERAL)
    world.fake.revoke_token(BOT_TOKEN)
    with caplog.at_level(logging.WARNING, logger="peerlearn"):
        answer_ts = world.reply("U_EXPERT", question, "An answer stored even though Slack refuses us now")
        world.react("U_ASKER", "white_check_mark", GENERAL, answer_ts)  # the redraw is refused
        world.command("U_FAN", "/ask", "And another? #ops", GENERAL)  # so is the post
        world.settle()
    assert bot.count(Answer) == 1, "what Slack delivered is still stored"
    disabled = [r for r in caplog.records if "disabled" in r.getMessage()]
    assert len(disabled) == 1, "logged when it happens, not on every refused call"
    with bot.runtime.store.session() as session:
        assert session.get(Workspace, TEAM_ID).disabled_reason == "token_revoked"


# --- the database goes away (PostgreSQL) ------------------------------------------------------------------


@dataclass
class OutageControl:
    url: str
    name: str
    admin: object

    def _run(self, *statements: str) -> None:
        with self.admin.connect() as conn:  # type: ignore[attr-defined]
            for statement in statements:
                conn.execute(text(statement))

    def refuse_connections(self) -> None:
        """No new connections, and every open one ended: the database is gone for this app."""
        self._run(
            f'ALTER DATABASE "{self.name}" ALLOW_CONNECTIONS false',
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            f"WHERE datname = '{self.name}' AND pid <> pg_backend_pid()",
        )

    def accept_connections(self) -> None:
        self._run(f'ALTER DATABASE "{self.name}" ALLOW_CONNECTIONS true')


@pytest.fixture
def outage(_postgres) -> Iterator[OutageControl]:
    """A PostgreSQL database of this test's own (never the shared server) whose connections we can cut."""
    if _postgres is None:
        pytest.skip("needs PostgreSQL")
    name = f"peerlearn_outage_{uuid.uuid4().hex[:8]}"
    admin = create_engine(make_url(normalize_url(_postgres.url)), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(_postgres.url).set(database=name).render_as_string(hide_password=False)
    engine = create_engine(normalize_url(url))
    upgrade_to_head(engine)
    engine.dispose()
    control = OutageControl(url, name, admin)
    try:
        yield control
    finally:
        control.accept_connections()
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


OAUTH = {"bot_token": None, "client_id": "1.2", "client_secret": "s"}


@pytest.mark.parametrize("mode", ["single workspace", "Add to Slack"])
def test_while_the_database_is_down_slack_is_told_to_retry_and_people_to_try_again(
    fake_slack, slack_clock, outage, mode
):
    overrides = OAUTH if mode == "Add to Slack" else {}
    with running_peerlearn(fake_slack, outage.url, slack_clock, **overrides) as bot:
        world = bot.world
        populate(world)
        if overrides:
            fake_slack.tokens.add("xoxb-installed")
            bot.runtime.bolt_app.installation_store.save(
                Installation(app_id="A0001", team_id=TEAM_ID, user_id="U_ASKER", bot_token="xoxb-installed")
            )
        question = world.ask("U_ASKER", "How do I fail over? #postgres", GENERAL)
        world.settle()

        outage.refuse_connections()
        answer_ts = world.post("U_EXPERT", GENERAL, "Promote the replica.", thread_ts=question.ts)
        delivery = world.last_response
        assert delivery is not None and delivery.status == 503, "not acked, so Slack redelivers it"
        refused = world.command("U_FAN", "/ask", "Is the database down? #ops", GENERAL)
        assert refused.status == 200
        assert DATABASE_DOWN in (refused.json() or {}).get("text", "") + str(world.ephemerals("U_FAN"))
        assert status_of(bot.url + "/healthz") == 503

        outage.accept_connections()
        event_id = delivery.meta["event_id"]
        retry = world.fake.message(GENERAL, answer_ts)
        event = {k: retry[k] for k in ("type", "user", "text", "ts", "thread_ts")} | {"channel": GENERAL}
        assert world.send_event(event, event_id=event_id, retry_num=1).status == 200
        assert status_of(bot.url + "/healthz") == 200
        world.ask("U_FAN", "Back to normal? #ops", GENERAL)
        world.settle()
        with bot.runtime.store.session() as session:
            assert [a.ts for a in session.scalars(select(Answer))] == [answer_ts]
            assert session.query(Question).count() == 2


def test_a_replica_started_during_an_outage_waits_then_serves(fake_slack, slack_clock, outage):
    outage.refuse_connections()
    runtime = build_runtime(settings_for(fake_slack, outage.url), clock=slack_clock, wait_for_database=True)
    server = serve_in_thread(runtime)
    try:
        world = SlackWorld(fake_slack, server.url, SIGNING_SECRET, slack_clock, runtime=runtime)
        populate(world)
        assert status_of(server.url + "/healthz") == 503
        assert world.command("U_ASKER", "/ask", "Up yet? #ops", GENERAL).status == 503
        assert not runtime.ready.is_set()

        outage.accept_connections()
        assert runtime.ready.wait(timeout=60), "the replica recovers by itself"
        assert status_of(server.url + "/healthz") == 200
        posted = world.ask("U_ASKER", "Up now? #ops", GENERAL)
        assert "Up now?" in posted.plain
    finally:
        server.stop()
        runtime.close()


# --- kill -9 while events arrive ----------------------------------------------------------------------------


def test_no_acknowledged_event_is_lost_when_the_server_is_killed(database_url, no_slack_env):
    """A small bench/durability.py run: SIGKILL right after the 10th and 25th acks, with 3 senders in flight."""
    result = measure(
        database_url,
        40,
        senders=3,
        kill_plan=lambda acked, changed: kill_after_acks([10, 25], acked, changed),
    )
    assert result.kills == 2
    assert (result.events, result.acked, result.stored) == (40, 40, 40)
    assert result.lost == 0 and result.lost_event_ids == []
    assert result.duplicates == 0
