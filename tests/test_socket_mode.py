"""Socket Mode (`python app.py run`, what `make run` runs) is as durable as HTTP mode, on SQLite and PostgreSQL.

Requests come through Bolt's own SocketModeHandler.handle (what its WebSocket client calls for each envelope);
its answer to Slack, the ack, is recorded with what the database held at that moment. Bolt honours
process_before_response there too: the ack step has stored the question, or the reply, before the ack goes
out. A process that dies after an ack, before its lazy listener posted the question, leaves it owed: the
posting tick of the next start posts it once.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest
from slack_bolt.adapter.socket_mode import SocketModeHandler
from slack_sdk.socket_mode.request import SocketModeRequest
from slack_sdk.socket_mode.response import SocketModeResponse
from sqlalchemy import func, select

from bot import posting
from bot.clock import FrozenClock
from bot.config import Settings
from bot.playground.emulator.fake_api import BOT_TOKEN, FakeSlackAPI
from bot.playground.emulator.signing import slash_command_fields
from bot.playground.emulator.workspace import APP_ID, BOT_USER_ID, TEAM_DOMAIN, TEAM_ID
from bot.playground.emulator.world import SlackWorld
from bot.runtime.wiring import Runtime, build_runtime
from models.question import STATUS_OPEN, STATUS_POSTING, Answer, Question
from tests.production_harness import GENERAL, populate
from tests.slack.fixtures import START

APP_TOKEN = "xapp-1-A0001-test"


class SocketModeClientRecorder:
    """Stands in for the WebSocket client: what Bolt sends back (the acks), and what was stored when it did."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.logger = logging.getLogger("tests.socket_mode")
        self.acks: list[tuple[SocketModeResponse, dict[str, Any]]] = []

    def send_socket_mode_response(self, response: SocketModeResponse) -> None:
        with self.runtime.store.session() as session:
            stored = {
                "questions": [(q.text, q.status) for q in session.scalars(select(Question))],
                "answers": session.scalar(select(func.count()).select_from(Answer)),
            }
        self.acks.append((response, stored))


@pytest.fixture
def runtime(fake_slack: FakeSlackAPI, database_url: str, slack_clock: FrozenClock) -> Iterator[Runtime]:
    settings = Settings(
        bot_token=BOT_TOKEN, app_token=APP_TOKEN, database_url=database_url, slack_api_url=fake_slack.base_url
    )
    runtime = build_runtime(settings, clock=slack_clock)
    world = SlackWorld(fake_slack, "http://127.0.0.1:9", "unused", slack_clock)
    populate(world)
    try:
        yield runtime
    finally:
        runtime.close()


def handle(runtime: Runtime, recorder: SocketModeClientRecorder, kind: str, payload: dict[str, Any]) -> None:
    handler = SocketModeHandler.__new__(SocketModeHandler)  # no WebSocket: Slack's envelopes are given here
    handler.app = runtime.bolt_app
    number = len(recorder.acks) + 1
    handler.handle(recorder, SocketModeRequest(type=kind, envelope_id=f"envelope-{number}", payload=payload))  # type: ignore[arg-type]


def ask(fake: FakeSlackAPI, text: str) -> dict[str, Any]:
    return slash_command_fields(
        team_id=TEAM_ID,
        team_domain=TEAM_DOMAIN,
        api_app_id=APP_ID,
        channel_id=GENERAL,
        channel_name="general",
        user_id="U_ASKER",
        user_name="asker",
        command="/ask",
        text=text,
        response_url=fake.new_response_url("U_ASKER", GENERAL),
        trigger_id=fake.new_trigger_id("U_ASKER"),
    )


def reply_event(question_ts: str, ts: str) -> dict[str, Any]:
    event = {
        "type": "message",
        "user": "U_EXPERT",
        "text": "logrotate with copytruncate",
        "ts": ts,
        "thread_ts": question_ts,
        "parent_user_id": BOT_USER_ID,
        "channel": GENERAL,
        "event_ts": ts,
        "channel_type": "channel",
    }
    return {
        "type": "event_callback",
        "team_id": TEAM_ID,
        "api_app_id": APP_ID,
        "event": event,
        "event_id": "Ev0SOCKET1",
        "event_time": int(START.timestamp()),
        "authorizations": [{"team_id": TEAM_ID, "user_id": BOT_USER_ID, "is_bot": True}],
    }


def test_an_acked_question_is_stored_first_and_posted_by_the_next_start_if_the_process_dies(
    runtime, fake_slack, slack_clock, monkeypatch
):
    runner = runtime.bolt_app.listener_runner.lazy_listener_runner
    monkeypatch.setattr(runner, "start", lambda function, request: None)  # the process dies after the ack
    recorder = SocketModeClientRecorder(runtime)
    handle(runtime, recorder, "slash_commands", ask(fake_slack, "How do I rotate the nginx logs? #ops"))
    [(ack, stored)] = recorder.acks
    assert ack.envelope_id == "envelope-1" and ack.payload is None  # an empty ack, as in HTTP mode
    assert stored["questions"] == [("How do I rotate the nginx logs?", STATUS_POSTING)], "stored before the ack"
    assert not fake_slack.calls_to("chat.postMessage")

    monkeypatch.undo()
    slack_clock.set(START + posting.OWED_AFTER)
    assert posting.tick(runtime.services, runtime.bolt_app.client, slack_clock.now()) == 1
    [post] = fake_slack.calls_to("chat.postMessage", channel=GENERAL)
    with runtime.store.session() as session:
        [question] = session.scalars(select(Question))
        assert (question.status, question.message_ts) == (STATUS_OPEN, post.response["ts"])

    handle(runtime, recorder, "events_api", reply_event(post.response["ts"], f"{START.timestamp() + 61:.6f}"))
    assert recorder.acks[-1][1]["answers"] == 1, "the answer was stored before the event's ack"
