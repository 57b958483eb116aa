"""What the listeners post to Slack after the ack, shared by several surfaces: a note to one person (an
ephemeral, else a DM), a bot message in a channel, and a question redrawn once it changed."""

from __future__ import annotations

import logging

from slack_sdk import WebClient
from sqlalchemy.exc import SQLAlchemyError

from bot.capture import about_message
from bot.messages.blocks import Message, ephemeral
from bot.messages.questions import question_message
from bot.qa import question_view
from bot.routing import delivery
from bot.services import Services
from bot.slack_errors import SLACK_FAILURES, error_code
from bot.workspaces import WorkspaceClient

logger = logging.getLogger("peerlearn.slack")


def tell_user(client: WebClient, *, channel_id: str | None, user_id: str, text: str) -> None:
    """An ephemeral note in the channel, or a DM when the channel won't take it (routing's `tell`, from a
    listener whose client already acts for the workspace)."""
    delivery.tell(WorkspaceClient(client), channel_id=channel_id, user_id=user_id, message=ephemeral(text))


def post_in_channel(client: WebClient, channel_id: str, message: Message) -> tuple[str, bool]:
    """Post a bot message in a channel; returns its ts and whether the channel is private.

    Raises one of SLACK_FAILURES when Slack refuses (not a member, archived…) or does not answer: the caller
    explains it.
    """
    info = client.conversations_info(channel=channel_id)["channel"]
    private = bool(info.get("is_private") or info.get("is_im") or info.get("is_mpim"))
    posted = client.chat_postMessage(channel=channel_id, unfurl_links=False, **message.as_kwargs())
    return str(posted["ts"]), private


def redraw_question(client: WebClient, services: Services, question_id: int) -> None:
    """Bring the question's channel message, and every routing DM sent about it, in line with the database
    (resolved or open again)."""
    try:
        with services.store.session() as session:
            view = question_view(session, question_id)
            resolved = delivery.load_resolved(session, question_id)
            about = about_message(session, question_id)
    except SQLAlchemyError:
        logger.exception("could not load question %s to redraw it", question_id)
        return
    if view is None:
        return
    slack = WorkspaceClient(client)
    resolved = resolved.with_link(slack) if resolved is not None else None
    message = question_message(
        asker_id=view.asker_id,
        text=view.text,
        tags=view.tags,
        resolved_by=resolved.resolved_by if resolved else None,
        answer_link=resolved.link if resolved else None,
        answered_earlier=resolved.answered_earlier if resolved else None,
        about=about,
    )
    try:
        client.chat_update(channel=view.channel_id, ts=view.message_ts, **message.as_kwargs())
    except SLACK_FAILURES as exc:
        logger.warning("could not update question %s in %s: %s", question_id, view.channel_id, error_code(exc))
    try:
        delivery.redraw_routed_dms(slack, services, question_id, {question_id: resolved})
    except SQLAlchemyError:
        logger.exception("could not load the routing DMs of question %s to redraw them", question_id)
