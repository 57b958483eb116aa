"""Bad, hostile and malformed requests through the real HTTP endpoint (SQLite and PostgreSQL).

Unauthenticated requests are refused before anything but their size and signature is looked at; a signed
request that is not something Slack sends gets a 400; a signed payload with nothing usable in it gets a
friendly word where someone can read one. Every refusal is one log line, never a traceback, leaves nothing
stuck, and the next request is served as usual. Clients that hold connections open (slow headers, a body held
back) are cut off (waitress's channel_timeout, 1 s here); HEAD leaves a kept-alive connection usable.
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import json
import logging
import socket
import time
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import pytest
from sqlalchemy import func, select

from bot.messages.forms import ASK_ACTION_INPUT, ASK_BLOCK_CHANNEL, ASK_BLOCK_QUESTION, ASK_MODAL
from bot.messages.routing import ACTION_TAKE_QUESTION
from bot.playground.emulator.signing import (
    Response,
    SlackSender,
    block_actions_payload,
    event_envelope,
    slash_command_fields,
    view_submission_payload,
)
from bot.playground.emulator.workspace import APP_ID, BOT_USER_ID, TEAM_DOMAIN, TEAM_ID
from bot.playground.emulator.world import SlackWorld
from bot.runtime import http as serving
from bot.runtime.http import HttpServer
from models.expert import RouteRequest
from models.question import STATUS_OPEN, Answer, Question
from tests.route_helpers import plain
from tests.slack.fixtures import SIGNING_SECRET

GENERAL = "C_GENERAL"
FORM = "application/x-www-form-urlencoded"
DEEP_JSON = b'{"type": "event_callback", "event": ' + b"[" * 200_000 + b"]" * 200_000 + b"}"
DEEP_PAYLOAD = urlencode({"payload": b"[" * 100_000 + b"]" * 100_000}).encode()
NOT_UTF8 = b'{"type": "event_callback", "event_id": "Ev\xff\xfe"}'


@pytest.fixture
def world(slack: SlackWorld) -> SlackWorld:
    for user in ("U_ASKER", "U_EXPERT"):
        slack.add_user(user)
    slack.add_channel(GENERAL, name="general", members=["U_ASKER", "U_EXPERT"])
    return slack


def command_fields(world: SlackWorld, text: str, **changes: str | None) -> dict[str, str]:
    """`/ask text` by U_ASKER in #general as Slack sends it, with some fields changed (None: left out)."""
    fields = slash_command_fields(
        team_id=TEAM_ID,
        team_domain=TEAM_DOMAIN,
        api_app_id=APP_ID,
        channel_id=GENERAL,
        channel_name="general",
        user_id="U_ASKER",
        user_name="asker",
        command="/ask",
        text=text,
        response_url=world.fake.new_response_url("U_ASKER", GENERAL),
        trigger_id=world.fake.new_trigger_id("U_ASKER"),
    )
    for name, value in changes.items():
        if value is None:
            fields.pop(name)
        else:
            fields[name] = value
    return fields


def envelope(event: dict[str, Any], event_id: str, **changes: Any) -> dict[str, Any]:
    body = event_envelope(
        event, team_id=TEAM_ID, api_app_id=APP_ID, event_id=event_id, event_time=1, bot_user_id=BOT_USER_ID
    )
    for name, value in changes.items():
        if value is None:
            body.pop(name)
        else:
            body[name] = value
    return body


def click(value: str, **changes: Any) -> dict[str, Any]:
    """U_EXPERT's "I'll take it" with this value, in their DM with the bot."""
    payload = block_actions_payload(
        team={"id": TEAM_ID, "domain": TEAM_DOMAIN},
        user={"id": "U_EXPERT", "username": "expert", "name": "expert", "team_id": TEAM_ID},
        api_app_id=APP_ID,
        actions=[{"action_id": ACTION_TAKE_QUESTION, "block_id": "b", "type": "button", "value": value}],
        trigger_id="1.2.3",
        container={"type": "message", "message_ts": "1700000000.000100", "channel_id": "DEXPERT"},
        channel={"id": "DEXPERT", "name": "directmessage"},
    )
    for name, value in changes.items():
        if value is None:
            payload.pop(name)
        else:
            payload[name] = value
    return payload


