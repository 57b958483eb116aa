"""Requests acknowledged into the inbox through the real HTTP endpoint (bot/runtime/http.py), then handed to
Bolt by the inbox worker (bot/runtime/worker.py): what is queued, what still goes to Bolt at once, badly signed
requests, an inbox that cannot take a request, an ack with something to say (through the response_url), a
redelivery handled once.

Tests that stop the worker (`pause`) send requests while no one takes them from the inbox, which is how they
tell a queued request (it waits) from one Bolt handles at once (it is done when the response comes back).
"""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import psycopg
import pytest
from sqlalchemy import func, select

from bot.playground.emulator.fake_api import FakeSlackAPI
from bot.playground.emulator.signing import event_envelope
from bot.playground.emulator.workspace import APP_ID, BOT_USER_ID, TEAM_ID
from bot.playground.emulator.world import SlackWorld
from bot.runtime.wiring import Runtime
from bot.runtime.worker import InboxWorker
from models.inbox import Inbox, InboxRequest
from models.question import Answer, Question
from tests.production_harness import GENERAL, populate

ROOT = Path(__file__).resolve().parent.parent
NOW = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
FORM = "application/x-www-form-urlencoded"


# --- helpers ----------------------------------------------------------------------------------------------


def keys(requests: list[InboxRequest]) -> list[str]:
    return [request.request_key for request in requests]


def take(inbox: Inbox, limit: int) -> list[InboxRequest]:
    """What a worker's batch holds, handled (removed) at once."""
    with inbox.batch(limit) as requests:
        return requests


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
    """The keys of every request the server stores in the inbox from now on (stored as before)."""
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
    return fake.command_fields(user, text, channel, channel_name="general")


def without_block_ids(blocks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{key: value for key, value in block.items() if key != "block_id"} for block in blocks]


@pytest.fixture
def world(slack: SlackWorld) -> SlackWorld:
    populate(slack)
    return slack


# --- what is queued and what is not ------------------------------------------------------------


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
