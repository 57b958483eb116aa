"""Slack-side steps shared by several surfaces: publishing a question, redrawing it, telling someone."""

from __future__ import annotations

import logging
from collections.abc import Callable

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from sqlalchemy.exc import SQLAlchemyError

from bot import blocks
from bot.qa import mark_posted, mark_unposted, question_view
from bot.services import Services
from bot.slack_errors import error_code, explain
from bot.tags import escape_mrkdwn, truncate
from models.question import STATUS_POSTING, Question

logger = logging.getLogger("peerlearn.slack")

DATABASE_DOWN = "PeerLearn can't reach its database right now, so nothing was saved. Please try again in a minute."


def quote_back(text: str, limit: int = 2500) -> str:
    """The person's own words, quoted, so a refused request loses nothing."""
    body = truncate(escape_mrkdwn(text.strip()), limit)
    return "\n\nHere is what you wrote, so nothing is lost:\n```" + body + "```" if body else ""


def tell_user(client: WebClient, *, channel_id: str | None, user_id: str, text: str) -> None:
    """An ephemeral note in the channel, or a DM when the channel won't take it."""
    message = blocks.ephemeral(text)
    if channel_id:
        try:
            client.chat_postEphemeral(channel=channel_id, user=user_id, **message.as_kwargs())
            return
        except SlackApiError as exc:
            logger.info("ephemeral to %s in %s failed (%s); sending a DM", user_id, channel_id, error_code(exc))
    try:
        dm = client.conversations_open(users=user_id)["channel"]["id"]
        client.chat_postMessage(channel=dm, **message.as_kwargs())
    except SlackApiError as exc:
        logger.warning("could not reach %s at all: %s", user_id, error_code(exc))


def post_in_channel(client: WebClient, channel_id: str, message: blocks.Message) -> tuple[str, bool]:
    """Post a bot message in a channel; returns its ts and whether the channel is private.

    Raises SlackApiError when Slack refuses (not a member, archived…): the caller explains it.
    """
    info = client.conversations_info(channel=channel_id)["channel"]
    private = bool(info.get("is_private") or info.get("is_im") or info.get("is_mpim"))
    posted = client.chat_postMessage(channel=channel_id, unfurl_links=False, **message.as_kwargs())
    return str(posted["ts"]), private


def publish_question(client: WebClient, services: Services, question_id: int, notify: Callable[[str], None]) -> bool:
    """Post a stored question in its channel; on refusal, keep the row, mark it and tell the asker why."""
    with services.store.session() as session:
        question = session.get(Question, question_id)
        if question is None or question.status != STATUS_POSTING:
            return False
        channel_id, asker_id, text, tags = (
            question.channel_id,
            question.asker_id,
            question.text,
            question.tag_names,
        )
    try:
        ts, private = post_in_channel(
            client, channel_id, blocks.question_message(asker_id=asker_id, text=text, tags=tags)
        )
    except SlackApiError as exc:
        code = error_code(exc)
        logger.warning("question %s not posted in %s: %s", question_id, channel_id, code)
        with services.store.session() as session:
            question = session.get(Question, question_id)
            if question is not None:
                mark_unposted(session, question)
        notify(explain(code) + quote_back(text))
        return False
    with services.store.session() as session:
        question = session.get(Question, question_id)
        if question is not None:
            mark_posted(session, question, message_ts=ts, channel_private=private)
    logger.info("question %s posted in %s at %s", question_id, channel_id, ts)
    return True


def redraw_question(client: WebClient, services: Services, question_id: int) -> None:
    """Bring the question's channel message in line with the database (resolved or open again)."""
    try:
        with services.store.session() as session:
            view = question_view(session, question_id)
    except SQLAlchemyError:
        logger.exception("could not load question %s to redraw it", question_id)
        return
    if view is None:
        return
    link = None
    try:
        if view.accepted_answer_ts:
            link = client.chat_getPermalink(channel=view.channel_id, message_ts=view.accepted_answer_ts)["permalink"]
        message = blocks.question_message(
            asker_id=view.asker_id,
            text=view.text,
            tags=view.tags,
            resolved_by=view.resolved_by,
            answer_link=link,
        )
        client.chat_update(channel=view.channel_id, ts=view.message_ts, **message.as_kwargs())
    except SlackApiError as exc:
        logger.warning("could not update question %s in %s: %s", question_id, view.channel_id, error_code(exc))
