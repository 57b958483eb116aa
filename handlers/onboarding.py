"""Onboarding buddies from Slack: joins (`member_joined_channel`, `team_join`), `/teach buddy` (called by
handlers/teach.py), and the admins' onboarding form opened from App Home.

A join is recorded in the ack step, in the transaction that claims the event (a redelivery changes nothing);
pairing and the introductions talk to Slack in the lazy step (and the scheduler's tick finishes what a crash
left owed: bot/onboarding.py). The form opens only for someone Slack confirms is an admin or owner, and its
submission is checked again the same way before anything is stored (bot/workspace_settings.py).
"""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt import Ack, App, BoltContext
from slack_sdk import WebClient
from sqlalchemy.exc import SQLAlchemyError

from bot import home, onboarding
from bot.messages.blocks import ephemeral
from bot.messages.errors import DATABASE_DOWN, quote_back
from bot.messages.forms import field_errors
from bot.messages.home import FORM_NOT_OPENED
from bot.messages.onboarding import (
    CHANNEL_FIELD,
    CHECKLIST_FIELD,
    HOME_EDIT_ONBOARDING,
    NOT_AN_ADMIN,
    ONBOARDING_ACTION,
    ONBOARDING_MODAL,
    SAVED,
    TEAM_JOIN_FIELD,
    TEAM_JOIN_ON,
    UNCHANGED,
    onboarding_modal,
)
from bot.messages.settings import ADMIN_UNCONFIRMED
from bot.services import Services
from bot.slack_errors import SLACK_FAILURES, error_code
from bot.workspace_settings import confirmed_admin
from bot.workspaces import WorkspaceClient
from models.expert import remember_profile
from models.workspace import claim_event, ensure_workspace

logger = logging.getLogger("peerlearn.onboarding")

JOINED = "peerlearn_newcomer"  # context key: a newcomer was recorded, pair after the ack
NOTICE = "peerlearn_onboarding_notice"  # context key: what the re-published tab says
BUDDY = "buddy"  # handlers/teach.py's intent kind for `/teach buddy`


def team_of(body: dict[str, Any], context: BoltContext) -> str:
    return context.team_id or body.get("team_id") or (body.get("team") or {}).get("id") or ""


def ack_buddy(ack: Ack, command: dict[str, Any], text: str, services: Services) -> bool:
    """`/teach buddy …`: store it and answer; True when something was stored (pair after the ack)."""
    try:
        capacity = onboarding.parse_buddy(text)
    except onboarding.InvalidBuddy as problem:
        ack(**ephemeral(str(problem)).as_kwargs())
        return False
    team_id, user_id = command["team_id"], command["user_id"]
    try:
        with services.store.session() as session:
            now = services.clock.now()
            ensure_workspace(session, team_id, now)
            reply = onboarding.apply_buddy(session, team_id, user_id, capacity, now)
    except SQLAlchemyError:
        logger.exception("could not store /teach buddy from %s", user_id)
        ack(**ephemeral(DATABASE_DOWN + quote_back(text)).as_kwargs())
        return False
    ack(**ephemeral(reply).as_kwargs())
    return capacity is not None


def pair_now(client: WebClient, services: Services, team_id: str) -> None:
    """After the ack: pair whoever waits (a volunteer just appeared, or a newcomer joined)."""
    try:
        onboarding.pair_waiting(WorkspaceClient(client), services, team_id)
    except Exception:
        logger.exception("pairing newcomers in %s failed; the scheduler's tick tries again", team_id)


