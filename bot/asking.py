"""Which Slack requests may be acknowledged before any work: their key in the inbox (models/inbox.py).

Light on purpose (no Bolt, no ORM, no HTTP server): `serve`'s HTTP front (bot/front.py, on uvicorn) decides
with it, in a process that loads neither, and so does the one-process server (bot/web.py, on waitress).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any, Generic, TypeVar
from urllib.parse import unquote_plus

from slack_sdk.signature import SignatureVerifier

from bot.clock import Clock
from bot.config import Settings
from bot.tags import InvalidQuestion, clean, command_text, validate_question

logger = logging.getLogger("peerlearn.acks")

HELP_WORDS = {"help", "?", "-h", "--help"}


def first_word(text: str) -> str:
    words = clean(text).split(maxsplit=1)
    return words[0].lower() if words else ""


def request_key(command: Mapping[str, Any]) -> str:
    """Slash commands have no id of their own; the trigger_id is unique per invocation."""
    return "cmd:" + (command.get("trigger_id") or f"{command.get('user_id')}:{command.get('text')}")


def acks_blank(command: Mapping[str, Any], settings: Settings) -> bool:
    """Whether /ask's ack (handlers/commands.py) is empty: a question to store and post, not help, digest
    settings, the form (its trigger_id expires in 3 s) or a problem to explain. Such a request can be
    acknowledged as soon as it is in the inbox and handled after the ack."""
    text = command_text(command)
    word = first_word(text)
    if word in HELP_WORDS or word == "digest" or not clean(text):
        return False
    try:
        validate_question(text, settings)
    except InvalidQuestion:
        return False
    return True


def inbox_key(body: Mapping[str, Any], settings: Settings) -> str | None:
    """The key under which a request may wait in the inbox, acknowledged before any listener runs; None when
    its ack must come from the listener (it says something, opens a modal, …).

    Events API deliveries (Slack shows nothing of an event's ack) and /ask questions (an empty ack)."""
    if body.get("type") == "event_callback" and body.get("event_id"):
        return f"event:{body['event_id']}"
    if body.get("command") == "/ask" and body.get("trigger_id") and acks_blank(body, settings):
        return request_key(body)
    return None


# What the front decides on (inbox_key, request_kind); a form's other fields are left to Bolt.
_FORM_FIELDS = frozenset({"command", "trigger_id", "text", "payload"})
MAX_BODY = 1 << 20  # bytes; Slack's requests are a few kB (a modal's state, at most some tens of kB)


def peek(raw: bytes, content_type: str | None) -> dict[str, Any] | None:
    """The fields of a request that say what it is: all of a JSON body (an event); of a form (a command, or
    interactivity's `payload`), only _FORM_FIELDS, decoded as Bolt's parser would. None when unparseable
    (not UTF-8, not JSON, JSON nested too deep to read, not an object)."""
    try:
        text = raw.decode("utf-8")
        if content_type == "application/json" or text.startswith("{"):
            body = json.loads(text)
            return body if isinstance(body, dict) else None
        fields = {}
        for pair in text.split("&"):
            name, _, value = pair.partition("=")
            if name in _FORM_FIELDS:
                fields[name] = unquote_plus(value)
        if "payload" in fields:
            payload = json.loads(fields["payload"])
            return payload if isinstance(payload, dict) else None
        return fields
    except (ValueError, RecursionError):
        return None


class Screening:
    """What a server does with a Slack request before anything else: nothing but its signature is looked at
    until it is authenticated (slack_sdk's verifier, as Bolt checks it); then its body is read as Bolt would
    read it. The server checks the size first (MAX_BODY). Both servers use it: bot/front.py and bot/web.py."""

    def __init__(self, signing_secret: str | None) -> None:
        self.verifier = SignatureVerifier(signing_secret) if signing_secret else None

    def authentic(self, raw: bytes, timestamp: str | None, signature: str | None) -> bool:
        if self.verifier is None:  # no signing secret: Bolt does not check either (local use only)
            return True
        if not timestamp or not signature:
            return False
        try:
            return self.verifier.is_valid(raw, timestamp, signature)
        except ValueError:  # a timestamp that is not a number
            return False

    def admit(
        self, raw: bytes, content_type: str | None, timestamp: str | None, signature: str | None
    ) -> tuple[int, dict[str, Any] | None]:
        """(200, the body's fields) for a request Bolt may have; (401, None) when it is not signed by Slack,
        (400, None) when its body is not something Slack sends. A refusal is logged in one line."""
        if not self.authentic(raw, timestamp, signature):
            logger.info("refused a request without a valid Slack signature (401, %s bytes)", len(raw))
            return 401, None
        body = peek(raw, content_type)
        if body is None:
            logger.info("refused a signed request whose body Slack would not send (400, %s bytes)", len(raw))
            return 400, None
        return 200, body


InboxT = TypeVar("InboxT")


class Queueing(Generic[InboxT]):
    """Acknowledging requests into an inbox: which may wait there, whether they come from Slack, and what is
    stored (the server stores it: bot/front.py on its event loop, bot/web.py on its threads)."""

    def __init__(
        self,
        inbox: InboxT,
        key_for: Callable[[dict[str, Any]], str | None],
        signing_secret: str | None,
        clock: Clock,
    ) -> None:
        self.inbox = inbox
        self.key_for = key_for
        self.screening = Screening(signing_secret)
        self.clock = clock

    def key(self, body: dict[str, Any], method: str) -> str | None:
        """An authenticated request's inbox key, None when it may not wait there."""
        return self.key_for(body) if method == "POST" else None

    def stored(self, key: str, raw: bytes, content_type: str | None) -> tuple[str, str, str, datetime]:
        """The inbox's `put` arguments for a request."""
        return key, content_type or "", raw.decode("utf-8"), self.clock.now()

    @staticmethod
    def refused(error: BaseException) -> None:
        logger.warning("the inbox could not take a request (%s); handling it at once", error.__class__.__name__)
