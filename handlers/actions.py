"""Buttons: "I'll take it" / "Not me" (routing DMs, ephemerals and the App Home share them), the
similar-answers suggestions ("This answers it" / "Still need help") and "Ask it as a question" under a
/ask search reply.

The main function stores what the click changes (bot/routing/buttons.py, database only) and acks; the Slack side
(thread note, DM or Home redrawn, the next expert asked, the question redrawn) runs after the ack, reading
the stored outcome from the context. Every click is idempotent: a double click changes nothing twice.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from slack_bolt import Ack, App, BoltContext, Respond
from slack_sdk import WebClient
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from bot import posting, searching
from bot.home import publish_home
from bot.messages.blocks import ephemeral
from bot.messages.errors import DATABASE_DOWN
from bot.messages.routing import (
    ACTION_DECLINE_QUESTION,
    ACTION_TAKE_QUESTION,
    OWN_QUESTION_NOTE,
    ROUTE_CLOSED_NOTE,
    ROUTE_DECLINED_NOTE,
    ROUTE_TAKEN_NOTE,
    UNREADABLE_NOTE,
)
from bot.messages.search import ACTION_ASK_SEARCHED, ASKED_NOTE, parse_ask_value
from bot.messages.suggestions import (
    ACTION_SIMILAR_ANSWERS_IT,
    ACTION_SIMILAR_STILL_NEED_HELP,
    ALREADY_RESOLVED_NOTE,
    ONLY_ASKER_ASKS_MORE_NOTE,
    ONLY_ASKER_RESOLVES_NOTE,
    RESOLVED_BY_EARLIER_NOTE,
    RESOLVED_OR_GONE_NOTE,
)
from bot.qa import create_question
from bot.routing import buttons, escalation
from bot.routing.buttons import ButtonOutcome
from bot.services import Services
from bot.slack_posts import redraw_question, tell_user
from bot.text import InvalidQuestion, validate_question
from bot.workspaces import WorkspaceClient
from models.base import parse_row_id
from models.question import question_id_by_request
from models.workspace import ensure_workspace

logger = logging.getLogger("peerlearn.actions")

OUTCOME = "peerlearn_button_outcome"  # context key: what the click changed (ButtonOutcome.as_context())
FAILED = "peerlearn_button_failed"  # context key: why nothing could be stored

# (session, team_id, user_id, button value, now) -> what changed; None for a value that names nothing
Change = Callable[[Session, str, str, str, datetime], ButtonOutcome | None]

USUAL = {buttons.TAKEN, buttons.DECLINED, buttons.RESOLVED, buttons.ROUTING, buttons.ALREADY}
TAKE_NOTES = {
    buttons.TAKEN: ROUTE_TAKEN_NOTE,
    buttons.ALREADY: ROUTE_TAKEN_NOTE,
    buttons.CLOSED: ROUTE_CLOSED_NOTE,
    buttons.OWN: OWN_QUESTION_NOTE,
    buttons.UNREADABLE: UNREADABLE_NOTE,
}
DECLINE_NOTES = {
    buttons.DECLINED: ROUTE_DECLINED_NOTE,
    buttons.ALREADY: ROUTE_DECLINED_NOTE,
    buttons.CLOSED: ROUTE_CLOSED_NOTE,
    buttons.OWN: OWN_QUESTION_NOTE,
}
RESOLVE_NOTES = {
    buttons.RESOLVED: RESOLVED_BY_EARLIER_NOTE,
    buttons.ALREADY: ALREADY_RESOLVED_NOTE,
    buttons.NOT_ASKER: ONLY_ASKER_RESOLVES_NOTE,
    buttons.CLOSED: RESOLVED_OR_GONE_NOTE,
}
HELP_NOTES = {  # after ROUTING or ALREADY the asker hears what routing did (escalation.still_need_help)
    buttons.NOT_ASKER: ONLY_ASKER_ASKS_MORE_NOTE,
    buttons.CLOSED: RESOLVED_OR_GONE_NOTE,
}


@dataclass(frozen=True)
class Reply:
    """How a click ends where it happened: `note` shown there (None: nothing to show), replacing the message
    the click came from when `replace`; then `then`, the Slack side that can wait until the clicker knows."""

    note: str | None
    replace: bool = True
    then: Callable[[], None] | None = None


# (outcome, body, client, team_id) -> the Reply; does the Slack side that must come before the note
Finish = Callable[[ButtonOutcome, dict[str, Any], WebClient, str], Reply]


def question_id_of(value: str) -> int | None:
    return parse_row_id(value)


def take(session: Session, team_id: str, user_id: str, value: str, now: datetime) -> ButtonOutcome | None:
    question_id = question_id_of(value)
    return None if question_id is None else buttons.take_question(session, team_id, question_id, user_id, now)


def decline(session: Session, team_id: str, user_id: str, value: str, now: datetime) -> ButtonOutcome | None:
    question_id = question_id_of(value)
    return None if question_id is None else buttons.decline_question(session, team_id, question_id, user_id, now)


def answers_it(session: Session, team_id: str, user_id: str, value: str, now: datetime) -> ButtonOutcome | None:
    parsed = buttons.parse_earlier(value)
    if parsed is None:
        return None
    question_id, kind, ref_id = parsed
    return buttons.resolve_with_earlier(session, team_id, question_id, user_id, kind, ref_id, now)


def still_need_help(session: Session, team_id: str, user_id: str, value: str, now: datetime) -> ButtonOutcome | None:
    question_id = question_id_of(value)
    return None if question_id is None else buttons.ask_experts_now(session, team_id, question_id, user_id, now)


def from_home(body: dict[str, Any]) -> bool:
    return (body.get("container") or {}).get("type") == "view" and (body.get("view") or {}).get("type") == "home"


def register(app: App, services: Services) -> None:
    def store_take(
        ack: Ack, body: dict[str, Any], action: dict[str, Any], context: BoltContext, client: WebClient
    ) -> None:
        """ "I'll take it" on a question in a private channel is refused to anyone Slack does not list as its
        member, before anything is stored (nobody else's DM is cancelled, nothing is posted there)."""
        value, user_id = str(action.get("value") or ""), body["user"]["id"]
        try:
            allowed = buttons.may_read_question(
                WorkspaceClient(client), services, context.team_id or "", user_id, parse_row_id(value)
            )
        except SQLAlchemyError:
            allowed = True  # the click's own handling meets the outage and says so
        if not allowed:
            logger.info("%s may not take question %s: not a member of its private channel", user_id, value)
            context[OUTCOME] = ButtonOutcome(buttons.UNREADABLE, int(value)).as_context()
            ack()
            return
        stored(take)(ack, body, action, context)

    def stored(change: Change) -> Callable[..., None]:
        def store(ack: Ack, body: dict[str, Any], action: dict[str, Any], context: BoltContext) -> None:
            user_id = body["user"]["id"]
            try:
                with services.store.session() as session:
                    outcome = change(session, context.team_id or "", user_id, str(action.get("value") or ""), now())
            except SQLAlchemyError:
                logger.exception("could not store a click on %s by %s", action.get("action_id"), user_id)
                context[FAILED] = DATABASE_DOWN
                ack()
                return
            if outcome is None:
                value = str(action.get("value") or "")
                logger.info("a click on %s carried an unknown value %r", action.get("action_id"), value[:40])
            else:
                context[OUTCOME] = outcome.as_context()
            ack()

        return store

    def now() -> datetime:
        return services.clock.now()

    def show(
        body: dict[str, Any],
        client: WebClient,
        respond: Respond,
        context: BoltContext,
        note: str,
        *,
        usual: bool,
        replace: bool,
    ) -> None:
        """Say how the click ended where it happened: the Home tab is published again (with the note unless
        the click did the `usual` thing); the message the click came from is replaced by the note when
        `replace` (an ephemeral, the suggestions), else the note comes as an ephemeral beside it (a routing
        DM keeps its question: it redraws itself, bot.routing.delivery.redraw_dm)."""
        team_id, user_id = context.team_id or "", body["user"]["id"]
        if from_home(body):
            publish_home(client, services, team_id, user_id, None if usual else note)
        elif body.get("response_url"):
            respond(replace_original=replace, response_type="ephemeral", **ephemeral(note).as_kwargs())
        else:
            tell_user(client, channel_id=(body.get("channel") or {}).get("id"), user_id=user_id, text=note)

    def outcome_of(context: BoltContext) -> ButtonOutcome | None:
        data = context.get(OUTCOME)
        return ButtonOutcome.from_context(data) if data else None

    def after(finish: Finish, gone: str, *, gone_replaces_ephemeral: bool) -> Callable[..., None]:
        """The step after the ack of one button: what the click stored decides what happens in Slack and what
        the clicker is told; `gone` when it stored nothing (the question is closed or gone, or the
        database failed: then that is said)."""

        def lazy(body: dict[str, Any], client: WebClient, respond: Respond, context: BoltContext) -> None:
            outcome = outcome_of(context)
            if outcome is None:
                replace = gone_replaces_ephemeral and is_ephemeral(body)
                show(body, client, respond, context, context.get(FAILED) or gone, usual=False, replace=replace)
                return
            reply = finish(outcome, body, client, context.team_id or "")
            if reply.note is not None:
                usual = outcome.result in USUAL
                show(body, client, respond, context, reply.note, usual=usual, replace=reply.replace)
            if reply.then is not None:
                reply.then()

        return lazy

    def finish_take(outcome: ButtonOutcome, body: dict[str, Any], client: WebClient, team_id: str) -> Reply:
        if outcome.result == buttons.UNREADABLE:  # nothing changed: say why, wherever the click came from
            return Reply(TAKE_NOTES[outcome.result], replace=False)
        buttons.after_take(WorkspaceClient(client), services, outcome, team_id, body["user"]["id"])
        return Reply(TAKE_NOTES[outcome.result] if from_home(body) or is_ephemeral(body) else None)

    def finish_decline(outcome: ButtonOutcome, body: dict[str, Any], client: WebClient, team_id: str) -> Reply:
        def ask_someone_else() -> None:
            buttons.after_decline(WorkspaceClient(client), services, outcome, team_id, body["user"]["id"])

        note = DECLINE_NOTES[outcome.result] if from_home(body) or is_ephemeral(body) else None
        return Reply(note, then=ask_someone_else)

    def finish_answers_it(outcome: ButtonOutcome, body: dict[str, Any], client: WebClient, team_id: str) -> Reply:
        def redraw() -> None:
            redraw_question(client, services, outcome.question_id)

        return Reply(RESOLVE_NOTES[outcome.result], then=redraw if outcome.result == buttons.RESOLVED else None)

    def finish_still_need_help(outcome: ButtonOutcome, body: dict[str, Any], client: WebClient, team_id: str) -> Reply:
        if outcome.result in (buttons.ROUTING, buttons.ALREADY):
            return Reply(escalation.still_need_help(WorkspaceClient(client), services, outcome.question_id))
        return Reply(HELP_NOTES[outcome.result])

    after_take = after(finish_take, ROUTE_CLOSED_NOTE, gone_replaces_ephemeral=True)
    after_decline = after(finish_decline, ROUTE_CLOSED_NOTE, gone_replaces_ephemeral=True)
    after_answers_it = after(finish_answers_it, RESOLVE_NOTES[buttons.CLOSED], gone_replaces_ephemeral=False)
    after_still_need_help = after(finish_still_need_help, HELP_NOTES[buttons.CLOSED], gone_replaces_ephemeral=False)

    def store_searched_question(ack: Ack, body: dict[str, Any], action: dict[str, Any], context: BoltContext) -> None:
        """ "Ask it as a question" under a /ask search reply: the terms stored as `/ask <terms>` stores them, in
        the channel of the search, once per search however often the button is clicked."""
        searched = parse_ask_value(str(action.get("value") or ""))
        channel_id = (body.get("channel") or {}).get("id") or (body.get("container") or {}).get("channel_id")
        if searched is None or not channel_id:
            logger.info("a click on %s carried an unknown value or no channel", ACTION_ASK_SEARCHED)
            ack()
            return
        request, terms = searched
        try:
            parsed = validate_question(terms, services.settings)
        except InvalidQuestion as problem:
            context[FAILED] = str(problem)
            ack()
            return
        team_id = context.team_id or ""
        try:
            with services.store.session() as session:
                ensure_workspace(session, team_id, now())
                create_question(
                    session,
                    team_id=team_id,
                    channel_id=channel_id,
                    asker_id=body["user"]["id"],
                    parsed=parsed,
                    request_key=searching.question_request_key(request),
                    now=now(),
                )
        except SQLAlchemyError:
            logger.exception("could not store a question from a search by %s", body["user"]["id"])
            context[FAILED] = DATABASE_DOWN
        ack()

    def post_searched_question(body: dict[str, Any], client: WebClient, respond: Respond, context: BoltContext) -> None:
        """Post it as /ask posts (suggestions, then routing); the search reply says it was asked."""
        if failed := context.get(FAILED):
            respond(replace_original=False, response_type="ephemeral", **ephemeral(failed).as_kwargs())
            return
        searched = parse_ask_value(str((body.get("actions") or [{}])[0].get("value") or ""))
        if searched is None:
            return
        team_id = context.team_id or ""
        try:
            with services.store.session() as session:
                question_id = question_id_by_request(session, team_id, searching.question_request_key(searched[0]))
        except SQLAlchemyError:
            logger.exception("could not load the question just stored; the posting tick will post it")
            return
        if question_id is None:
            return
        respond(replace_original=True, response_type="ephemeral", **ephemeral(ASKED_NOTE).as_kwargs())

        def notify(note: str) -> None:
            respond(replace_original=False, response_type="ephemeral", text=note)

        posting.publish_and_suggest(WorkspaceClient(client), services, question_id, notify=notify)

    app.action(ACTION_TAKE_QUESTION)(ack=store_take, lazy=[after_take])
    app.action(ACTION_DECLINE_QUESTION)(ack=stored(decline), lazy=[after_decline])
    app.action(ACTION_SIMILAR_ANSWERS_IT)(ack=stored(answers_it), lazy=[after_answers_it])
    app.action(ACTION_SIMILAR_STILL_NEED_HELP)(ack=stored(still_need_help), lazy=[after_still_need_help])
    app.action(ACTION_ASK_SEARCHED)(ack=store_searched_question, lazy=[post_searched_question])


def is_ephemeral(body: dict[str, Any]) -> bool:
    return bool((body.get("container") or {}).get("is_ephemeral"))
