"""App Home: publish the person's tab when they open it, and apply what its buttons and selects change.

Opening the tab refreshes what PeerLearn knows of the person from `users.info` (admin or owner, time zone),
then publishes the view (bot/home.py). A control's main function stores the change and acks; the tab is
published again after the ack. "I'll take it" / "Not me" belong to the routing handler (same action ids as
in its DMs); "Edit topics" opens the /teach form, whose submission handlers/teach.py handles.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from slack_bolt import Ack, App, BoltContext
from slack_sdk import WebClient
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from bot import blocks, home
from bot.experts import InvalidTeach, parse_duration, pause, resume
from bot.routing import evidence
from bot.services import Services
from bot.slack_errors import SLACK_FAILURES, error_code
from bot.workspaces import WorkspaceClient
from models.expert import declared_topics, ensure_person, remember_profile

logger = logging.getLogger("peerlearn.home")

NOTICE = "peerlearn_home_notice"  # context key: a note for the re-published tab (e.g. a refused change)
SAME_HOURS = "Working hours can't start and end at the same hour, so they were not changed."

# (session, team_id, user_id, chosen value, services) -> a notice for the tab, or None
Change = Callable[[Session, str, str, str, Services], str | None]


def publish_home(client: WebClient, services: Services, team_id: str, user_id: str, notice: str | None = None) -> None:
    """Build the person's tab from the store and publish it (call after the ack: it calls Slack). Questions from
    a private channel are listed only once Slack said the person is a member of it."""
    now = services.clock.now()
    try:
        with services.store.session() as session:
            private = home.private_channels_listed(session, team_id, user_id, now)
        slack = WorkspaceClient(client)
        readable = {channel for channel in private if evidence.reads_channel(slack, user_id, channel, private=True)}
        with services.store.session() as session:
            data = home.gather_home(
                session, services.settings, team_id, user_id, now, notice, readable_private=readable
            )
    except SQLAlchemyError:
        logger.exception("could not read App Home data for %s", user_id)
        return
    try:
        client.views_publish(user_id=user_id, view=home.home_view(data))
    except SLACK_FAILURES as exc:
        logger.warning("could not publish App Home for %s: %s", user_id, error_code(exc))


def refresh_profile(client: WebClient, services: Services, team_id: str, user_id: str) -> None:
    """Remember whether the person is a workspace admin (the analytics section), and their time zone."""
    try:
        user = client.users_info(user=user_id)["user"]
    except SLACK_FAILURES as exc:
        logger.warning("users.info for %s failed: %s; using what PeerLearn knew", user_id, error_code(exc))
        return
    with services.store.session() as session:
        remember_profile(session, team_id, user, services.clock.now())


# --- what each control changes (stored before the ack) ---------------------------------------------


def set_pause(session: Session, team_id: str, user_id: str, value: str, services: Services) -> str | None:
    try:
        duration = parse_duration(value)
    except InvalidTeach:
        return f"Unknown pause length {value!r}."
    pause(session, team_id, user_id, duration, services.clock.now())
    return None


def set_resume(session: Session, team_id: str, user_id: str, value: str, services: Services) -> str | None:
    resume(session, team_id, user_id)
    return None


def set_notify_mode(session: Session, team_id: str, user_id: str, value: str, services: Services) -> str | None:
    if value not in home.NOTIFY_CHOICES:
        return f"Unknown notification choice {value!r}."
    ensure_person(session, team_id, user_id).notify_mode = value
    return None


def set_hours(which: str) -> Change:
    def change(session: Session, team_id: str, user_id: str, value: str, services: Services) -> str | None:
        person = ensure_person(session, team_id, user_id)
        prefs = home.preferences_of(person, services.settings)
        start, end = prefs.work_start_hour, prefs.work_end_hour
        try:
            hour = int(value)
        except ValueError:
            return f"Unknown hour {value!r}."
        if which == "start":
            start = hour
        else:
            end = hour
        if not (0 <= start <= 23 and 1 <= end <= 24):
            return f"Unknown hour {value!r}."
        if start == end:
            return SAME_HOURS
        # Both are stored: the tab showed the defaults as the other end, so that is what the person chose.
        person.work_start_hour, person.work_end_hour = start, end
        return None

    return change


def chosen_value(action: dict[str, Any]) -> str:
    """The value picked (an option's, or a button's), at most as long as Slack allows an option's."""
    return str((action.get("selected_option") or {}).get("value") or action.get("value") or "")[:150]


def register(app: App, services: Services) -> None:
    def open_home(event: dict[str, Any], client: WebClient, context: BoltContext) -> None:
        team_id, user_id = context.team_id or "", event.get("user")
        if event.get("tab") != "home" or not isinstance(user_id, str) or not user_id:
            return
        try:
            refresh_profile(client, services, team_id, user_id)
        except SQLAlchemyError:
            logger.exception("could not store the profile of %s", user_id)
        publish_home(client, services, team_id, user_id)

    def republish(body: dict[str, Any], client: WebClient, context: BoltContext) -> None:
        publish_home(client, services, context.team_id or "", body["user"]["id"], context.get(NOTICE))

    def on_change(change: Change) -> Callable[..., None]:
        def store(ack: Ack, body: dict[str, Any], action: dict[str, Any], context: BoltContext) -> None:
            user_id = body["user"]["id"]
            try:
                with services.store.session() as session:
                    notice = change(session, context.team_id or "", user_id, chosen_value(action), services)
            except SQLAlchemyError:
                logger.exception("could not store a Home change (%s) for %s", action.get("action_id"), user_id)
                notice = "PeerLearn can't reach its database right now, so nothing was saved. Please try again."
            if notice:
                context[NOTICE] = notice
            ack()

        return store

    def open_topics_form(body: dict[str, Any], client: WebClient, context: BoltContext) -> None:
        user_id = body["user"]["id"]
        with services.store.session() as session:
            tags = declared_topics(session, context.team_id or "", user_id)
        try:
            client.views_open(trigger_id=body["trigger_id"], view=blocks.teach_modal(tags))
        except SLACK_FAILURES as exc:
            logger.warning("could not open the topics form from App Home: %s", error_code(exc))
            publish_home(client, services, context.team_id or "", user_id, "Slack didn't open the form; try again.")

    def ack_only(ack: Ack) -> None:
        ack()

    app.event("app_home_opened")(ack=lambda: None, lazy=[open_home])
    app.action(home.HOME_EDIT_TOPICS)(ack=ack_only, lazy=[open_topics_form])
    for action_id, change in (
        (home.HOME_PAUSE, set_pause),
        (home.HOME_RESUME, set_resume),
        (home.HOME_NOTIFY_MODE, set_notify_mode),
        (home.HOME_WORK_START, set_hours("start")),
        (home.HOME_WORK_END, set_hours("end")),
    ):
        app.action(action_id)(ack=on_change(change), lazy=[republish])
