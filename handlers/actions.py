"""Buttons: "I'll take it" / "Not me" (routing DMs, ephemerals and the App Home share them) and the
similar-answers suggestions ("This answers it" / "Still need help").

The main function stores what the click changes (bot/routing/buttons.py, database only) and acks; the Slack side
(thread note, DM or Home redrawn, the next expert asked, the question redrawn) runs after the ack, reading
the stored outcome from the context. Every click is idempotent: a double click changes nothing twice.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any

from slack_bolt import Ack, App, BoltContext, Respond
from slack_sdk import WebClient
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from bot import blocks
from bot.routing import buttons, escalation, evidence
from bot.routing.buttons import ButtonOutcome
from bot.services import Services
from bot.workspaces import WorkspaceClient
from handlers.common import DATABASE_DOWN, redraw_question, tell_user
from handlers.home import publish_home
from models.base import parse_row_id
from models.question import Question

logger = logging.getLogger("peerlearn.actions")

OUTCOME = "peerlearn_button_outcome"  # context key: what the click changed (ButtonOutcome.as_context())
FAILED = "peerlearn_button_failed"  # context key: why nothing could be stored

# (session, team_id, user_id, button value, now) -> what changed; None for a value that names nothing
Change = Callable[[Session, str, str, str, datetime], ButtonOutcome | None]

USUAL = {buttons.TAKEN, buttons.DECLINED, buttons.RESOLVED, buttons.ROUTING, buttons.ALREADY}
TAKE_NOTES = {
    buttons.TAKEN: blocks.ROUTE_TAKEN_NOTE,
    buttons.ALREADY: blocks.ROUTE_TAKEN_NOTE,
    buttons.CLOSED: blocks.ROUTE_CLOSED_NOTE,
    buttons.OWN: "That's your own question: the people who know its topics get asked.",
    buttons.UNREADABLE: "That question is in a private channel you're not a member of, so it can't be yours to take. "
    "If you can help, ask someone in that channel to add you first.",
}
DECLINE_NOTES = {
    buttons.DECLINED: blocks.ROUTE_DECLINED_NOTE,
    buttons.ALREADY: blocks.ROUTE_DECLINED_NOTE,
    buttons.CLOSED: blocks.ROUTE_CLOSED_NOTE,
    buttons.OWN: TAKE_NOTES[buttons.OWN],
}
RESOLVE_NOTES = {
    buttons.RESOLVED: ":white_check_mark: Glad that helped! I marked your question resolved; nobody gets pinged.",
    buttons.ALREADY: ":white_check_mark: Your question is resolved already.",
    buttons.NOT_ASKER: "Only the person who asked can resolve the question.",
    buttons.CLOSED: "That question is resolved already, or gone.",
}
HELP_NOTES = {  # after ROUTING or ALREADY the asker hears what routing did (escalation.still_need_help)
    buttons.NOT_ASKER: "Only the person who asked can ask for more help.",
    buttons.CLOSED: "That question is resolved already, or gone.",
}


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


def readable_question(client: WebClient, services: Services, team_id: str, user_id: str, value: str) -> bool:
    """Whether the button's question (if it names one) is in a channel the person may read (bot.routing.evidence's
    membership rule); a question that names nothing is left to the click's own handling."""
    question_id = question_id_of(value)
    if question_id is None:
        return True
    with services.store.session() as session:
        question = session.get(Question, question_id)
        if question is None or question.team_id != team_id:
            return True
        channel_id, private = question.channel_id, question.channel_private
    return evidence.reads_channel(WorkspaceClient(client), user_id, channel_id, private)


