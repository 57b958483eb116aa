"""/teach: declare and edit topics (command and form), pause and resume, share lessons."""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt import Ack, App, BoltContext, Respond
from slack_sdk import WebClient
from sqlalchemy.exc import SQLAlchemyError

from bot import onboarding
from bot.experts import InvalidTeach, parse_teach
from bot.home import publish_home
from bot.mentoring_text import mentor_command
from bot.messages.blocks import ephemeral
from bot.messages.errors import DATABASE_DOWN, explain, quote_back, refused
from bot.messages.forms import ASK_ACTION_INPUT, TEACH_BLOCK_TOPICS, TEACH_MODAL, field_errors, teach_modal
from bot.messages.help import TEACH_USAGE, help_message
from bot.services import Services
from bot.slack_errors import SLACK_FAILURES, error_code
from bot.slack_posts import tell_user
from bot.teach import apply_intent, publish_lesson, replace_topics
from bot.text import MAX_TOPICS, command_text, not_tags_error, parse_tag_field, too_many_topics
from handlers import mentoring, sessions
from handlers.onboarding import BUDDY, ack_buddy, pair_now
from models.expert import declared_topics
from models.workspace import ensure_workspace

logger = logging.getLogger("peerlearn.teach")

INTENT = "peerlearn_teach_intent"  # context key: the ack step's parsed intent, for the lazy step
TOPICS_SAVED = "peerlearn_topics_saved"  # context key: the topics form was saved


def register(app: App, services: Services) -> None:
    settings = services.settings

    def ack_teach(ack: Ack, command: dict[str, Any], context: BoltContext, client: WebClient) -> None:
        text = command_text(command)
        if onboarding.is_buddy_command(text):  # `/teach buddy`: handlers/onboarding.py
            context[INTENT] = BUDDY if ack_buddy(ack, command, text, services) else None
            return
        if sessions.is_session_command(text.partition(" ")[0]):  # lunch-and-learn sessions: handlers/sessions.py
            context[INTENT] = "session"
            sessions.ack_session_command(ack, command, client, context, services, text)
            return
        if (mentor := mentor_command(text)) is not None:
            mentoring.ack_offer(ack, command, context, services, mentor)
            return
        try:
            intent = parse_teach(text, settings)
        except InvalidTeach as problem:
            ack(**ephemeral(refused(problem, text)).as_kwargs())
            return
        if intent.kind == "help":
            ack(**help_message(TEACH_USAGE).as_kwargs())
            return
        if intent.kind == "form":
            context[INTENT] = intent.kind
            ack()
            return
        team_id, user_id = command["team_id"], command["user_id"]
        try:
            with services.store.session() as session:
                now = services.clock.now()
                ensure_workspace(session, team_id, now)
                reply = apply_intent(
                    session,
                    intent,
                    team_id=team_id,
                    user_id=user_id,
                    channel_id=command["channel_id"],
                    request_key=lesson_key(command),
                    now=now,
                )
        except SQLAlchemyError:
            logger.exception("could not store /teach from %s", user_id)
            ack(**ephemeral(DATABASE_DOWN + quote_back(text)).as_kwargs())
            return
        context[INTENT] = intent.kind
        if reply:
            ack(**ephemeral(reply).as_kwargs())
        else:
            ack()

    def after_teach(command: dict[str, Any], client: WebClient, respond: Respond, context: BoltContext) -> None:
        kind = context.get(INTENT)
        if kind == "session":
            sessions.after_session_command(command, client, respond, context, services)
        elif mentor_command(command_text(command)) is not None:
            mentoring.after_offer(command, client, context, services)
        elif kind == "form":
            open_teach_form(client, services, command)
        elif kind == BUDDY:
            pair_now(client, services, command["team_id"])
        elif kind == "lesson":
            publish_lesson(
                client, services, command["team_id"], lesson_key(command), notify=lambda note: tell(respond, note)
            )

    def ack_teach_form(ack: Ack, body: dict[str, Any], view: dict[str, Any], context: BoltContext) -> None:
        raw = (
            view.get("state", {}).get("values", {}).get(TEACH_BLOCK_TOPICS, {}).get(ASK_ACTION_INPUT, {}).get("value")
        ) or ""
        wanted, not_tags = parse_tag_field(raw, settings.tag_aliases)
        if not_tags:
            ack(**field_errors({TEACH_BLOCK_TOPICS: not_tags_error(not_tags)}))
            return
        team_id = (body.get("team") or {}).get("id") or view.get("team_id", "")
        user_id = body["user"]["id"]
        if len(wanted) > MAX_TOPICS:
            ack(**field_errors({TEACH_BLOCK_TOPICS: too_many_topics(len(wanted))}))
            return
        try:
            with services.store.session() as session:
                replace_topics(session, team_id, user_id, wanted, services.clock.now())
        except SQLAlchemyError:
            logger.exception("could not store the topics form of %s", user_id)
            ack(**field_errors({TEACH_BLOCK_TOPICS: DATABASE_DOWN}))
            return
        context[TOPICS_SAVED] = True
        ack()

    def refresh_home(body: dict[str, Any], client: WebClient, context: BoltContext) -> None:
        """The form is also opened from the App Home: show the new topics there."""
        if context.get(TOPICS_SAVED):
            team_id = (body.get("team") or {}).get("id") or context.team_id or ""
            publish_home(client, services, team_id, body["user"]["id"])

    app.command("/teach")(ack=ack_teach, lazy=[after_teach])
    app.view(TEACH_MODAL)(ack=ack_teach_form, lazy=[refresh_home])


def lesson_key(command: dict[str, Any]) -> str:
    """The request key a lesson is stored under: one lesson per /teach command, however often it arrives."""
    return "cmd:" + command.get("trigger_id", "")


def tell(respond: Respond, note: str) -> None:
    respond(text=note)


def open_teach_form(client: WebClient, services: Services, command: dict[str, Any]) -> None:
    with services.store.session() as session:
        tags = declared_topics(session, command["team_id"], command["user_id"])
    try:
        client.views_open(trigger_id=command["trigger_id"], view=teach_modal(tags))
    except SLACK_FAILURES as exc:
        logger.warning("could not open the /teach form: %s", error_code(exc))
        tell_user(
            client, channel_id=command.get("channel_id"), user_id=command["user_id"], text=explain(error_code(exc))
        )
