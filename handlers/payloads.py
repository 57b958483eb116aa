"""What every payload must carry before Bolt and the listeners read it (Bolt's `before_authorize` middleware).

Slack's payloads always name their workspace, the person and, for a command, the channel; text never holds a
NUL character or half of a UTF-16 surrogate pair. A signed payload may still lack them (a test, a proxy gone
wrong, someone holding the signing secret): then the listeners would fail half-way, or the database would
refuse the text (PostgreSQL cannot store NUL) and that would pass for an outage. So, once, for every request:
characters no database stores are dropped from its strings, and a payload without what its listeners need is
answered here, in one log line: a command with a word for the person (Slack shows them its ack), anything
else with an empty ack (Slack would only retry what nobody can handle).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from typing import Any

from slack_bolt import BoltContext, BoltResponse

from bot.messages.errors import UNUSABLE_COMMAND
from bot.runtime.logging import log_context_middleware, request_kind

logger = logging.getLogger("peerlearn.payloads")

COMMAND_FIELDS = ("team_id", "user_id", "channel_id", "trigger_id")
INTERACTIVE = ("action", "view", "shortcut", "options")
# NUL (PostgreSQL refuses it in text) and lone surrogates (no UTF-8 encoding exists for them).
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def storable(text: str) -> str:
    """The text without NUL characters; a lone surrogate becomes the replacement character."""
    return _UNSTORABLE.sub(lambda match: "" if match.group() == "\x00" else "\ufffd", text)


def scrub(body: dict[str, Any]) -> None:
    """Make every string in the payload (keys and values, however deeply nested) storable, in place."""
    pending: list[Any] = [body]
    while pending:  # a loop, not recursion: a payload may be nested as deep as JSON allows
        node = pending.pop()
        if isinstance(node, list):
            for index, value in enumerate(node):
                if isinstance(value, str):
                    node[index] = storable(value)
                else:
                    pending.append(value)
        elif isinstance(node, dict):
            for key, value in list(node.items()):
                if isinstance(value, str):
                    node[key] = storable(value)
                else:
                    pending.append(value)
                if _UNSTORABLE.search(key):
                    node[storable(key)] = node.pop(key)


def _names(node: Any, key: str) -> bool:
    """Whether `node` is an object whose `key` is a non-empty string."""
    return isinstance(node, dict) and isinstance(node.get(key), str) and bool(node[key])


def missing_fields(body: dict[str, Any]) -> list[str]:
    """What a payload lacks that its listeners rely on (empty when it has it all)."""
    kind = request_kind(body)
    if kind == "command":
        return [name for name in COMMAND_FIELDS if not _names(body, name)]
    if kind in INTERACTIVE:
        user = body.get("user")
        missing = [] if _names(user, "id") else ["user"]
        if not (_names(body.get("team"), "id") or _names(user, "team_id")):
            missing.append("team")
        if kind == "view" and not _names(body.get("view"), "id"):
            missing.append("view")
        return missing
    if kind == "event":
        event = body.get("event")
        return [] if isinstance(event, dict) and isinstance(event.get("type"), str) else ["event"]
    return []


def before_authorize(context: BoltContext, body: dict[str, Any], next: Callable[[], BoltResponse]) -> BoltResponse:
    """Bolt's `before_authorize` middleware: the payload is checked before Bolt's own middleware reads it (its
    authorization step assumes an event is an object), then every log line of the request is given its
    context (bot/runtime/logging.py)."""
    return check_payload(body, lambda: log_context_middleware(context, body, next))


def check_payload(body: dict[str, Any], next: Callable[[], BoltResponse]) -> BoltResponse:
    scrub(body)
    missing = missing_fields(body)
    if not missing:
        return next()
    kind = request_kind(body)
    logger.info("a %s payload without %s was answered without handling it", kind, ", ".join(missing))
    if kind == "command":
        names = " or ".join(f"a {name.removesuffix('_id')} id" for name in missing)
        return BoltResponse(
            status=200, body={"response_type": "ephemeral", "text": UNUSABLE_COMMAND.format(missing=names)}
        )
    return BoltResponse(status=200, body="")
