"""Lunch-and-learn sessions: `/teach session …` (handlers/teach.py hands it here), the announcement's buttons, the
host's Cancel and "Share notes" (and its form), and the admin's "Invite" on App Home.

Each listener stores what it changes before the ack (bot/sessions.py, database only) and talks to Slack after
it: announcements posted, counts redrawn, DMs sent, the lesson posted.
"""

from __future__ import annotations

import logging
import re
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from slack_bolt import Ack, App, BoltContext, Respond
from slack_sdk import WebClient
from sqlalchemy.exc import SQLAlchemyError

from bot import sessions
from bot.home import publish_home, refresh_profile
from bot.messages.blocks import ephemeral
from bot.messages.errors import DATABASE_DOWN, explain, quote_back
from bot.messages.forms import field_errors
from bot.messages.sessions import (
    ACTION_CANCEL,
    ACTION_CANT_MAKE_IT,
    ACTION_INVITE,
    ACTION_SHARE_NOTES,
    ACTION_SIGN_UP,
    ALREADY_CANCELLED,
    CANCELLED_NOTE,
    NOT_GOING,
    NOT_THE_HOST,
    NOTES_ALREADY,
    NOTES_BLOCK,
    NOTES_INPUT,
    NOTES_MISSING,
    NOTES_MODAL,
    NOTES_THANKS,
    ONE_TAG,
    SESSION_GONE,
    SIGNED_UP,
    USAGE,
    announced_text,
    invited_note,
    notes_modal,
    sessions_list,
)
from bot.routing.delivery import dm
from bot.services import Services
from bot.session_time import InvalidWhen, parse_schedule
from bot.slack_errors import SLACK_FAILURES, error_code
from bot.slack_posts import tell_user
from bot.teach import publish_lesson
from bot.text import has_words, parse_tagged_text
from bot.workspaces import WorkspaceClient
from models.base import parse_row_id
from models.expert import Person
from models.workspace import ensure_workspace

logger = logging.getLogger("peerlearn.sessions")

STORED = "peerlearn_session_stored"  # context key: what the ack step stored (the lazy step's work)
LIST_WORDS = {"", "list"}
INVITE_REASON = "questions on it wait for a go-to person"


def is_session_command(word: str) -> bool:
    """`/teach session …` / `/teach sessions` (handlers/teach.py asks before its own parsing)."""
    return word.lower() in ("session", "sessions")


def request_key(command: dict[str, Any]) -> str:
    return "session:" + command.get("trigger_id", "")


