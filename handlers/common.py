"""Slack-side steps shared by several surfaces: redrawing a question, telling someone, and what happens when
Slack refuses our token or the database is down. (Posting a question: bot/posting.py.)"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

from slack_bolt import BoltResponse
from slack_sdk import WebClient
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError, SQLAlchemyError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

from bot import blocks, metrics, route
from bot.qa import question_view
from bot.runtime.logging import request_kind
from bot.services import Services
from bot.slack_errors import AUTH_ERRORS, SLACK_FAILURES, error_code
from bot.workspaces import disable_refused_workspace

logger = logging.getLogger("peerlearn.slack")

DATABASE_DOWN = "PeerLearn can't reach its database right now, so nothing was saved. Please try again in a minute."


def tell_user(client: WebClient, *, channel_id: str | None, user_id: str, text: str) -> None:
    """An ephemeral note in the channel, or a DM when the channel won't take it."""
    message = blocks.ephemeral(text)
    if channel_id:
        try:
            client.chat_postEphemeral(channel=channel_id, user=user_id, **message.as_kwargs())
            return
        except SLACK_FAILURES as exc:
            logger.info("ephemeral to %s in %s failed (%s); sending a DM", user_id, channel_id, error_code(exc))
    try:
        dm = client.conversations_open(users=user_id)["channel"]["id"]
        client.chat_postMessage(channel=dm, **message.as_kwargs())
    except SLACK_FAILURES as exc:
        logger.warning("could not reach %s at all: %s", user_id, error_code(exc))


def post_in_channel(client: WebClient, channel_id: str, message: blocks.Message) -> tuple[str, bool]:
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
            resolved = route.load_resolved(session, question_id)
    except SQLAlchemyError:
        logger.exception("could not load question %s to redraw it", question_id)
        return
    if view is None:
        return
    slack = route.Slack(client)
    resolved = resolved.with_link(slack) if resolved is not None else None
    message = blocks.question_message(
        asker_id=view.asker_id,
        text=view.text,
        tags=view.tags,
        resolved_by=resolved.resolved_by if resolved else None,
        answer_link=resolved.link if resolved else None,
        answered_earlier=resolved.answered_earlier if resolved else None,
    )
    try:
        client.chat_update(channel=view.channel_id, ts=view.message_ts, **message.as_kwargs())
    except SLACK_FAILURES as exc:
        logger.warning("could not update question %s in %s: %s", question_id, view.channel_id, error_code(exc))
    try:
        route.redraw_routed_dms(slack, services, question_id, {question_id: resolved})
    except SQLAlchemyError:
        logger.exception("could not load the routing DMs of question %s to redraw them", question_id)


# --- Slack refused our token ------------------------------------------------------------------------


def slack_error_observer(services: Services) -> Callable[[str | None, str, str], None]:
    """What the app's WebClients report every Slack error to (see bot.metrics.ObservedWebClient)."""

    def observe(team_id: str | None, method: str, code: str) -> None:
        if code in AUTH_ERRORS:
            disable_refused_workspace(services, team_id, method, code)

    return observe


# --- the database is down -----------------------------------------------------------------------------


def is_database_outage(error: BaseException) -> bool:
    """Connection refused or lost, pool exhausted: worth a retry, unlike a bug (IntegrityError, …)."""
    if isinstance(error, OperationalError | InterfaceError | PoolTimeoutError):
        return True
    return isinstance(error, DBAPIError) and bool(error.connection_invalidated)


def answer_unhandled_error(error: Exception, body: Mapping[str, Any]) -> BoltResponse | None:
    """Bolt's global error handler: a database outage gets a clear "try again"; anything else a 500.

    Slash commands get an ephemeral message (Slack shows the body of a 200 to the person). Events and
    everything else get 503: Slack redelivers events (three retries over about five minutes), and the
    retry is stored once the database is back (the event_id makes it idempotent). Acking an event we
    could not store would lose it.
    """
    kind = request_kind(body)
    if not is_database_outage(error):
        logger.error("unexpected error while handling a %s: %s", kind, error.__class__.__name__, exc_info=error)
        return None
    metrics.DATABASE_UNAVAILABLE.labels(kind).inc()
    logger.warning("database unavailable (%s) while handling a %s; asked to try again", error.__class__.__name__, kind)
    if kind == "command":
        return BoltResponse(status=200, body={"response_type": "ephemeral", "text": DATABASE_DOWN})
    return BoltResponse(status=503, body="")