def register(app: App, services: Services) -> None:
    def store_take(
        ack: Ack, body: dict[str, Any], action: dict[str, Any], context: BoltContext, client: WebClient
    ) -> None:
        """ "I'll take it" on a question in a private channel is refused to anyone Slack does not list as its
        member, before anything is stored (nobody else's DM is cancelled, nothing is posted there)."""
        value, user_id = str(action.get("value") or ""), body["user"]["id"]
        try:
            allowed = readable_question(client, services, context.team_id or "", user_id, value)
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
            respond(replace_original=replace, response_type="ephemeral", **blocks.ephemeral(note).as_kwargs())
        else:
            tell_user(client, channel_id=(body.get("channel") or {}).get("id"), user_id=user_id, text=note)

    def outcome_of(context: BoltContext) -> ButtonOutcome | None:
        data = context.get(OUTCOME)
        return ButtonOutcome.from_context(data) if data else None

    def after_take(body: dict[str, Any], client: WebClient, respond: Respond, context: BoltContext) -> None:
        outcome = outcome_of(context)
        if outcome is None:
            note = context.get(FAILED) or blocks.ROUTE_CLOSED_NOTE
            show(body, client, respond, context, note, usual=False, replace=is_ephemeral(body))
            return
        if outcome.result == buttons.UNREADABLE:  # nothing changed: say why, wherever the click came from
            show(body, client, respond, context, TAKE_NOTES[outcome.result], usual=False, replace=False)
            return
        buttons.after_take(WorkspaceClient(client), services, outcome, context.team_id or "", body["user"]["id"])
        if from_home(body) or is_ephemeral(body):
            note, usual = TAKE_NOTES[outcome.result], outcome.result in USUAL
            show(body, client, respond, context, note, usual=usual, replace=True)

    def after_decline(body: dict[str, Any], client: WebClient, respond: Respond, context: BoltContext) -> None:
        outcome = outcome_of(context)
        if outcome is None:
            note = context.get(FAILED) or blocks.ROUTE_CLOSED_NOTE
            show(body, client, respond, context, note, usual=False, replace=is_ephemeral(body))
            return
        if from_home(body) or is_ephemeral(body):
            note, usual = DECLINE_NOTES[outcome.result], outcome.result in USUAL
            show(body, client, respond, context, note, usual=usual, replace=True)
        buttons.after_decline(WorkspaceClient(client), services, outcome, context.team_id or "", body["user"]["id"])

    def after_answers_it(body: dict[str, Any], client: WebClient, respond: Respond, context: BoltContext) -> None:
        outcome = outcome_of(context)
        if outcome is None:
            note = context.get(FAILED) or RESOLVE_NOTES[buttons.CLOSED]
            show(body, client, respond, context, note, usual=False, replace=False)
            return
        note, usual = RESOLVE_NOTES[outcome.result], outcome.result in USUAL
        show(body, client, respond, context, note, usual=usual, replace=True)
        if outcome.result == buttons.RESOLVED:
            redraw_question(client, services, outcome.question_id)

    def after_still_need_help(body: dict[str, Any], client: WebClient, respond: Respond, context: BoltContext) -> None:
        outcome = outcome_of(context)
        if outcome is None:
            note = context.get(FAILED) or HELP_NOTES[buttons.CLOSED]
            show(body, client, respond, context, note, usual=False, replace=False)
            return
        if outcome.result in (buttons.ROUTING, buttons.ALREADY):
            note = escalation.still_need_help(WorkspaceClient(client), services, outcome.question_id)
        else:
            note = HELP_NOTES[outcome.result]
        show(body, client, respond, context, note, usual=outcome.result in USUAL, replace=True)

    app.action(blocks.ACTION_TAKE_QUESTION)(ack=store_take, lazy=[after_take])
    app.action(blocks.ACTION_DECLINE_QUESTION)(ack=stored(decline), lazy=[after_decline])
    app.action(blocks.ACTION_SIMILAR_ANSWERS_IT)(ack=stored(answers_it), lazy=[after_answers_it])
    app.action(blocks.ACTION_SIMILAR_STILL_NEED_HELP)(ack=stored(still_need_help), lazy=[after_still_need_help])


def is_ephemeral(body: dict[str, Any]) -> bool:
    return bool((body.get("container") or {}).get("is_ephemeral"))
