"""Workspace settings from App Home: the admins' "Edit settings" button and the settings form it opens.

The button opens the form only for someone Slack confirms is an admin or owner (bot/workspace_settings.py
confirmed_admin); anyone else gets a note on their tab. The form's submission is checked again the same way
before anything is read from it (a form opened by anyone else, or kept open after the person stopped being an
admin, changes nothing), then checked whole: errors go under their fields (`response_action: errors`) and
nothing is saved; else the changes are stored and recorded before the ack, and the tab is published again.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from slack_bolt import Ack, App, BoltContext
from slack_sdk import WebClient
from sqlalchemy.exc import SQLAlchemyError

from bot import home
from bot.messages.errors import DATABASE_DOWN
from bot.messages.forms import field_errors
from bot.messages.home import FORM_NOT_OPENED
from bot.messages.settings import (
    ADMIN_UNCONFIRMED,
    FIRST_FIELD,
    HOME_EDIT_SETTINGS,
    NOT_AN_ADMIN,
    SAVED,
    SETTINGS_ACTION,
    SETTINGS_MODAL,
    UNCHANGED,
    settings_modal,
)
from bot.services import Services
from bot.slack_errors import SLACK_FAILURES, error_code
from bot.workspace_settings import EDITABLE, confirmed_admin, effective_settings, read_form, save_settings

logger = logging.getLogger("peerlearn.settings")

NOTICE = "peerlearn_settings_notice"  # context key: what the re-published tab says


def form_values(view: dict[str, Any]) -> dict[str, str | Sequence[str] | None]:
    """What the settings form holds, by setting name: the text typed, the option chosen or the boxes ticked."""
    values = view.get("state", {}).get("values", {})
    found: dict[str, str | Sequence[str] | None] = {}
    for name in EDITABLE:
        state = values.get(name, {}).get(SETTINGS_ACTION, {})
        if "selected_options" in state:
            found[name] = [str((o or {}).get("value") or "") for o in state["selected_options"] or []][:10]
        elif "selected_option" in state:
            found[name] = str((state["selected_option"] or {}).get("value") or "")
        else:
            found[name] = str(state.get("value") or "")[:20]
    return found


def refusal(admin: bool | None) -> str:
    """Why someone Slack did not confirm as an admin may not change settings (None: Slack did not answer)."""
    return NOT_AN_ADMIN if admin is False else ADMIN_UNCONFIRMED


def team_of(body: dict[str, Any], context: BoltContext) -> str:
    return (body.get("team") or {}).get("id") or context.team_id or ""


def register(app: App, services: Services) -> None:
    def ack_only(ack: Ack) -> None:
        ack()

    def open_settings(body: dict[str, Any], client: WebClient, context: BoltContext) -> None:
        team_id, user_id = team_of(body, context), body["user"]["id"]
        admin = confirmed_admin(client, services, team_id, user_id)
        if not admin:
            logger.info("settings form not opened for %s in %s: not a confirmed admin", user_id, team_id)
            home.publish_home(client, services, team_id, user_id, refusal(admin))
            return
        with services.store.session() as session:
            current = effective_settings(session, team_id, services.settings)
        try:
            client.views_open(trigger_id=body["trigger_id"], view=settings_modal(current))
        except SLACK_FAILURES as exc:
            logger.warning("could not open the settings form: %s", error_code(exc))
            home.publish_home(client, services, team_id, user_id, FORM_NOT_OPENED)

    def ack_settings(
        ack: Ack, body: dict[str, Any], view: dict[str, Any], client: WebClient, context: BoltContext
    ) -> None:
        team_id, user_id = team_of(body, context), body["user"]["id"]
        try:
            admin = confirmed_admin(client, services, team_id, user_id)
        except SQLAlchemyError:
            logger.exception("could not check whether %s is an admin", user_id)
            ack(**field_errors({FIRST_FIELD: DATABASE_DOWN}))
            return
        if not admin:
            logger.warning("settings change refused to %s in %s: not a confirmed admin", user_id, team_id)
            ack(**field_errors({FIRST_FIELD: refusal(admin)}))
            return
        values, errors = read_form(form_values(view))
        if errors:
            ack(**field_errors(errors))
            return
        try:
            with services.store.session() as session:
                changes = save_settings(session, team_id, user_id, values, services.settings, services.clock.now())
        except SQLAlchemyError:
            logger.exception("could not store the settings of %s", team_id)
            ack(**field_errors({FIRST_FIELD: DATABASE_DOWN}))
            return
        context[NOTICE] = SAVED if changes else UNCHANGED
        ack()

    def show_settings(body: dict[str, Any], client: WebClient, context: BoltContext) -> None:
        if context.get(NOTICE):
            home.publish_home(client, services, team_of(body, context), body["user"]["id"], context[NOTICE])

    app.action(HOME_EDIT_SETTINGS)(ack=ack_only, lazy=[open_settings])
    app.view(SETTINGS_MODAL)(ack=ack_settings, lazy=[show_settings])
