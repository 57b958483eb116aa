"""Mentoring's Slack surface: `/teach mentor …` and `/ask mentor …` (handed over by handlers/teach.py and
handlers/commands.py), and the group DM's and App Home's buttons (Still meeting, We're done / End, Pause,
Resume). Each stores before the ack; Slack is spoken to after it (bot/mentoring.py decides)."""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt import Ack, App, BoltContext, Respond
from slack_sdk import WebClient
from sqlalchemy.exc import SQLAlchemyError

from bot import mentoring
from bot.asking import request_key
from bot.home import publish_home
from bot.mentoring_text import InvalidMentoring, mentor_command, parse_offer, parse_request
from bot.messages.blocks import ephemeral
from bot.messages.errors import DATABASE_DOWN, quote_back, refused
from bot.messages.mentoring import (
    ACTION_END,
    ACTION_PAUSE,
    ACTION_RESUME,
    ACTION_STILL_MEETING,
    already_paired,
    already_waiting,
    matched_text,
    offer_saved,
    waiting_text,
)
from bot.services import Services
from bot.slack_errors import SLACK_FAILURES, error_code
from bot.text import command_text
from bot.workspaces import WorkspaceClient
from models.base import parse_row_id
from models.mentoring import MentorPairing
from models.workspace import ensure_workspace

logger = logging.getLogger("peerlearn.mentoring")

OFFERED = "peerlearn_mentor_offered"  # context key: the tags just offered (the lazy step matches on them)
REQUESTED = "peerlearn_mentor_request"  # context key: the request just stored
CHANGED = "peerlearn_mentoring_changed"  # context key: what a button changed


def ack_offer(ack: Ack, command: dict[str, Any], context: BoltContext, services: Services, rest: str) -> None:
    """`/teach mentor #tag up to N people`: stored, then the waiting requests on those tags are matched."""
    try:
        offer = parse_offer(rest, services.settings.tag_aliases)
    except InvalidMentoring as problem:
        ack(**ephemeral(refused(problem, command_text(command))).as_kwargs())
        return
    team_id, user_id = command["team_id"], command["user_id"]
    try:
        with services.store.session() as session:
            ensure_workspace(session, team_id, services.clock.now())
            mentoring.store_offer(session, team_id, user_id, offer, services.clock.now())
    except SQLAlchemyError:
        logger.exception("could not store a mentoring offer of %s", user_id)
        ack(**ephemeral(DATABASE_DOWN + quote_back(command.get("text") or "")).as_kwargs())
        return
    context[OFFERED] = list(offer.tags)
    ack(**ephemeral(offer_saved(list(offer.tags), offer.capacity)).as_kwargs())


def after_offer(command: dict[str, Any], client: WebClient, context: BoltContext, services: Services) -> None:
    tags = context.get(OFFERED)
    if tags:
        mentoring.match_waiting(WorkspaceClient(client), services, command["team_id"], tags)


def ack_request(ack: Ack, command: dict[str, Any], context: BoltContext, services: Services, rest: str) -> None:
    """`/ask mentor #tag`: the request stored (once per command), then matched after the ack."""
    try:
        tag = parse_request(rest, services.settings.tag_aliases)
    except InvalidMentoring as problem:
        ack(**ephemeral(refused(problem, command_text(command))).as_kwargs())
        return
    team_id, user_id = command["team_id"], command["user_id"]
    try:
        with services.store.session() as session:
            now = services.clock.now()
            ensure_workspace(session, team_id, now)
            stored = mentoring.store_request(
                session, team_id, user_id, tag, command["channel_id"], request_key(command), now
            )
    except SQLAlchemyError:
        logger.exception("could not store a mentoring request of %s", user_id)
        ack(**ephemeral(DATABASE_DOWN + quote_back(command.get("text") or "")).as_kwargs())
        return
    context[REQUESTED] = stored
    ack()  # the answer comes after the ack (with the HTTP server, the request may wait in the inbox first)


def after_request(
    command: dict[str, Any], client: WebClient, respond: Respond, context: BoltContext, services: Services
) -> None:
    stored: mentoring.Stored | None = context.get(REQUESTED)
    if stored is None:
        return
    tag = parse_request(mentor_command(command_text(command)) or "", services.settings.tag_aliases)
    if stored.mentor_id is not None:
        respond(text=already_paired(tag, stored.mentor_id), replace_original=False)
        return
    if stored.waiting or stored.request_id is None:
        respond(text=already_waiting(tag), replace_original=False)
        return
    pairing_id = mentoring.find_mentor(WorkspaceClient(client), services, stored.request_id)
    with services.store.session() as session:
        pairing = session.get(MentorPairing, pairing_id) if pairing_id is not None else None
        mentor_id = pairing.mentor_id if pairing is not None else None
    respond(text=matched_text(tag, mentor_id) if mentor_id else waiting_text(tag), replace_original=False)


def register(app: App, services: Services) -> None:
    def store_click(ack: Ack, body: dict[str, Any], action: dict[str, Any], context: BoltContext) -> None:
        user_id = body["user"]["id"]
        pairing_id = parse_row_id(str(action.get("value") or ""))
        changed = None
        if pairing_id is not None:
            try:
                with services.store.session() as session:
                    changed = mentoring.apply_button(
                        session, action["action_id"], pairing_id, user_id, services.clock.now()
                    )
            except SQLAlchemyError:
                logger.exception("could not store a mentoring click of %s", user_id)
                ack()
                return
        context[CHANGED] = changed
        ack()

    def after_click(body: dict[str, Any], client: WebClient, context: BoltContext) -> None:
        changed: mentoring.Changed | None = context.get(CHANGED)
        user_id = body["user"]["id"]
        from_home = (body.get("container") or {}).get("type") == "view"
        if changed is None:  # a double click, or a pairing that ended meanwhile: the tab shows how it is now
            if from_home:
                publish_home(client, services, context.team_id or "", user_id)
            return
        slack = WorkspaceClient(client)
        if changed.channel_id is not None:
            try:
                client.chat_postMessage(channel=changed.channel_id, **changed.message.as_kwargs())
            except SLACK_FAILURES as exc:
                logger.warning("mentoring note not posted in %s: %s", changed.channel_id, error_code(exc))
        if changed.ended is not None:  # a place is free again: someone waiting on the tag may have it
            mentoring.match_waiting(slack, services, changed.team_id, [changed.ended.tag])
        if from_home:
            publish_home(client, services, changed.team_id, user_id)

    for action_id in (ACTION_STILL_MEETING, ACTION_END, ACTION_PAUSE, ACTION_RESUME):
        app.action(action_id)(ack=store_click, lazy=[after_click])
