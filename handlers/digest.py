"""`/ask digest on | off | at … | empty note|skip | preview | help`: a channel's weekly digest.

Dispatched from /ask (handlers/commands.py). The ack step stores the change and confirms ephemerally
(no Slack calls); the lazy step talks to Slack: it learns the subscriber's time zone (users.info) when
the channel has none yet, warns when the bot is not in the channel (conversations.info), and builds
the preview.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from slack_bolt import Ack, Respond
from slack_sdk import WebClient
from sqlalchemy.exc import SQLAlchemyError

from bot.digest.content import as_preview
from bot.digest.posting import preview
from bot.digest.schedule import (
    ScheduleChange,
    ScheduleError,
    current_schedule,
    learn_timezone,
    next_slot,
    parse_schedule,
    schedule_of,
    set_empty_weeks,
    subscribe,
    unsubscribe,
    workspace_timezone,
)
from bot.messages.blocks import ephemeral
from bot.messages.digest_command import (
    DIGEST_IS_OFF,
    DIGEST_USAGE,
    EMPTY_USAGE,
    NOT_A_CHANNEL,
    NOT_IN_CHANNEL,
    NOT_RUNNING,
    QUIET_WEEK_NOTE,
    QUIET_WEEK_NOTHING,
    STOPPED,
    status_text,
    subscribed_text,
)
from bot.messages.errors import DATABASE_DOWN
from bot.messages.help import help_message
from bot.services import Services
from bot.slack_errors import SLACK_FAILURES, error_code
from bot.text import clean
from bot.workspaces import WorkspaceClients
from models.digest import DigestSubscription
from models.expert import Person
from models.workspace import ensure_workspace

logger = logging.getLogger("peerlearn.digest")

ALONE = {"on", "off", "preview", "status", "help"}  # subcommands that take no more words


@dataclass(frozen=True)
class DigestCommand:
    action: str  # on, off, at, empty, preview, status, help
    argument: str = ""


def parse_digest_command(text: str) -> DigestCommand | None:
    """`digest …` as a settings command, or None when it is a question that starts with "digest"."""
    words = clean(text).split()
    if not words or words[0].lower() != "digest":
        return None
    if len(words) == 1:
        return DigestCommand("status")
    action = words[1].lower()
    if action in ALONE and len(words) == 2:
        return DigestCommand(action)
    if action == "at":
        return DigestCommand("at", " ".join(words[2:]))
    if action == "empty" and len(words) == 3:
        return DigestCommand("empty", words[2].lower())
    return None


def in_a_channel(command: dict[str, Any]) -> bool:
    channel_id = command.get("channel_id") or ""
    name = command.get("channel_name") or ""
    return (
        bool(channel_id) and not channel_id.startswith("D") and name != "directmessage" and not name.startswith("mpdm-")
    )


def _reply(ack: Ack, text: str) -> None:
    ack(**ephemeral(text).as_kwargs())


def ack_digest(ack: Ack, command: dict[str, Any], services: Services, request: DigestCommand) -> None:
    """Store the change and confirm it; the preview and Slack lookups happen in `after_digest`."""
    if request.action == "help":
        ack(**help_message(DIGEST_USAGE).as_kwargs())
        return
    if not in_a_channel(command):
        _reply(ack, NOT_A_CHANNEL)
        return
    if request.action == "preview":
        ack()  # built after the ack: it needs the workspace's URL for links
        return
    change: ScheduleChange | None = None
    if request.action == "at":
        try:
            change = parse_schedule(request.argument)
        except ScheduleError as problem:
            _reply(ack, str(problem))
            return
    if request.action == "empty" and request.argument not in ("note", "skip"):
        _reply(ack, EMPTY_USAGE)
        return
    team_id, channel_id, user_id = command["team_id"], command["channel_id"], command["user_id"]
    try:
        with services.store.session() as session:
            now = services.clock.now()
            ensure_workspace(session, team_id, now)
            workspace_tz = workspace_timezone(session, team_id)
            if request.action in ("on", "at"):
                person = session.get(Person, (team_id, user_id))
                subscription = subscribe(
                    session,
                    team_id=team_id,
                    channel_id=channel_id,
                    user_id=user_id,
                    now=now,
                    change=change,
                    timezone_hint=person.tz if person else None,
                )
                text = _subscribed(subscription, workspace_tz, now, moved=request.action == "at")
            elif request.action == "off":
                stopped = unsubscribe(session, team_id=team_id, channel_id=channel_id, now=now)
                text = STOPPED if stopped else NOT_RUNNING
            elif request.action == "empty":
                post = request.argument == "note"
                subscription = set_empty_weeks(
                    session, team_id=team_id, channel_id=channel_id, user_id=user_id, now=now, post=post
                )
                text = QUIET_WEEK_NOTE if post else QUIET_WEEK_NOTHING
                if not subscription.enabled:
                    text += DIGEST_IS_OFF
            else:
                _, subscription_or_none = current_schedule(session, team_id, channel_id)
                text = _status(subscription_or_none, workspace_tz)
    except SQLAlchemyError:
        logger.exception("could not store digest settings for %s in %s", channel_id, team_id)
        _reply(ack, DATABASE_DOWN)
        return
    _reply(ack, text)


def _subscribed(subscription: DigestSubscription, workspace_tz: str | None, now: datetime, *, moved: bool) -> str:
    schedule = schedule_of(subscription, workspace_tz)
    if subscription.timezone is None:
        return subscribed_text(f"{schedule.describe(with_zone=False)}, in your time zone", None, moved=moved)
    return subscribed_text(schedule.describe(), next_slot(schedule, now).astimezone(schedule.zone), moved=moved)


def _status(subscription: DigestSubscription | None, workspace_tz: str | None) -> str:
    if subscription is None or not subscription.enabled:
        return status_text(None, post_when_empty=False)
    return status_text(schedule_of(subscription, workspace_tz).describe(), subscription.post_when_empty)


def after_digest(
    command: dict[str, Any], client: WebClient, respond: Respond, services: Services, request: DigestCommand
) -> None:
    """The Slack side of /ask digest, after the ack."""
    if not in_a_channel(command):
        return
    team_id, channel_id, user_id = command["team_id"], command["channel_id"], command["user_id"]
    if request.action == "preview":
        send_preview(client, respond, services, team_id, channel_id)
    elif request.action in ("on", "at"):
        learn_subscriber_timezone(client, services, team_id, channel_id, user_id)
        warn_if_not_member(client, respond, channel_id)


def send_preview(client: WebClient, respond: Respond, services: Services, team_id: str, channel_id: str) -> None:
    try:
        now = services.clock.now()
        message = preview(services, team_id, channel_id, now, WorkspaceClients(client).base_url(team_id))
        with services.store.session() as session:
            schedule, subscription = current_schedule(session, team_id, channel_id)
    except SQLAlchemyError:
        logger.exception("could not build a digest preview for %s in %s", channel_id, team_id)
        respond(text=DATABASE_DOWN, response_type="ephemeral")
        return
    shown = as_preview(message, schedule if subscription is not None and subscription.enabled else None)
    respond(response_type="ephemeral", **shown.as_kwargs())


def learn_subscriber_timezone(
    client: WebClient, services: Services, team_id: str, channel_id: str, user_id: str
) -> None:
    """A new subscription without a time zone takes the subscriber's (the closest Slack has to a workspace's)."""
    try:
        with services.store.session() as session:
            _, subscription = current_schedule(session, team_id, channel_id)
            if subscription is None or subscription.timezone is not None:
                return
        user = client.users_info(user=user_id)["user"]
        with services.store.session() as session:
            learn_timezone(session, team_id=team_id, channel_id=channel_id, timezone=user.get("tz"))
    except SLACK_FAILURES as exc:
        logger.warning("could not read %s's time zone (%s); the digest keeps the workspace's", user_id, error_code(exc))
    except SQLAlchemyError:
        logger.exception("could not store the digest time zone for %s in %s", channel_id, team_id)


def warn_if_not_member(client: WebClient, respond: Respond, channel_id: str) -> None:
    try:
        member = bool(client.conversations_info(channel=channel_id)["channel"].get("is_member"))
    except SLACK_FAILURES as exc:
        code = error_code(exc)
        if code not in ("channel_not_found", "not_in_channel"):
            logger.warning("could not check membership of %s: %s", channel_id, code)
            return
        member = False  # a private channel the bot is not in looks like no channel at all
    if not member:
        respond(text=NOT_IN_CHANNEL, response_type="ephemeral")
