"""Which Slack requests may be acknowledged before any work: their key in the inbox (models/inbox.py).

Light on purpose (no Bolt, no ORM): `serve`'s HTTP front (bot/front.py) decides with it, in a process that
loads neither.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bot.config import Settings
from bot.tags import InvalidQuestion, clean, validate_question

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
    text = command.get("text") or ""
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
