"""The ways a Slack call fails, and its error code (what the code means to a person: bot/messages/errors.py)."""

from __future__ import annotations

import http.client
import json

from slack_sdk.errors import SlackApiError

# A call Slack never answered: it timed out, the connection was refused or cut (what slack_sdk's retry
# handlers gave up on), or what came back was not Slack's JSON. Whether Slack did what was asked is unknown.
NO_ANSWER: tuple[type[Exception], ...] = (OSError, http.client.HTTPException, json.JSONDecodeError)
# Every way a Slack call fails: Slack said no (SlackApiError), or never said.
SLACK_FAILURES: tuple[type[Exception], ...] = (SlackApiError, *NO_ANSWER)
NO_ANSWER_CODE = "slack_unreachable"

# Errors that mean this workspace's token no longer works: stop using it and say so in the logs.
AUTH_ERRORS = frozenset({"invalid_auth", "token_revoked", "account_inactive", "not_authed", "token_expired"})


def error_code(exc: BaseException) -> str:
    """Slack's error code, "ratelimited" for an HTTP 429, or NO_ANSWER_CODE for a call Slack never answered."""
    if not isinstance(exc, SlackApiError):
        return NO_ANSWER_CODE
    response = exc.response
    code = response.get("error") if response is not None else None
    if response is not None and response.status_code == 429:
        return "ratelimited"
    return str(code or "unknown_error")


def may_have_happened(exc: BaseException) -> bool:
    """Whether a failed call may still have done its work: no answer came, or Slack answered with a 5xx."""
    if not isinstance(exc, SlackApiError):
        return True
    return exc.response is not None and exc.response.status_code >= 500
