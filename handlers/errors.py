"""Bolt's error handling: Slack refusing our token disables the workspace; a database outage gets a clear "try
again" (an ephemeral for a command, a 503 for everything else, so Slack redelivers it)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

from slack_bolt import BoltResponse
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

from bot import metrics
from bot.messages.errors import DATABASE_DOWN
from bot.runtime.logging import request_kind
from bot.services import Services
from bot.slack_errors import AUTH_ERRORS
from bot.workspaces import disable_refused_workspace

logger = logging.getLogger("peerlearn.slack")


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
