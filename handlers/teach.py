"""/teach: declare and edit topics (command and form), pause and resume, share lessons."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any

from slack_bolt import Ack, App, BoltContext, Respond
from slack_sdk import WebClient
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from bot.experts import InvalidTeach, TeachIntent, create_lesson, parse_teach, pause, resume
from bot.home import publish_home
from bot.messages.blocks import ephemeral
from bot.messages.errors import DATABASE_DOWN, quote_back
from bot.messages.forms import ASK_ACTION_INPUT, TEACH_BLOCK_TOPICS, TEACH_MODAL, field_errors, teach_modal
from bot.messages.help import TEACH_USAGE, help_message
from bot.messages.teach import (
    NOT_PAUSED,
    RESUMED,
    lesson_message,
    paused_text,
    too_many_topics_text,
    topics_added_text,
    topics_removed_text,
    topics_text,
)
from bot.services import Services
from bot.slack_errors import SLACK_FAILURES, error_code, explain
from bot.slack_posts import post_in_channel, tell_user
from bot.text import MAX_TOPICS, command_text, not_tags_error, parse_tag_field, too_many_topics
from models.expert import declare_topics, declared_topics, ensure_person, remove_topics
from models.lesson import Lesson
from models.workspace import ensure_workspace

logger = logging.getLogger("peerlearn.teach")

INTENT = "peerlearn_teach_intent"  # context key: the ack step's parsed intent, for the lazy step
TOPICS_SAVED = "peerlearn_topics_saved"  # context key: the topics form was saved


def register(app: App, services: Services) -> None:
    settings = services.settings

    def ack_teach(ack: Ack, command: dict[str, Any], context: BoltContext) -> None:
        text = command_text(command)
        try:
            intent = parse_teach(text, settings)
        except InvalidTeach as problem:
            ack(**ephemeral(str(problem) + quote_back(text if len(text) > 80 else "")).as_kwargs())
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
                reply = apply_intent(session, services, intent, command, now)
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
        if kind == "form":
            open_teach_form(client, services, command)
        elif kind == "lesson":
            publish_lesson(client, services, command, notify=lambda note: tell(respond, note))

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
                current = declared_topics(session, team_id, user_id)
                remove_topics(session, team_id, user_id, [t for t in current if t not in wanted])
                declare_topics(session, team_id, user_id, wanted, services.clock.now())
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


def tell(respond: Respond, note: str) -> None:
    respond(text=note)


def apply_intent(
    session: Session, services: Services, intent: TeachIntent, command: dict[str, Any], now: datetime
) -> str:
    """Store what the /teach command changes; returns the ephemeral reply (empty: the lazy step speaks)."""
    team_id, user_id = command["team_id"], command["user_id"]
    if intent.kind == "declare":
        total = len({*declared_topics(session, team_id, user_id), *intent.tags})
        if total > MAX_TOPICS:
            return too_many_topics_text(total)
        added = declare_topics(session, team_id, user_id, intent.tags, now)
        return topics_added_text(added, declared_topics(session, team_id, user_id))
    if intent.kind == "remove":
        removed = remove_topics(session, team_id, user_id, intent.tags)
        return topics_removed_text(list(intent.tags), removed, declared_topics(session, team_id, user_id))
    if intent.kind == "list":
        person = ensure_person(session, team_id, user_id)
        paused = person.paused_until.strftime("%Y-%m-%d %H:%M UTC") if person.paused_until else None
        if person.paused_until and person.paused_until <= now:
            paused = None
        return topics_text(declared_topics(session, team_id, user_id), paused)
    if intent.kind == "pause":
        return paused_text(pause(session, team_id, user_id, intent.pause, now))
    if intent.kind == "resume":
        return RESUMED if resume(session, team_id, user_id) else NOT_PAUSED
    if intent.kind == "lesson":
        create_lesson(
            session,
            team_id=team_id,
            channel_id=command["channel_id"],
            author_id=user_id,
            text=intent.text,
            tags=intent.tags,
            request_key="cmd:" + command.get("trigger_id", ""),
            now=now,
        )
        return ""
    raise ValueError(f"unexpected /teach intent {intent.kind}")


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


def publish_lesson(
    client: WebClient, services: Services, command: dict[str, Any], notify: Callable[[str], None]
) -> None:
    key = "cmd:" + command.get("trigger_id", "")
    with services.store.session() as session:
        lesson = session.scalars(
            select(Lesson).where(Lesson.team_id == command["team_id"], Lesson.request_key == key)
        ).one_or_none()
        if lesson is None or lesson.message_ts is not None:
            return
        lesson_id, channel_id, text, tags = lesson.id, lesson.channel_id, lesson.text, lesson.tag_names
        author_id = lesson.author_id
    try:
        ts, private = post_in_channel(client, channel_id, lesson_message(author_id=author_id, text=text, tags=tags))
    except SLACK_FAILURES as exc:
        code = error_code(exc)
        logger.warning("lesson %s not posted in %s: %s", lesson_id, channel_id, code)
        notify(explain(code) + quote_back(text))
        return
    with services.store.session() as session:
        stored = session.get(Lesson, lesson_id)
        if stored is not None:
            stored.message_ts, stored.channel_private = ts, private
    logger.info("lesson %s posted in %s at %s", lesson_id, channel_id, ts)
