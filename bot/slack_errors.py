"""What Slack's error codes mean for the person who clicked, and for the operator; and the ways a Slack call
fails."""

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

_EXPLANATIONS = {
    "not_in_channel": "I'm not a member of this channel yet. Add me with `/invite @PeerLearn`, then try again.",
    "channel_not_found": (
        "I can't see this channel: it may be private or a direct message. Add me with `/invite @PeerLearn` "
        "in a channel, then try again there."
    ),
    "is_archived": "This channel is archived, so nothing can be posted here. Try again in an active channel.",
    "user_not_found": "I couldn't find that person in this workspace.",
    "user_not_in_channel": "That person is not a member of this channel.",
    "ratelimited": "Slack asked me to slow down. Please try again in a minute.",
    "rate_limited": "Slack asked me to slow down. Please try again in a minute.",
    "restricted_action": "This workspace doesn't allow me to post here. An admin can change that.",
    "missing_scope": "I'm missing a permission for this. An admin needs to reinstall PeerLearn from its manifest.",
    "msg_too_long": "That message is too long for Slack. Please shorten it and try again.",
    NO_ANSWER_CODE: (
        "Slack didn't answer in time, so I can't tell whether that went through. Please check, and try again in a "
        "minute if it didn't."
    ),
}
_DEFAULT = "Slack refused that ({code}). Please try again; if it keeps happening, tell whoever runs PeerLearn."


def error_code(exc: BaseException) -> str:
    """Slack's error code, "ratelimited" for an HTTP 429, or NO_ANSWER_CODE for a call Slack never answered."""
    if not isinstance(exc, SlackApiError):
        return NO_ANSWER_CODE
    response = exc.response
    code = response.get("error") if response is not None else None
    if response is not None and response.status_code == 429:
        return "ratelimited"
    return str(code or "unknown_error")


def explain(code: str) -> str:
    if code in AUTH_ERRORS:
        return "PeerLearn's connection to this workspace was revoked. An admin needs to reinstall the app."
    return _EXPLANATIONS.get(code, _DEFAULT.format(code=code))


def may_have_happened(exc: BaseException) -> bool:
    """Whether a failed call may still have done its work: no answer came, or Slack answered with a 5xx."""
    if not isinstance(exc, SlackApiError):
        return True
    return exc.response is not None and exc.response.status_code >= 500
