"""App Home: publish the person's tab when they open it, and apply what its buttons and selects change.

Opening the tab refreshes what PeerLearn knows of the person from `users.info` (admin or owner, time zone),
then publishes the view (bot/home.py). A control's main function stores the change and acks; the tab is
published again after the ack. "I'll take it" / "Not me" belong to the routing handler (same action ids as
in its DMs); "Edit topics" opens the /teach form, whose submission handlers/teach.py handles.

"Search answers" opens the search form; its submission closes it and the tab is published again with the
results at its top (public channels only: bot/searching.py). Their "Ask it as a question" opens the /ask form
with the words filled in, where the person picks the channel; handlers/views.py posts it (one question per
form).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

from slack_bolt import Ack, App, BoltContext
from slack_sdk import WebClient
from sqlalchemy.exc import SQLAlchemyError

from bot import home, searching
from bot.messages.errors import DATABASE_DOWN
from bot.messages.forms import ask_modal, field_errors, teach_modal
from bot.messages.home import (
    FORM_NOT_OPENED,
    HOME_EDIT_TOPICS,
    HOME_NOTIFY_MODE,
    HOME_PAUSE,
    HOME_RESUME,
    HOME_WORK_DAYS,
    HOME_WORK_END,
    HOME_WORK_START,
)
from bot.messages.search import (
    ACTION_HOME_ASK_SEARCHED,
    ACTION_HOME_SEARCH,
    SEARCH_ACTION_TERMS,
    SEARCH_BLOCK_TERMS,
    SEARCH_DATABASE_DOWN,
    SEARCH_MODAL,
    TERMS_MISSING,
    search_modal,
)
from bot.services import Services
from bot.slack_errors import SLACK_FAILURES, error_code
from bot.text import clean
from bot.workspaces import WorkspaceClient
from models.expert import declared_topics

logger = logging.getLogger("peerlearn.home")

NOTICE = "peerlearn_home_notice"  # context key: a note for the re-published tab (e.g. a refused change)


def chosen_value(action: dict[str, Any]) -> str:
    """The value picked (an option's, or a button's), at most as long as Slack allows an option's; for
    checkboxes, the values of the options ticked, comma-separated."""
    if "selected_options" in action:
        return ",".join(str((option or {}).get("value") or "") for option in action["selected_options"][:10])[:150]
    return str((action.get("selected_option") or {}).get("value") or action.get("value") or "")[:150]


def searched_terms(view: dict[str, Any]) -> str:
    """What the person typed in the search form."""
    state = view.get("state", {}).get("values", {}).get(SEARCH_BLOCK_TERMS, {}).get(SEARCH_ACTION_TERMS, {})
    return clean(str(state.get("value") or ""))


def register(app: App, services: Services) -> None:
    def open_home(event: dict[str, Any], client: WebClient, context: BoltContext) -> None:
        team_id, user_id = context.team_id or "", event.get("user")
        if event.get("tab") != "home" or not isinstance(user_id, str) or not user_id:
            return
        try:
            home.refresh_profile(client, services, team_id, user_id)
        except SQLAlchemyError:
            logger.exception("could not store the profile of %s", user_id)
        home.publish_home(client, services, team_id, user_id)

    def republish(body: dict[str, Any], client: WebClient, context: BoltContext) -> None:
        home.publish_home(client, services, context.team_id or "", body["user"]["id"], context.get(NOTICE))

    def on_change(change: home.Change) -> Callable[..., None]:
        def store(ack: Ack, body: dict[str, Any], action: dict[str, Any], context: BoltContext) -> None:
            user_id = body["user"]["id"]
            try:
                with services.store.session() as session:
                    notice = change(session, context.team_id or "", user_id, chosen_value(action), services)
            except SQLAlchemyError:
                logger.exception("could not store a Home change (%s) for %s", action.get("action_id"), user_id)
                notice = DATABASE_DOWN
            if notice:
                context[NOTICE] = notice
            ack()

        return store

    def open_form(body: dict[str, Any], client: WebClient, context: BoltContext, view: dict[str, Any]) -> None:
        """Open a form from the tab (after the ack; its trigger_id lasts 3 s); the tab says so when Slack won't."""
        try:
            client.views_open(trigger_id=body["trigger_id"], view=view)
        except SLACK_FAILURES as exc:
            logger.warning("could not open %s from App Home: %s", view.get("callback_id"), error_code(exc))
            home.publish_home(client, services, context.team_id or "", body["user"]["id"], FORM_NOT_OPENED)

    def open_topics_form(body: dict[str, Any], client: WebClient, context: BoltContext) -> None:
        with services.store.session() as session:
            tags = declared_topics(session, context.team_id or "", body["user"]["id"])
        open_form(body, client, context, teach_modal(tags))

    def open_search_form(body: dict[str, Any], client: WebClient, context: BoltContext) -> None:
        open_form(body, client, context, search_modal())

    def open_ask_form(body: dict[str, Any], action: dict[str, Any], client: WebClient, context: BoltContext) -> None:
        terms = str(action.get("value") or "")
        metadata = json.dumps({"channel_id": None})  # no channel of origin: notes go to the question's channel
        open_form(body, client, context, ask_modal(None, question=terms, private_metadata=metadata))

    def ack_search(ack: Ack, view: dict[str, Any]) -> None:
        if not searched_terms(view):
            ack(**field_errors({SEARCH_BLOCK_TERMS: TERMS_MISSING}))
            return
        ack()  # the form closes; the results come on the tab, after the ack (permalinks are asked of Slack)

    def show_search(body: dict[str, Any], view: dict[str, Any], client: WebClient, context: BoltContext) -> None:
        team_id, user_id, terms = context.team_id or "", body["user"]["id"], searched_terms(view)
        if not terms:
            return
        try:
            searched = searching.search_answers(
                WorkspaceClient(client), services, team_id=team_id, terms=terms, viewer_channel_id=None
            )
        except SQLAlchemyError:
            logger.exception("could not search for %s from App Home", user_id)
            home.publish_home(client, services, team_id, user_id, SEARCH_DATABASE_DOWN)
            return
        home.publish_home(client, services, team_id, user_id, search=searched)

    def ack_only(ack: Ack) -> None:
        ack()

    app.event("app_home_opened")(ack=lambda: None, lazy=[open_home])
    app.action(HOME_EDIT_TOPICS)(ack=ack_only, lazy=[open_topics_form])
    app.action(ACTION_HOME_SEARCH)(ack=ack_only, lazy=[open_search_form])
    app.action(ACTION_HOME_ASK_SEARCHED)(ack=ack_only, lazy=[open_ask_form])
    app.view(SEARCH_MODAL)(ack=ack_search, lazy=[show_search])
    for action_id, change in (
        (HOME_PAUSE, home.set_pause),
        (HOME_RESUME, home.set_resume),
        (HOME_NOTIFY_MODE, home.set_notify_mode),
        (HOME_WORK_START, home.set_hours("start")),
        (HOME_WORK_END, home.set_hours("end")),
        (HOME_WORK_DAYS, home.set_work_days),
    ):
        app.action(action_id)(ack=on_change(change), lazy=[republish])