def submission(**changes: Any) -> dict[str, Any]:
    """U_ASKER submits the /ask form, with some fields of its view changed (None: left out)."""
    view: dict[str, Any] = {
        "id": "V0001",
        "type": "modal",
        "callback_id": ASK_MODAL,
        "private_metadata": "{}",
        "state": {
            "values": {
                ASK_BLOCK_QUESTION: {ASK_ACTION_INPUT: {"type": "plain_text_input", "value": "Why? #ops"}},
                ASK_BLOCK_CHANNEL: {
                    ASK_ACTION_INPUT: {"type": "conversations_select", "selected_conversation": GENERAL}
                },
            }
        },
    }
    for name, value in changes.items():
        if value is None:
            view.pop(name)
        else:
            view[name] = value
    return view_submission_payload(
        team={"id": TEAM_ID, "domain": TEAM_DOMAIN},
        user={"id": "U_ASKER", "username": "asker", "name": "asker", "team_id": TEAM_ID},
        api_app_id=APP_ID,
        view=view,
        trigger_id="1.2.3",
    )


@dataclass(frozen=True)
class Bad:
    """A bad request: what is sent, and the status it must get."""

    name: str
    send: Callable[[SlackWorld], Response]
    status: int
    # What a person is told (an ack's ephemeral), when someone can be.
    says: str | None = None


def raw(body: bytes, content_type: str, signing: str) -> Callable[[SlackWorld], Response]:
    return lambda world: world.sender.send(body, content_type, signing=signing)  # type: ignore[arg-type]


def signed_bytes(body: bytes) -> Callable[[SlackWorld], Response]:
    """Signed over its bytes as Slack's scheme would be; slack_sdk's verifier (like Bolt's) reads the body as
    UTF-8 text, so a body that is not UTF-8 can never be authenticated."""

    def send(world: SlackWorld) -> Response:
        timestamp = str(int(time.time()))
        digest = hmac.new(SIGNING_SECRET.encode(), b"v0:" + timestamp.encode() + b":" + body, hashlib.sha256)
        headers = {"X-Slack-Request-Timestamp": timestamp, "X-Slack-Signature": "v0=" + digest.hexdigest()}
        return world.sender.send(body, "application/json", signing="missing", headers=headers)

    return send


def form(fields: Callable[[SlackWorld], dict[str, str]]) -> Callable[[SlackWorld], Response]:
    return lambda world: world.sender.slash_command(fields(world))


def event(body: dict[str, Any]) -> Callable[[SlackWorld], Response]:
    return lambda world: world.sender.event(body)


def action(payload: dict[str, Any]) -> Callable[[SlackWorld], Response]:
    return lambda world: world.sender.interactivity(payload)


UNUSABLE = "Slack sent PeerLearn this command without"

BAD_REQUESTS = [
    # Not from Slack: refused on the signature alone, whatever the body holds.
    Bad("unsigned, not UTF-8", raw(NOT_UTF8, "application/json", "missing"), 401),
    Bad("unsigned, JSON nested 200,000 deep", raw(DEEP_JSON, "application/json", "missing"), 401),
    Bad("forged, JSON nested 200,000 deep", raw(DEEP_JSON, "application/json", "forged"), 401),
    Bad("signed over its bytes, not UTF-8", signed_bytes(NOT_UTF8), 401),
    # Signed, but not something Slack sends.
    Bad("signed, JSON nested 200,000 deep", raw(DEEP_JSON, "application/json", "valid"), 400),
    Bad("signed, a JSON list", raw(b"[1, 2]", "application/json", "valid"), 400),
    Bad("signed, a payload that is not JSON", raw(b"payload=%7Bnope", FORM, "valid"), 400),
    Bad("signed, a payload nested deep", raw(DEEP_PAYLOAD, FORM, "valid"), 400),
    # Signed, from Slack's shapes, with nothing usable.
    Bad("/ask without a team", form(lambda w: command_fields(w, "Why? #ops", team_id=None)), 200, UNUSABLE),
    Bad("/ask without a user", form(lambda w: command_fields(w, "Why? #ops", user_id=None)), 200, UNUSABLE),
    Bad("/ask without a channel", form(lambda w: command_fields(w, "Why? #ops", channel_id=None)), 200, UNUSABLE),
    Bad("/ask form without a trigger", form(lambda w: command_fields(w, "", trigger_id=None)), 200, UNUSABLE),
    Bad("/ask help without a team", form(lambda w: command_fields(w, "help", team_id=None)), 200),
    Bad(
        "an event without a team",
        event(envelope({"type": "app_home_opened", "user": "U_ASKER"}, "Ev1", team_id=None, authorizations=None)),
        200,
    ),
    Bad("an event that is not an object", event(envelope({}, "Ev2") | {"event": "message"}), 200),
    Bad("App Home opened by nobody", event(envelope({"type": "app_home_opened", "tab": "home"}, "Ev3")), 200),
    Bad(
        "a reaction by nobody",
        event(
            envelope(
                {
                    "type": "reaction_added",
                    "reaction": "+1",
                    "item": {"type": "message", "channel": GENERAL, "ts": "1.1"},
                },
                "Ev4",
            )
        ),
        200,
    ),
    Bad(
        "a reply without a channel",
        event(envelope({"type": "message", "user": "U_EXPERT", "text": "hi", "ts": "2.2", "thread_ts": "1.1"}, "Ev5")),
        200,
    ),
    Bad("a click by nobody", action(click("1", user=None)), 200),
    Bad("a form submitted without its view", action(submission(id=None)), 200),
    Bad("a click with a huge value", action(click("9" * 4000)), 200),
    Bad("a click naming question 2^40", action(click(str(2**40))), 200),
    Bad("a click naming question 2^70", action(click(str(2**70))), 200),
]


