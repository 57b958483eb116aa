"""Signed requests from "Slack" to the bot: slash commands, Events API envelopes and interactivity payloads.

Wire formats as in `shared/slack-payloads/README.md`; signature as in SLACK-CONTRACT.md section 3
(`v0=` + HMAC-SHA256 over `v0:{timestamp}:{raw body}`), built with slack_sdk's own SignatureVerifier.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from email.message import Message
from typing import Any, Literal
from urllib.parse import urlencode

from slack_sdk.signature import SignatureVerifier

Signing = Literal["valid", "forged", "missing", "stale"]
STALE_SECONDS = 60 * 5 + 1  # Slack's replay window is five minutes
USER_AGENT = "Slackbot 1.0 (+https://api.slack.com/robots)"


@dataclass
class Response:
    status: int
    headers: Message  # http.client's: names are case-insensitive, as in HTTP
    body: str
    meta: dict[str, str] = field(default_factory=dict)  # e.g. response_url, trigger_id, event_id

    def json(self) -> Any:
        return json.loads(self.body) if self.body else None


def sign(secret: str, body: bytes | str, timestamp: int | None = None) -> dict[str, str]:
    """The two headers Slack adds: X-Slack-Request-Timestamp and X-Slack-Signature."""
    timestamp = int(time.time()) if timestamp is None else timestamp
    signature = SignatureVerifier(secret).generate_signature(timestamp=str(timestamp), body=body) or ""
    return {"X-Slack-Request-Timestamp": str(timestamp), "X-Slack-Signature": signature}


def signature_headers(secret: str, body: bytes, signing: Signing = "valid") -> dict[str, str]:
    """Headers for a correct signature, or for one of the ways a request can be badly signed."""
    if signing == "missing":
        return {}
    if signing == "stale":
        return sign(secret, body, int(time.time()) - STALE_SECONDS)
    if signing == "forged":
        return sign(secret + "-not-the-real-secret", body)
    return sign(secret, body)


class SlackSender:
    """Sends signed requests to the bot's endpoint (`POST {url}`), as Slack does."""

    def __init__(self, url: str, signing_secret: str, timeout: float = 10.0) -> None:
        self.url = url
        self.signing_secret = signing_secret
        self.timeout = timeout

    def send(
        self,
        body: bytes,
        content_type: str,
        *,
        signing: Signing = "valid",
        headers: Mapping[str, str] | None = None,
    ) -> Response:
        all_headers = {
            "Content-Type": content_type,
            "User-Agent": USER_AGENT,
            "Accept": "application/json,*/*",
        }
        all_headers |= signature_headers(self.signing_secret, body, signing)
        all_headers |= dict(headers or {})
        request = urllib.request.Request(self.url, data=body, headers=all_headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as reply:
                return Response(reply.status, reply.headers, reply.read().decode("utf-8"))
        except urllib.error.HTTPError as error:
            return Response(error.code, error.headers, error.read().decode("utf-8"))

    def slash_command(self, fields: Mapping[str, str], *, signing: Signing = "valid") -> Response:
        body = urlencode(fields).encode()
        return self.send(body, "application/x-www-form-urlencoded", signing=signing)

    def event(
        self,
        envelope: Mapping[str, Any],
        *,
        retry_num: int | None = None,
        retry_reason: str = "http_timeout",
        signing: Signing = "valid",
    ) -> Response:
        headers = {"X-Slack-Retry-Num": str(retry_num), "X-Slack-Retry-Reason": retry_reason} if retry_num else {}
        body = json.dumps(envelope).encode()
        return self.send(body, "application/json", signing=signing, headers=headers)

    def interactivity(self, payload: Mapping[str, Any], *, signing: Signing = "valid") -> Response:
        body = urlencode({"payload": json.dumps(payload)}).encode()
        return self.send(body, "application/x-www-form-urlencoded", signing=signing)


# --- payload builders (shapes from shared/slack-payloads) --------------------------------------------


def slash_command_fields(
    *,
    team_id: str,
    team_domain: str,
    api_app_id: str,
    channel_id: str,
    channel_name: str,
    user_id: str,
    user_name: str,
    command: str,
    text: str,
    response_url: str,
    trigger_id: str,
) -> dict[str, str]:
    """Form fields of a slash command, in the order Slack sends them (slash_command.json)."""
    return {
        "token": "deprecated-verification-token",
        "team_id": team_id,
        "team_domain": team_domain,
        "channel_id": channel_id,
        "channel_name": channel_name,
        "user_id": user_id,
        "user_name": user_name,
        "command": command,
        "text": text,
        "api_app_id": api_app_id,
        "is_enterprise_install": "false",
        "response_url": response_url,
        "trigger_id": trigger_id,
    }


def event_envelope(
    event: Mapping[str, Any],
    *,
    team_id: str,
    api_app_id: str,
    event_id: str,
    event_time: int,
    bot_user_id: str,
) -> dict[str, Any]:
    """An Events API `event_callback` around one inner event."""
    return {
        "token": "deprecated-verification-token",
        "team_id": team_id,
        "api_app_id": api_app_id,
        "event": dict(event),
        "type": "event_callback",
        "event_id": event_id,
        "event_time": event_time,
        "authorizations": [
            {"team_id": team_id, "user_id": bot_user_id, "is_bot": True, "is_enterprise_install": False}
        ],
        "is_ext_shared_channel": False,
        "event_context": f"4-{event_id}",
    }


def user_ref(user_id: str, user_name: str, team_id: str) -> dict[str, str]:
    return {"id": user_id, "username": user_name, "name": user_name, "team_id": team_id}


def block_actions_payload(
    *,
    team: Mapping[str, str],
    user: Mapping[str, str],
    api_app_id: str,
    actions: list[dict[str, Any]],
    trigger_id: str,
    container: Mapping[str, Any],
    channel: Mapping[str, str] | None = None,
    message: Mapping[str, Any] | None = None,
    view: Mapping[str, Any] | None = None,
    response_url: str | None = None,
) -> dict[str, Any]:
    """A `block_actions` payload from a message, an ephemeral message or a view (Home tab, modal)."""
    payload: dict[str, Any] = {
        "type": "block_actions",
        "user": dict(user),
        "api_app_id": api_app_id,
        "token": "deprecated-verification-token",
        "container": dict(container),
        "trigger_id": trigger_id,
        "team": dict(team),
        "enterprise": None,
        "is_enterprise_install": False,
        "actions": actions,
    }
    optional = {"channel": channel, "message": message, "view": view, "response_url": response_url}
    payload.update({key: value for key, value in optional.items() if value is not None})
    if view is None:
        payload["state"] = {"values": {}}
    return payload


def view_submission_payload(
    *,
    team: Mapping[str, str],
    user: Mapping[str, str],
    api_app_id: str,
    view: Mapping[str, Any],
    trigger_id: str,
) -> dict[str, Any]:
    """A `view_submission` payload (interactivity_view_submission.json); `view.state.values` filled in."""
    return {
        "type": "view_submission",
        "team": dict(team),
        "user": dict(user),
        "api_app_id": api_app_id,
        "token": "deprecated-verification-token",
        "trigger_id": trigger_id,
        "view": dict(view),
        "response_urls": [],
        "enterprise": None,
        "is_enterprise_install": False,
    }


def message_action_payload(
    *,
    team: Mapping[str, str],
    user: Mapping[str, str],
    channel: Mapping[str, str],
    callback_id: str,
    trigger_id: str,
    response_url: str,
    message: Mapping[str, Any],
    action_ts: str,
) -> dict[str, Any]:
    """A message shortcut's `message_action` payload (Slack's "Shortcuts interaction payloads": callback_id,
    trigger_id, response_url, the message with its full structure, the channel it is in)."""
    return {
        "type": "message_action",
        "token": "deprecated-verification-token",
        "action_ts": action_ts,
        "team": dict(team),
        "user": dict(user),
        "channel": dict(channel),
        "is_enterprise_install": False,
        "enterprise": None,
        "callback_id": callback_id,
        "trigger_id": trigger_id,
        "response_url": response_url,
        "message_ts": message["ts"],
        "message": dict(message),
    }