def _zone(services: Services, client: WebClient, team_id: str, user_id: str) -> ZoneInfo:
    """The host's time zone, from users.info (asked when PeerLearn does not know it yet)."""
    with services.store.session() as session:
        person = session.get(Person, (team_id, user_id))
        tz = person.tz if person is not None and person.profile_fetched_at is not None else None
    if tz is None:
        refresh_profile(client, services, team_id, user_id)
        with services.store.session() as session:
            person = session.get(Person, (team_id, user_id))
            tz = person.tz if person is not None else None
    try:
        return ZoneInfo(tz or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def ack_session_command(
    ack: Ack, command: dict[str, Any], client: WebClient, context: BoltContext, services: Services, text: str
) -> None:
    """`text`: the command's text after `session(s)`. Lists, or stores the session and acks (its announcements
    go out after the ack, in after_session_command)."""
    team_id, user_id, now = command["team_id"], command["user_id"], services.clock.now()
    rest = text.partition(" ")[2].strip()
    if rest.lower() in LIST_WORDS:
        try:
            with services.store.session() as session:
                listed = sessions.upcoming(session, team_id, user_id, now)
        except SQLAlchemyError:
            logger.exception("could not list sessions for %s", user_id)
            ack(**ephemeral(DATABASE_DOWN).as_kwargs())
            return
        ack(**sessions_list(listed, user_id).as_kwargs())
        return
    parsed = parse_tagged_text(rest, services.settings.tag_aliases)
    if len(parsed.tags) != 1:
        ack(**ephemeral(ONE_TAG + "\n" + USAGE + quote_back(text)).as_kwargs())
        return
    words = re.sub(r"(?<!\S)#\S+", " ", parsed.text)
    try:
        scheduled = parse_schedule(words, now, _zone(services, client, team_id, user_id))
    except InvalidWhen as problem:
        ack(**ephemeral(str(problem) + quote_back(text)).as_kwargs())
        return
    if not has_words(scheduled.title):
        ack(**ephemeral("Give the session a title of a few words.\n" + USAGE + quote_back(text)).as_kwargs())
        return
    try:
        with services.store.session() as session:
            ensure_workspace(session, team_id, now)
            sessions.create_session(
                session,
                team_id=team_id,
                host_id=user_id,
                tag=parsed.tags[0],
                scheduled=scheduled,
                channel_id=command["channel_id"],
                request_key=request_key(command),
                now=now,
            )
    except SQLAlchemyError:
        logger.exception("could not store a session from %s", user_id)
        ack(**ephemeral(DATABASE_DOWN + quote_back(text)).as_kwargs())
        return
    context[STORED] = True
    ack()


def after_session_command(
    command: dict[str, Any], client: WebClient, respond: Respond, context: BoltContext, services: Services
) -> None:
    """Post the announcements, then tell the host where they went."""
    if not context.get(STORED):
        return
    with services.store.session() as session:
        row = sessions.session_by_request(session, command["team_id"], request_key(command))
        if row is None:
            return
        session_id = row.id
    channels = sessions.post_announcements(WorkspaceClient(client), services, session_id)
    with services.store.session() as session:
        row = sessions.session_by_request(session, command["team_id"], request_key(command))
        assert row is not None
        shown = sessions.shown(session, row)
    respond(response_type="ephemeral", text=announced_text(shown, channels))


def register(app: App, services: Services) -> None:
    def now() -> Any:
        return services.clock.now()

    def channel_of(body: dict[str, Any]) -> str | None:
        return (body.get("channel") or {}).get("id")

    # --- "Sign me up" / "Can't make it" ---

    def store_answer(going: bool) -> Any:
        def store(ack: Ack, body: dict[str, Any], action: dict[str, Any], context: BoltContext) -> None:
            session_id = parse_row_id(str(action.get("value") or ""))
            outcome = sessions.GONE
            try:
                if session_id is not None:
                    with services.store.session() as session:
                        outcome = sessions.record_answer(session, session_id, body["user"]["id"], going, now())
            except SQLAlchemyError:
                logger.exception("could not store a session answer")
                outcome = "failed"
            context[STORED] = (session_id, outcome)
            ack()

        return store

    def after_answer(body: dict[str, Any], client: WebClient, context: BoltContext) -> None:
        session_id, outcome = context.get(STORED) or (None, "failed")
        notes = {sessions.SIGNED_UP: SIGNED_UP, sessions.NOT_GOING: NOT_GOING, sessions.GONE: SESSION_GONE}
        if outcome == "failed":
            note = DATABASE_DOWN
        elif outcome == sessions.UNCHANGED:
            going = (body.get("actions") or [{}])[0].get("action_id") == ACTION_SIGN_UP
            note = SIGNED_UP if going else NOT_GOING
        else:
            note = notes[outcome]
        if session_id is not None and outcome in (sessions.SIGNED_UP, sessions.NOT_GOING):
            sessions.redraw_announcements(WorkspaceClient(client), services, session_id)
        tell_user(client, channel_id=channel_of(body), user_id=body["user"]["id"], text=note)

    app.action(ACTION_SIGN_UP)(ack=store_answer(True), lazy=[after_answer])
    app.action(ACTION_CANT_MAKE_IT)(ack=store_answer(False), lazy=[after_answer])

    # --- the host's Cancel (in `/teach sessions`) ---

    def store_cancel(ack: Ack, body: dict[str, Any], action: dict[str, Any], context: BoltContext) -> None:
        session_id = parse_row_id(str(action.get("value") or ""))
        outcome = "gone"
        try:
            if session_id is not None:
                with services.store.session() as session:
                    outcome = sessions.cancel(session, session_id, body["user"]["id"], now())
        except SQLAlchemyError:
            logger.exception("could not cancel a session")
            outcome = "failed"
        context[STORED] = (session_id, outcome)
        ack()

    def after_cancel(body: dict[str, Any], client: WebClient, respond: Respond, context: BoltContext) -> None:
        session_id, outcome = context.get(STORED) or (None, "failed")
        slack = WorkspaceClient(client)
        if outcome == "cancelled" and session_id is not None:
            sessions.redraw_announcements(slack, services, session_id)
            sessions.tell_cancelled(slack, services, session_id, now())
        note = {
            "cancelled": CANCELLED_NOTE,
            "already": ALREADY_CANCELLED,
            "not_host": NOT_THE_HOST,
            "gone": SESSION_GONE,
        }.get(outcome, DATABASE_DOWN)
        if body.get("response_url"):
            respond(replace_original=True, response_type="ephemeral", **ephemeral(note).as_kwargs())
        else:
            tell_user(client, channel_id=channel_of(body), user_id=body["user"]["id"], text=note)

    app.action(ACTION_CANCEL)(ack=store_cancel, lazy=[after_cancel])

    # --- "Share notes" (the host's DM after the session) and its form ---

    def ack_share(ack: Ack) -> None:
        ack()

    def open_notes(body: dict[str, Any], action: dict[str, Any], client: WebClient) -> None:
        session_id = parse_row_id(str(action.get("value") or ""))
        user_id = body["user"]["id"]
        with services.store.session() as session:
            shown = sessions.notes_session(session, session_id, user_id) if session_id is not None else None
            lesson = sessions.lesson_of(session, session_id) if session_id is not None else None
        if shown is None or lesson is not None:
            tell_user(
                client, channel_id=channel_of(body), user_id=user_id, text=NOTES_ALREADY if lesson else SESSION_GONE
            )
            return
        try:
            client.views_open(trigger_id=body["trigger_id"], view=notes_modal(shown))
        except SLACK_FAILURES as exc:
            logger.warning("could not open the session notes form: %s", error_code(exc))
            tell_user(client, channel_id=channel_of(body), user_id=user_id, text=explain(error_code(exc)))

    app.action(ACTION_SHARE_NOTES)(ack=ack_share, lazy=[open_notes])

    def ack_notes(ack: Ack, body: dict[str, Any], view: dict[str, Any], context: BoltContext) -> None:
        notes = (
            (view.get("state", {}).get("values", {}).get(NOTES_BLOCK, {}).get(NOTES_INPUT, {}) or {}).get("value") or ""
        ).strip()
        if not has_words(notes):
            ack(**field_errors({NOTES_BLOCK: NOTES_MISSING}))
            return
        session_id = parse_row_id(str(view.get("private_metadata") or ""))
        try:
            with services.store.session() as session:
                key = (
                    sessions.save_notes(session, session_id, body["user"]["id"], notes, now())
                    if session_id is not None
                    else None
                )
                tag = sessions.lesson_tag(session, session_id) if session_id is not None else None
        except SQLAlchemyError:
            logger.exception("could not store session notes")
            ack(**field_errors({NOTES_BLOCK: DATABASE_DOWN}))
            return
        context[STORED] = (key, tag)
        ack()

    def after_notes(body: dict[str, Any], view: dict[str, Any], client: WebClient, context: BoltContext) -> None:
        key, tag = context.get(STORED) or (None, None)
        user_id = body["user"]["id"]
        team_id = (body.get("team") or {}).get("id") or view.get("team_id", "")
        slack = WorkspaceClient(client)
        if key is None:
            dm(slack, user_id, ephemeral(NOTES_ALREADY))
            return

        def notify(note: str) -> None:
            dm(slack, user_id, ephemeral(note))

        publish_lesson(client, services, team_id, key, notify=notify)
        dm(slack, user_id, ephemeral(NOTES_THANKS.format(tag=tag)))

    app.view(NOTES_MODAL)(ack=ack_notes, lazy=[after_notes])

    # --- "Invite" on a proposal (the admin's App Home) ---

    def ack_invite(ack: Ack) -> None:
        ack()

    def invite(body: dict[str, Any], action: dict[str, Any], client: WebClient, context: BoltContext) -> None:
        team_id, user_id, tag = context.team_id or "", body["user"]["id"], str(action.get("value") or "")[:64]
        with services.store.session() as session:
            person = session.get(Person, (team_id, user_id))
            is_admin = person is not None and person.is_admin and not person.deleted
        if not is_admin or not tag:
            return  # only admins see the button; anyone else's click changes nothing
        invited, already = sessions.invite(
            WorkspaceClient(client), services, team_id, tag, user_id, INVITE_REASON, now()
        )
        publish_home(client, services, team_id, user_id, invited_note(tag, invited, already))

    app.action(ACTION_INVITE)(ack=ack_invite, lazy=[invite])