def tracebacks_and_errors(records: list[logging.LogRecord]) -> list[str]:
    return [
        f"{record.levelname} {record.name}: {record.getMessage()}"
        for record in records
        if record.exc_info or record.exc_text or record.levelno >= logging.ERROR
    ]


@pytest.mark.parametrize("bad", BAD_REQUESTS, ids=[bad.name for bad in BAD_REQUESTS])
def test_a_bad_request_is_refused_in_one_line_and_the_next_one_is_served(world, bad, caplog):
    caplog.set_level(logging.INFO)
    response = bad.send(world)
    world._handed_to_bolt()  # what the inbox took is handled (as `world.send_event` waits for it)
    world.settle()
    assert response.status == bad.status, response.body
    if bad.says is not None:  # in the ack, or through the response_url once the inbox's worker had it
        assert bad.says in (plain(response.json()) if response.body else json.dumps(world.ephemerals("U_ASKER")))
    assert tracebacks_and_errors(caplog.records) == []
    with world.runtime.store.session() as session:
        assert session.scalar(select(func.count()).select_from(Question)) == 0
    assert world.runtime.inbox is None or world.runtime.inbox.pending() == 0

    question = world.ask("U_ASKER", "Is the bot still serving? #ops", GENERAL)
    assert "still serving" in question.plain
    assert tracebacks_and_errors(caplog.records) == []


def test_nul_characters_are_dropped_not_taken_for_a_database_outage(world, caplog):
    caplog.set_level(logging.INFO)
    question = world.ask("U_ASKER", "Why\x00 does\x00 it fail? #ops", GENERAL)
    assert "Why does it fail?" in question.plain
    world.reply("U_EXPERT", question, "Because\x00 of NUL")
    world.reply("U_EXPERT", question, "And half \ud83d of an emoji")  # a lone surrogate: no UTF-8 for it
    world.settle()
    with world.runtime.store.session() as session:
        assert session.scalars(select(Question.text)).one() == "Why does it fail?"
        assert session.scalars(select(Question.status)).one() == STATUS_OPEN
        assert sorted(session.scalars(select(Answer.text))) == ["And half \ufffd of an emoji", "Because of NUL"]
    assert "can't reach its database" not in json.dumps(world.ephemerals("U_ASKER"))
    assert tracebacks_and_errors(caplog.records) == []


def test_a_click_naming_a_question_out_of_range_says_it_is_gone(world, caplog):
    caplog.set_level(logging.INFO)
    response = world.sender.interactivity(
        click(str(2**40)) | {"response_url": world.fake.new_response_url("U_EXPERT", "DEXPERT")}
    )
    assert response.status == 200
    world.settle()
    with world.runtime.store.session() as session:
        assert session.scalar(select(func.count()).select_from(RouteRequest)) == 0
    assert tracebacks_and_errors(caplog.records) == []


def announced_too_big(url: str) -> int:
    """The status answered to a POST whose Content-Length is over MAX_BODY, before its body is sent (a server
    that refuses it closes the connection: sending the body would race with that)."""
    parts = urllib.parse.urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=10)
    try:
        connection.putrequest("POST", parts.path)
        connection.putheader("Content-Type", FORM)
        connection.putheader("Content-Length", str(serving.MAX_BODY + 1))
        connection.endheaders()
        return connection.getresponse().status
    finally:
        connection.close()


def test_nothing_is_read_before_the_signature_is_checked(world, monkeypatch):
    """An unsigned megabyte of tags is refused without being parsed (it once held every ack for 32 s)."""
    read: list[int] = []
    peek = serving.peek

    def spy(raw: bytes, content_type: str | None) -> dict[str, Any] | None:
        read.append(len(raw))
        return peek(raw, content_type)

    monkeypatch.setattr(serving, "peek", spy)
    tags = " ".join(f"#tag{i:06d}" for i in range(60_000))
    body = urlencode(command_fields(world, "Why? " + tags)).encode()
    assert 700_000 < len(body) < serving.MAX_BODY
    for signing in ("missing", "forged", "stale"):
        assert world.sender.send(body, FORM, signing=signing).status == 401  # type: ignore[arg-type]
    assert read == []
    assert announced_too_big(world.sender.url) == 413 and read == []

    world.ask("U_ASKER", "Signed, it is read #ops", GENERAL)
    assert len(read) == 1


