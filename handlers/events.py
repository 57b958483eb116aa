"""Events: thread replies (answers), their edits and deletions, reactions, App Home, uninstalls.

Each listener stores what the event changes inside one transaction that also claims the event_id,
so a redelivery changes nothing twice; Slack calls (redrawing a question) run after the ack.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from slack_bolt import App, BoltContext
from slack_bolt.listener.builtins import TokenRevocationListeners
from slack_sdk import WebClient
from sqlalchemy.orm import Session

from bot import qa
from bot.routing import escalation
from bot.services import Services
from bot.slack_posts import redraw_question
from bot.text import from_slack
from handlers import home
from models.workspace import claim_event, disable_workspace

logger = logging.getLogger("peerlearn.events")

REDRAW = "peerlearn_redraw_question"  # context key: set by the store step, read by the Slack step
ANSWER_SUBTYPES = {None, "thread_broadcast", "file_share"}


def team_of(body: dict[str, Any], context: BoltContext) -> str:
    return context.team_id or body.get("team_id") or ""


def is_thread_reply_by_a_person(event: dict[str, Any]) -> bool:
    thread_ts, ts = event.get("thread_ts"), event.get("ts")
    return bool(event.get("user") and not event.get("bot_id") and ts and thread_ts and thread_ts != ts)


def register(app: App, services: Services) -> None:
    def once(body: dict[str, Any], context: BoltContext, change: Callable[[Session], int | None]) -> None:
        """Run `change` in a transaction that claims the event; remember which question to redraw."""
        team_id = team_of(body, context)
        event_id = body.get("event_id") or ""
        with services.store.session() as session:
            if event_id and not claim_event(session, team_id, event_id, services.clock.now()):
                logger.info("event %s for %s already handled; ignoring the redelivery", event_id, team_id)
                return
            question_id = change(session)
        if question_id is not None:
            context[REDRAW] = question_id

    def store_message(event: dict[str, Any], body: dict[str, Any], context: BoltContext) -> None:
        subtype = event.get("subtype")
        team_id = team_of(body, context)
        channel = event.get("channel", "")
        now = services.clock.now()

        def edit(session: Session) -> None:
            message = event.get("message") or {}
            if message.get("ts") and not message.get("bot_id"):
                qa.edit_reply(
                    session,
                    team_id=team_id,
                    channel_id=channel,
                    ts=message["ts"],
                    text=from_slack(message.get("text", "")),
                    now=now,
                )

        def delete(session: Session) -> int | None:
            deleted_ts = event.get("deleted_ts") or (event.get("previous_message") or {}).get("ts")
            return (
                qa.delete_reply(session, team_id=team_id, channel_id=channel, ts=deleted_ts, now=now)
                if deleted_ts
                else None
            )

        def reply(session: Session) -> None:
            answer = qa.record_reply(
                session,
                team_id=team_id,
                channel_id=channel,
                thread_ts=event["thread_ts"],
                ts=event["ts"],
                user_id=event["user"],
                text=from_slack(event.get("text", "")),
                now=now,
            )
            if answer is not None:
                escalation.stop_escalation(session, answer.question_id)  # answered: no round 2, no bump

        if subtype == "message_changed":
            once(body, context, edit)
        elif subtype == "message_deleted":
            once(body, context, delete)
        elif subtype in ANSWER_SUBTYPES and is_thread_reply_by_a_person(event):
            once(body, context, reply)

    def store_reaction(event: dict[str, Any], body: dict[str, Any], context: BoltContext) -> None:
        item = event.get("item") or {}
        if item.get("type") != "message":
            return

        def change(session: Session) -> int | None:
            outcome = qa.apply_reaction(
                session,
                services.settings,
                team_id=team_of(body, context),
                channel_id=item.get("channel", ""),
                ts=item.get("ts", ""),
                user_id=event.get("user", ""),
                reaction=event.get("reaction", ""),
                added=event.get("type") == "reaction_added",
                now=services.clock.now(),
                bot_user_id=context.bot_user_id,
            )
            if outcome.effect == qa.ReactionEffect.ACCEPTED and outcome.question_id is not None:
                escalation.cancel_pending(session, outcome.question_id)  # resolved: DMs not sent yet never go
            return outcome.question_id if outcome.redraw_question else None

        once(body, context, change)

    def redraw(client: WebClient, context: BoltContext) -> None:
        question_id = context.get(REDRAW)
        if question_id is not None:
            redraw_question(client, services, question_id)

    def store_uninstall(body: dict[str, Any], context: BoltContext, event: dict[str, Any]) -> None:
        reason = event.get("type", "app_uninstalled")
        # tokens_revoked may name only user tokens (we ask for none, but an admin may have granted some).
        bot_gone = reason == "app_uninstalled" or bool((event.get("tokens") or {}).get("bot"))
        installations = app.installation_store  # "Add to Slack" mode: the workspace's stored tokens
        if installations is not None:
            if bot_gone:
                installations.delete_all(enterprise_id=context.enterprise_id, team_id=team_of(body, context))
            else:
                TokenRevocationListeners(installations).handle_tokens_revoked_events(event, context)
        if not bot_gone:
            return
        with services.store.session() as session:
            disable_workspace(session, team_of(body, context), reason)
        logger.warning("workspace %s: %s; PeerLearn stops using its token", team_of(body, context), reason)

    app.event("message")(ack=store_message, lazy=[redraw])
    app.event("reaction_added")(ack=store_reaction, lazy=[redraw])
    app.event("reaction_removed")(ack=store_reaction, lazy=[redraw])
    app.event("app_uninstalled")(store_uninstall)
    app.event("tokens_revoked")(store_uninstall)
    home.register(app, services)
