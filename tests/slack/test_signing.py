"""Signed requests: Slack's own test vector, and a minimal Bolt app that must accept what we send."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from slack_bolt import Ack, App, BoltRequest
from slack_bolt.adapter.wsgi import SlackRequestHandler
from slack_sdk import WebClient

from bot.playground.emulator.fake_api import BOT_TOKEN, FakeSlackAPI
from bot.playground.emulator.signing import (
    SlackSender,
    block_actions_payload,
    event_envelope,
    sign,
    slash_command_fields,
    view_submission_payload,
)

from .conftest import SHARED_DIR, Serve

SECRET = "test-signing-secret"
PAYLOADS = SHARED_DIR / "slack-payloads"


def load(name: str) -> Any:
    return json.loads(Path(PAYLOADS / name).read_text(encoding="utf-8"))


def test_signature_matches_slacks_test_vector() -> None:
    vector = load("signing_test_vector.json")
    headers = sign(vector["signing_secret"], vector["body"], int(vector["x_slack_request_timestamp"]))
    assert headers == {
        "X-Slack-Request-Timestamp": vector["x_slack_request_timestamp"],
        "X-Slack-Signature": vector["x_slack_signature"],
    }


@pytest.fixture
def bolt(fake_slack: FakeSlackAPI, serve_wsgi: Serve) -> tuple[SlackSender, list[tuple[str, Any, BoltRequest]]]:
    """A minimal Bolt app (its WebClient on the fake) recording what each listener received."""
    seen: list[tuple[str, Any, BoltRequest]] = []
    client = WebClient(base_url=fake_slack.base_url, token=BOT_TOKEN)
    app = App(signing_secret=SECRET, client=client, process_before_response=True)  # listeners run before the ack

    @app.command("/echo")
    def echo(ack: Ack, command: dict[str, Any], request: BoltRequest) -> None:
        seen.append(("command", command, request))
        ack(f"echo: {command['text']}")

    @app.event("reaction_added")
    def reaction(body: dict[str, Any], request: BoltRequest) -> None:
        seen.append(("event", body, request))

    @app.action("go")
    def action(ack: Ack, body: dict[str, Any], request: BoltRequest) -> None:
        seen.append(("action", body, request))
        ack()

    @app.view("form")
    def view(ack: Ack, view: dict[str, Any], request: BoltRequest) -> None:
        seen.append(("view", view, request))
        ack()

    sender = SlackSender(serve_wsgi(SlackRequestHandler(app)) + "/slack/events", SECRET)
    return sender, seen


def command_fields(text: str = "hi") -> dict[str, str]:
    return slash_command_fields(
        team_id="T0001",
        team_domain="test",
        api_app_id="A0001",
        channel_id="C1",
        channel_name="general",
        user_id="U1",
        user_name="ann",
        command="/echo",
        text=text,
        response_url="http://127.0.0.1:1/response/x",
        trigger_id="1.2.abc",
    )


def test_slash_command_is_accepted_and_acked(bolt: tuple[SlackSender, list[Any]]) -> None:
    sender, seen = bolt
    response = sender.slash_command(command_fields("vacuum & <friends>"))
    assert (response.status, response.body) == (200, "echo: vacuum & <friends>")
    ((_, command, _),) = seen
    grid_only = {"enterprise_id", "enterprise_name"}
    assert list(command) == [field for field in load("slash_command.json") if field not in grid_only]


@pytest.mark.parametrize("signing", ["forged", "missing", "stale"])
def test_badly_signed_requests_are_refused(bolt: tuple[SlackSender, list[Any]], signing: Any) -> None:
    sender, seen = bolt
    assert sender.slash_command(command_fields(), signing=signing).status == 401
    assert seen == []


def test_events_carry_the_envelope_and_retry_headers(bolt: tuple[SlackSender, list[Any]]) -> None:
    sender, seen = bolt
    inner = load("event_reaction_added.json")["event"]
    envelope = event_envelope(
        inner, team_id="T0001", api_app_id="A0001", event_id="Ev1", event_time=1, bot_user_id="UBOT"
    )
    assert sender.event(envelope).status == 200
    assert sender.event(envelope, retry_num=1, retry_reason="http_timeout").status == 200
    (_, first, plain), (_, _, retried) = seen
    assert first["event_id"] == "Ev1" and first["event"] == inner
    assert "x-slack-retry-num" not in plain.headers
    assert (retried.headers["x-slack-retry-num"], retried.headers["x-slack-retry-reason"]) == (["1"], ["http_timeout"])


def test_url_verification_sample_gets_its_challenge_back(bolt: tuple[SlackSender, list[Any]]) -> None:
    sender, _ = bolt
    sample = load("url_verification.json")
    response = sender.event(sample)
    assert response.status == 200 and response.json() == {"challenge": sample["challenge"]}


def test_interactivity_payloads(bolt: tuple[SlackSender, list[Any]]) -> None:
    sender, seen = bolt
    team, user = {"id": "T0001", "domain": "test"}, {"id": "U1", "username": "ann", "name": "ann", "team_id": "T0001"}
    action = {"action_id": "go", "block_id": "b", "type": "button", "value": "1", "action_ts": "1.2"}
    click = block_actions_payload(
        team=team,
        user=user,
        api_app_id="A0001",
        actions=[action],
        trigger_id="1.2.abc",
        container={"type": "message", "message_ts": "1.1", "channel_id": "C1", "is_ephemeral": False},
        channel={"id": "C1", "name": "general"},
        message={"type": "message", "ts": "1.1", "text": "x"},
        response_url="http://127.0.0.1:1/response/x",
    )
    assert set(click) >= set(load("interactivity_block_actions_message.json"))
    assert sender.interactivity(click).status == 200
    view = {**load("interactivity_view_submission.json")["view"], "callback_id": "form"}
    submission = view_submission_payload(team=team, user=user, api_app_id="A0001", view=view, trigger_id="1.2.abc")
    assert set(submission) >= set(load("interactivity_view_submission.json"))
    assert sender.interactivity(submission).status == 200
    assert [(kind, data.get("type")) for kind, data, _ in seen] == [("action", "block_actions"), ("view", "modal")]