# --- clients that hold connections open (waitress: bot/runtime/http.server_options) ----------------------

SHORT_TIMEOUT = 1.0  # channel_timeout for these tests; `serve` uses 30 s


@pytest.fixture
def short_timeouts(world: SlackWorld) -> Iterator[HttpServer]:
    """The world's app on a second server whose connections time out after SHORT_TIMEOUT."""
    server = HttpServer(world.runtime.wsgi_app, threads=2, channel_timeout=SHORT_TIMEOUT).start()
    try:
        yield server
    finally:
        server.stop()


def closed_by_server(connection: socket.socket, within: float) -> bool:
    """Whether the server closes `connection` within `within` seconds (whatever it answered first)."""
    connection.settimeout(within)
    try:
        while connection.recv(65536):
            pass
        return True
    except TimeoutError:
        return False
    except ConnectionResetError:
        return True


def test_a_client_sending_headers_slowly_is_cut_off(short_timeouts):
    connection = socket.create_connection(("127.0.0.1", short_timeouts.port))
    with connection:
        connection.sendall(b"POST /slack/events HTTP/1.1\r\nHost: peerlearn\r\n")
        started = time.monotonic()
        cut = False
        while not cut and time.monotonic() - started < 6 * SHORT_TIMEOUT:
            try:
                connection.sendall(b"X")  # a byte now and then: never idle, never done
            except OSError:
                cut = True
                break
            cut = closed_by_server(connection, 0.3)
        assert cut, "a request that never finishes its headers holds its connection forever"


def test_a_client_holding_back_the_end_of_its_body_is_cut_off_and_others_are_served(world, short_timeouts):
    connections = []
    for _ in range(3):
        connection = socket.create_connection(("127.0.0.1", short_timeouts.port))
        head = f"POST /slack/events HTTP/1.1\r\nHost: peerlearn\r\nContent-Length: {serving.MAX_BODY}\r\n\r\n"
        connection.sendall(head.encode() + b"x" * (serving.MAX_BODY - 10))  # all but the last 10 bytes
        connections.append(connection)
    try:
        assert not closed_by_server(connections[0], SHORT_TIMEOUT / 2), "a body of this size is allowed: it waits"
        sender = SlackSender(f"{short_timeouts.url}/slack/events", SIGNING_SECRET)
        helped = sender.slash_command(command_fields(world, "help"))  # meanwhile, Slack's requests are served
        assert helped.status == 200 and "text" in json.loads(helped.body)
        assert all(closed_by_server(connection, 5 * SHORT_TIMEOUT) for connection in connections)
    finally:
        for connection in connections:
            connection.close()


def test_headers_over_the_limit_are_refused(short_timeouts):
    connection = http.client.HTTPConnection("127.0.0.1", short_timeouts.port, timeout=10)
    try:
        connection.putrequest("GET", "/healthz")
        connection.putheader("X-Padding", "x" * (serving.MAX_HEADERS + 1))
        connection.endheaders()
        assert connection.getresponse().status in (400, 431)
    finally:
        connection.close()


def test_head_has_no_body_and_the_kept_alive_connection_serves_the_next_request(short_timeouts):
    connection = http.client.HTTPConnection("127.0.0.1", short_timeouts.port, timeout=10)
    try:
        for path in ("/slack/events", "/no/such/page", "/healthz"):
            connection.request("HEAD", path)
            head = connection.getresponse()
            assert head.read() == b"", path
            connection.request("GET", "/healthz")
            after = connection.getresponse()
            assert (after.status, json.loads(after.read())["status"]) == (200, "ok"), path
    finally:
        connection.close()


def test_a_request_whose_client_left_before_its_body_arrived_is_neither_stored_nor_answered(world, short_timeouts):
    body = urlencode(command_fields(world, "Half a question #ops")).encode()
    connection = socket.create_connection(("127.0.0.1", short_timeouts.port))
    head = (
        f"POST /slack/events HTTP/1.1\r\nHost: peerlearn\r\nContent-Type: {FORM}\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    connection.sendall(head.encode() + body[: len(body) // 2])
    connection.close()
    world.ask("U_ASKER", "The next one is served #ops", GENERAL)  # through the world's server, after the other
    assert world.runtime.inbox is None or world.runtime.inbox.pending() == 0
    with world.runtime.store.session() as session:
        texts = session.scalars(select(Question.text)).all()
    assert [text for text in texts if "Half a question" in text] == []
