"""Modal submissions: the /ask form."""

from __future__ import annotations

import json
import logging
from typing import Any

from slack_bolt import Ack, App
from slack_sdk import WebClient
from sqlalchemy.exc import SQLAlchemyError

from bot import posting
from bot.capture import record_question_source
from bot.messages.errors import DATABASE_DOWN
from bot.messages.forms import (
    ASK_ACTION_INPUT,
    ASK_BLOCK_CHANNEL,
    ASK_BLOCK_QUESTION,
    ASK_BLOCK_TAGS,
    ASK_MODAL,
    CHANNEL_MISSING,
    QUESTION_MISSING,
    field_errors,
)
from bot.qa import create_question
from bot.services import Services
from bot.slack_posts import tell_user
from bot.text import (
    InvalidQuestion,
    TooManyTags,
    clean,
    not_tags_error,
    parse_tag_field,
    validate_question,
)
from bot.workspaces import WorkspaceClient
from models.question import fetch_question_by_request
from models.workspace import ensure_workspace

logger = logging.getLogger("peerlearn.views")


def form_value(view: dict[str, Any], block_id: str) -> Any:
    state = view.get("state", {}).get("values", {}).get(block_id, {}).get(ASK_ACTION_INPUT, {})
    return state.get("value") or state.get("selected_conversation") or ""


def register(app: App, services: Services) -> None:
    def ack_ask_form(ack: Ack, body: dict[str, Any], view: dict[str, Any]) -> None:
        question = str(form_value(view, ASK_BLOCK_QUESTION)).strip()
        tags, not_tags = parse_tag_field(str(form_value(view, ASK_BLOCK_TAGS)))
        channel_id = str(form_value(view, ASK_BLOCK_CHANNEL))
        errors = {}  # every field's problem at once
        if not clean(question):
            errors[ASK_BLOCK_QUESTION] = QUESTION_MISSING
        if not_tags:
            errors[ASK_BLOCK_TAGS] = not_tags_error(not_tags)
        if not channel_id:
            errors[ASK_BLOCK_CHANNEL] = CHANNEL_MISSING
        try:
            parsed = validate_question(" ".join([question, *(f"#{tag}" for tag in tags)]), services.settings)
        except TooManyTags as problem:  # the cap /ask has, on the field that holds the tags
            errors.setdefault(ASK_BLOCK_TAGS, problem.in_form)
        except InvalidQuestion as problem:
            errors.setdefault(ASK_BLOCK_QUESTION, problem.in_form)
        if errors:
            ack(**field_errors(errors))
            return
        team_id = (body.get("team") or {}).get("id") or view.get("team_id", "")
        try:
            with services.store.session() as session:
                now = services.clock.now()
                ensure_workspace(session, team_id, now)
                asked, _ = create_question(
                    session,
                    team_id=team_id,
                    channel_id=channel_id,
                    asker_id=body["user"]["id"],
                    parsed=parsed,
                    request_key="view:" + view["id"],
                    now=now,
                )
                if source := json.loads(view.get("private_metadata") or "{}").get("source"):
                    record_question_source(session, asked.id, team_id, source)  # "Ask PeerLearn about this"
        except SQLAlchemyError:
            logger.exception("could not store a question from the form")
            ack(**field_errors({ASK_BLOCK_QUESTION: DATABASE_DOWN}))
            return
        ack()

    def post_ask_form(body: dict[str, Any], view: dict[str, Any], client: WebClient) -> None:
        team_id = (body.get("team") or {}).get("id") or view.get("team_id", "")
        user_id = body["user"]["id"]
        with services.store.session() as session:
            question = fetch_question_by_request(session, team_id, "view:" + view["id"])
            question_id, channel_id = (question.id, question.channel_id) if question else (None, None)
        if question_id is None:
            return
        origin = json.loads(view.get("private_metadata") or "{}").get("channel_id")
        slack = WorkspaceClient(client)
        posting.publish_and_suggest(
            slack,
            services,
            question_id,
            notify=lambda note: tell_user(client, channel_id=origin or channel_id, user_id=user_id, text=note),
        )

    app.view(ASK_MODAL)(ack=ack_ask_form, lazy=[post_ask_form])