def register(app: App, services: Services) -> None:
    def store_join(event: dict[str, Any], body: dict[str, Any], context: BoltContext) -> None:
        team_id, now = team_of(body, context), services.clock.now()
        raw_user = event.get("user")
        user = raw_user if isinstance(raw_user, dict) else {"id": raw_user or ""}
        user_id = str(user.get("id") or "")
        if not user_id or user_id == context.bot_user_id or user.get("is_bot") or user.get("deleted"):
            return
        with services.store.session() as session:
            event_id = body.get("event_id") or ""
            if event_id and not claim_event(session, team_id, event_id, now):
                logger.info("event %s for %s already handled; ignoring the redelivery", event_id, team_id)
                return
            if event.get("type") == "team_join":
                if isinstance(raw_user, dict):
                    remember_profile(session, team_id, raw_user, now)
                recorded = onboarding.joined_workspace(session, team_id, user_id, now)
            else:
                recorded = onboarding.joined_channel(session, team_id, user_id, event.get("channel", ""), now)
        if recorded:
            logger.info("newcomer %s in %s recorded (%s)", user_id, team_id, event.get("type"))
            context[JOINED] = True

    def pair_joined(body: dict[str, Any], client: WebClient, context: BoltContext) -> None:
        if context.get(JOINED):
            pair_now(client, services, team_of(body, context))

    def ack_only(ack: Ack) -> None:
        ack()

    def open_form(body: dict[str, Any], client: WebClient, context: BoltContext) -> None:
        team_id, user_id = team_of(body, context), body["user"]["id"]
        admin = confirmed_admin(client, services, team_id, user_id)
        if not admin:
            home.publish_home(client, services, team_id, user_id, NOT_AN_ADMIN if admin is False else ADMIN_UNCONFIRMED)
            return
        with services.store.session() as session:
            config = onboarding.config_of(session, team_id)
        try:
            client.views_open(
                trigger_id=body["trigger_id"],
                view=onboarding_modal(config.channel_id, config.team_join, config.checklist),
            )
        except SLACK_FAILURES as exc:
            logger.warning("could not open the onboarding form: %s", error_code(exc))
            home.publish_home(client, services, team_id, user_id, FORM_NOT_OPENED)

    def ack_form(ack: Ack, body: dict[str, Any], view: dict[str, Any], client: WebClient, context: BoltContext) -> None:
        team_id, user_id = team_of(body, context), body["user"]["id"]
        try:
            admin = confirmed_admin(client, services, team_id, user_id)
        except SQLAlchemyError:
            logger.exception("could not check whether %s is an admin", user_id)
            ack(**field_errors({CHECKLIST_FIELD: DATABASE_DOWN}))
            return
        if not admin:
            logger.warning("onboarding change refused to %s in %s: not a confirmed admin", user_id, team_id)
            ack(**field_errors({CHECKLIST_FIELD: NOT_AN_ADMIN if admin is False else ADMIN_UNCONFIRMED}))
            return
        values = view.get("state", {}).get("values", {})
        channel = (values.get(CHANNEL_FIELD, {}).get(ONBOARDING_ACTION) or {}).get("selected_conversation")
        ticked = (values.get(TEAM_JOIN_FIELD, {}).get(ONBOARDING_ACTION) or {}).get("selected_options") or []
        raw = (values.get(CHECKLIST_FIELD, {}).get(ONBOARDING_ACTION) or {}).get("value") or ""
        checklist, problem = onboarding.read_checklist(str(raw))
        if problem:
            ack(**field_errors({CHECKLIST_FIELD: problem}))
            return
        wanted = onboarding.OnboardingConfig(
            channel_id=str(channel)[:32] if channel else None,
            team_join=any((o or {}).get("value") == TEAM_JOIN_ON for o in ticked),
            checklist=checklist,
        )
        try:
            with services.store.session() as session:
                changes = onboarding.save_config(session, team_id, user_id, wanted, services.clock.now())
        except SQLAlchemyError:
            logger.exception("could not store the onboarding settings of %s", team_id)
            ack(**field_errors({CHECKLIST_FIELD: DATABASE_DOWN}))
            return
        context[NOTICE] = SAVED if changes else UNCHANGED
        ack()

    def show_saved(body: dict[str, Any], client: WebClient, context: BoltContext) -> None:
        if context.get(NOTICE):
            team_id = team_of(body, context)
            home.publish_home(client, services, team_id, body["user"]["id"], context[NOTICE])
            pair_now(client, services, team_id)

    app.event("member_joined_channel")(ack=store_join, lazy=[pair_joined])
    app.event("team_join")(ack=store_join, lazy=[pair_joined])
    app.action(HOME_EDIT_ONBOARDING)(ack=ack_only, lazy=[open_form])
    app.view(ONBOARDING_MODAL)(ack=ack_form, lazy=[show_saved])
