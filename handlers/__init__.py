"""Slack surfaces: one module per surface, each with register(app, services)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from slack_bolt import App

from bot.config import Settings
from bot.services import Services
from handlers import actions, commands, events, teach, views


def register_all(app: App, services: Services) -> None:
    for module in (commands, teach, events, views, actions):
        module.register(app, services)


def inbox_key(body: Mapping[str, Any], settings: Settings) -> str | None:
    """The key under which a request may wait in the inbox (models/inbox.py), acknowledged before any
    listener runs; None when its ack must come from the listener (it says something, opens a modal, …).

    Events API deliveries (Slack shows nothing of an event's ack) and /ask questions (an empty ack)."""
    if body.get("type") == "event_callback" and body.get("event_id"):
        return f"event:{body['event_id']}"
    if body.get("command") == "/ask" and body.get("trigger_id") and commands.acks_blank(body, settings):
        return commands.request_key(body)
    return None
