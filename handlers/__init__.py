"""Slack surfaces: one module per surface, each with register(app, services)."""

from __future__ import annotations

from slack_bolt import App

from bot.services import Services
from handlers import actions, capture, commands, events, mentoring, onboarding, sessions, settings, teach, views


def register_all(app: App, services: Services) -> None:
    for module in (commands, teach, events, views, actions, settings, capture, mentoring, sessions, onboarding):
        module.register(app, services)
