"""/ask. The ack step validates and stores (fast, before Slack hears back); the lazy step
talks to Slack (posting, opening the form, a search's reply), after the ack. A question the lazy step could not
post (its process stopped, Slack did not answer) stays owed and bot/posting.py's tick posts it.

`/ask search <terms>` stores nothing: its ack is empty (with the HTTP server, the request waits in the inbox,
on disk, until the worker hands it to Bolt) and the lazy step answers through the command's response_url."""

from __future__ import annotations

import json
import logging
from typing import Any

from slack_bolt import Ack, App, BoltContext, Respond
from slack_sdk import WebClient
from sqlalchemy.exc import SQLAlchemyError

from bot import posting, searching
from bot.asking import Ask, read_ask, request_key
from bot.mentoring_text import ask_mentor_command
from bot.messages.blocks import ephemeral
from bot.messages.errors import ASK_DIRECTLY, DATABASE_DOWN, explain, quote_back, refused
from bot.messages.forms import ask_modal
from bot.messages.help import ASK_USAGE, help_message
from bot.messages.search import SEARCH_DATABASE_DOWN, SEARCH_USAGE, search_results
from bot.qa import create_question
from bot.services import Services
from bot.slack_errors import SLACK_FAILURES, error_code
from bot.slack_posts import tell_user
from bot.text import command_text
from bot.workspaces import WorkspaceClient
from handlers import digest, mentoring
from models.question import question_id_by_request
from models.workspace import ensure_workspace

logger = logging.getLogger("peerlearn.commands")


def register(app: App, services: Services) -> None:
    settings = services.settings

    def ack_ask(ack: Ack, command: dict[str, Any], context: BoltContext) -> None:
        text = command_text(command)
        if (mentor := ask_mentor_command(text)) is not None:
            mentoring.ack_request(ack, command, context, services, mentor)
            return
        ask = read_ask(text, settings)
        if ask.is_help:
            ack(**help_message(ASK_USAGE).as_kwargs())
            return
        if ask.may_be_digest_settings and (settings_command := digest.parse_digest_command(text)) is not None:
            digest.ack_digest(ack, command, services, settings_command)
            return
        if ask.is_search:
            if ask.search_terms:
                ack()  # the reply comes after the ack (post_ask): its permalinks are asked of Slack
            else:
                ack(**help_message(SEARCH_USAGE).as_kwargs())
            return
        if ask.opens_form:
            ack()  # the form opens in open_ask_form, after the ack
            return
        if ask.question is None:
            ack(**ephemeral(refused(ask.problem, text)).as_kwargs())
            return
        try:
            with services.store.session() as session:
                now = services.clock.now()
                ensure_workspace(session, command["team_id"], now)
                create_question(
                    session,
                    team_id=command["team_id"],
                    channel_id=command["channel_id"],
                    asker_id=command["user_id"],
                    parsed=ask.question,
                    request_key=request_key(command),
                    now=now,
                )
        except SQLAlchemyError:
            logger.exception("could not store a question from %s", command.get("user_id"))
            ack(**ephemeral(DATABASE_DOWN + quote_back(text)).as_kwargs())
            return
        ack()

    def post_ask(command: dict[str, Any], client: WebClient, respond: Respond, context: BoltContext) -> None:
        """After the ack: post the question, then suggest similar answers or route it (bot/routing/)."""
        text = command_text(command)
        if ask_mentor_command(text) is not None:
            mentoring.after_request(command, client, respond, context, services)
            return
        ask = read_ask(text, settings)
        if ask.is_help:
            return
        if ask.may_be_digest_settings and (settings_command := digest.parse_digest_command(text)) is not None:
            digest.after_digest(command, client, respond, services, settings_command)
            return
        if ask.is_search:
            if ask.search_terms:
                answer_search(ask, command, client, respond)
            return
        if ask.opens_form:
            open_ask_form(client, command)
            return
        try:
            with services.store.session() as session:
                question_id = question_id_by_request(session, command["team_id"], request_key(command))
        except SQLAlchemyError:
            logger.exception("could not load the question just stored; the posting tick will post it")
            return

        def notify(note: str) -> None:
            respond(text=note)

        slack = WorkspaceClient(client)
        if question_id is not None:
            posting.publish_and_suggest(slack, services, question_id, notify=notify)

    def answer_search(ask: Ask, command: dict[str, Any], client: WebClient, respond: Respond) -> None:
        """The best matching answered questions and lessons, to the person only (the command's response_url)."""
        try:
            searched = searching.search_answers(
                WorkspaceClient(client),
                services,
                team_id=command["team_id"],
                terms=ask.search_terms,
                viewer_channel_id=command.get("channel_id"),
            )
        except SQLAlchemyError:
            logger.exception("could not search for %s", command.get("user_id"))
            respond(text=SEARCH_DATABASE_DOWN)
            return
        respond(response_type="ephemeral", **search_results(searched, request_key(command)).as_kwargs())

    app.command("/ask")(ack=ack_ask, lazy=[post_ask])


def open_ask_form(client: WebClient, command: dict[str, Any]) -> None:
    metadata = json.dumps({"channel_id": command.get("channel_id")})
    try:
        client.views_open(
            trigger_id=command["trigger_id"],
            view=ask_modal(command.get("channel_id"), private_metadata=metadata),
        )
    except SLACK_FAILURES as exc:
        logger.warning("could not open the /ask form: %s", error_code(exc))
        tell_user(
            client,
            channel_id=command.get("channel_id"),
            user_id=command["user_id"],
            text=explain(error_code(exc)) + "\n" + ASK_DIRECTLY,
        )
