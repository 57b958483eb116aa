"""Structured logs: one line per record (key=value or JSON) carrying the request's team, channel and event id.

The request context lives in a contextvar, set by a Bolt global middleware for every request (HTTP and
Socket Mode) and carried into lazy listeners by bot.runtime.metrics.ObservedExecutor. A redaction filter on the
handler guarantees that no Slack token or secret, and no whole payload, reaches the output.
"""

from __future__ import annotations

import contextvars
import json
import logging
import re
import sys
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, TextIO

CONTEXT_FIELDS = ("kind", "event_type", "team", "channel", "user", "event_id")
MAX_MESSAGE_CHARS = 2000
MAX_FIELD_CHARS = 80
# Keys worth keeping when a payload-like mapping is logged: identifiers, never content.
SUMMARY_KEYS = ("type", "subtype", "event_id", "team_id", "channel", "user", "ts", "ok", "error", "command")

_request_context: contextvars.ContextVar[Mapping[str, str] | None] = contextvars.ContextVar(
    "peerlearn_log_context", default=None
)

_SECRET_PATTERNS = (
    # Slack tokens: bot/user/app/config/refresh (xoxb-, xoxp-, xapp-, xoxe.xoxb-, xoxe-…).
    (re.compile(r"\b(?:xox[a-z]?(?:\.xox[a-z])?|xapp)-[A-Za-z0-9\-]+"), "[redacted-token]"),
    # Authorization headers.
    (re.compile(r"\b(Bearer|Basic)\s+[A-Za-z0-9._~+/=\-]+", re.IGNORECASE), r"\1 [redacted]"),
    # secret=…, "client_secret": "…", token: … (JSON, repr and key=value forms).
    (
        re.compile(
            r"""(\b(?:client_secret|signing_secret|secret|token|access_token|refresh_token|password)\b['"]?\s*[:=]\s*['"]?)"""
            r"""[^\s'",&}]+""",
            re.IGNORECASE,
        ),
        r"\1[redacted]",
    ),
)


def redact(text: str) -> str:
    for pattern, replacement in _SECRET_PATTERNS:
        text = pattern.sub(replacement, text)
    return text


def _short(value: Any, limit: int = MAX_FIELD_CHARS) -> str:
    text = str(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def summarize(value: Any) -> Any:
    """A mapping or list logged as an argument becomes a short description: ids are kept, content is not."""
    if isinstance(value, Mapping):
        kept = {key: _short(value[key]) for key in SUMMARY_KEYS if isinstance(value.get(key), str | int | bool)}
        inner = value.get("event")
        if isinstance(inner, Mapping) and "type" in inner:
            kept["event.type"] = _short(inner["type"])
        shown = " ".join(f"{key}={val}" for key, val in kept.items())
        return f"<{len(value)}-key payload{': ' + shown if shown else ''}>"
    if isinstance(value, list | tuple | set):
        return f"<{type(value).__name__} of {len(value)} items>"
    return value


# --- the request context ---------------------------------------------------------------------------


def bind(**fields: str | None) -> contextvars.Token[Mapping[str, str] | None]:
    """Set the whole request context (fields not given are cleared)."""
    clean = {key: _short(value) for key, value in fields.items() if key in CONTEXT_FIELDS and value}
    return _request_context.set(clean)


def current() -> dict[str, str]:
    return dict(_request_context.get() or {})


def request_kind(body: Mapping[str, Any]) -> str:
    """What a Slack request is: command, event, action, view, shortcut, options, url_verification…"""
    if body.get("command"):
        return "command"
    kind = body.get("type")
    if kind == "event_callback":
        return "event"
    if kind == "block_actions" or kind == "interactive_message":
        return "action"
    if kind in ("view_submission", "view_closed"):
        return "view"
    if kind in ("shortcut", "message_action"):
        return "shortcut"
    if kind in ("block_suggestion", "dialog_suggestion"):
        return "options"
    if kind in ("url_verification", "app_rate_limited"):
        return str(kind)
    return "other"


def _first(*values: Any) -> str | None:
    for value in values:
        if isinstance(value, str) and value:
            return value
    return None


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def log_context_middleware(context: Any, body: Mapping[str, Any], next: Callable[[], Any]) -> Any:
    """Bolt global middleware: every log line of this request names its team, channel and event."""
    event = _mapping(body.get("event"))
    item = _mapping(event.get("item"))
    bind(
        kind=request_kind(body),
        event_type=_first(event.get("type")),
        team=_first(context.get("team_id"), body.get("team_id")),
        channel=_first(context.get("channel_id"), event.get("channel"), item.get("channel")),
        user=_first(context.get("user_id"), event.get("user")),
        event_id=_first(body.get("event_id")),
    )
    return next()


# --- formatting ----------------------------------------------------------------------------------------


class RedactingFilter(logging.Filter):
    """Renders the message with summarized arguments, strips secrets and caps its length."""

    def filter(self, record: logging.LogRecord) -> bool:
        args: Any = record.args
        if isinstance(args, Mapping):
            # logging turns `log("%s", {...})` into mapping args: a payload unless the message names keys.
            named = "%(" in str(record.msg)
            args = {key: summarize(value) for key, value in args.items()} if named else (summarize(args),)
        elif args:
            args = tuple(summarize(arg) for arg in args)
        try:
            message = str(record.msg) % args if args else str(record.msg)
        except (TypeError, ValueError):
            message = f"{record.msg} {args}"
        message = redact(message)
        if len(message) > MAX_MESSAGE_CHARS:
            message = message[:MAX_MESSAGE_CHARS] + f"… ({len(message) - MAX_MESSAGE_CHARS} more characters dropped)"
        record.msg, record.args = message, None
        return True


class _StructuredFormatter(logging.Formatter):
    def fields(self, record: logging.LogRecord) -> dict[str, str]:
        fields = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
        }
        fields.update(current())
        fields["msg"] = record.getMessage()
        if record.exc_info:
            fields["exc"] = redact(self.formatException(record.exc_info))
        elif record.exc_text:
            fields["exc"] = redact(record.exc_text)
        return fields


class JsonFormatter(_StructuredFormatter):
    def format(self, record: logging.LogRecord) -> str:
        return json.dumps(self.fields(record), ensure_ascii=False)


class KeyValueFormatter(_StructuredFormatter):
    """logfmt: `ts=… level=INFO logger=peerlearn.events team=T1 channel=C1 event_id=Ev1 msg="…"`."""

    def format(self, record: logging.LogRecord) -> str:
        return " ".join(f"{key}={self._value(value)}" for key, value in self.fields(record).items())

    @staticmethod
    def _value(value: str) -> str:
        if value and not any(c in value for c in ' "=\n\t'):
            return value
        return json.dumps(value, ensure_ascii=False)


def build_handler(log_format: str = "text", stream: TextIO | None = None) -> logging.Handler:
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if log_format == "json" else KeyValueFormatter())
    handler.addFilter(RedactingFilter())
    return handler


def configure_logging(level: str = "INFO", log_format: str = "text", stream: TextIO | None = None) -> None:
    """One structured handler on the root logger (replacing any other), at `level`; some libraries' loggers
    held higher (a logger's own level decides for what it logs, whatever the root's)."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    root.addHandler(build_handler(log_format, stream))
    root.setLevel(level)
    for name, floor in LIBRARY_FLOORS.items():
        logging.getLogger(name).setLevel(max(root.level, floor))


# Loggers held at a level of their own, whatever LOG_LEVEL says (higher still when it is higher):
LIBRARY_FLOORS = {
    # waitress warns "Task queue depth is N" for each request that waits for a free thread: under a burst, a
    # line per request, each costing the request its formatting. /metrics shows it as peerlearn_requests_in_flight.
    "waitress.queue": logging.ERROR,
    # Lines that tell the person running PeerLearn nothing: each plugin Alembic loads and each migration it runs
    # (models/migrate.py says in one line what changed), each job APScheduler adds, runs and finishes. Their
    # warnings and errors stay.
    "alembic": logging.WARNING,
    "apscheduler": logging.WARNING,
    # The loggers that carry Slack's payloads: at DEBUG, slack_sdk logs every Web API request and response body
    # (message texts, OAuth codes; slack_sdk even formats them whenever its logger's own level allows DEBUG),
    # its Socket Mode client every envelope, Bolt every ack's body and the bot's own events. Held at INFO, so
    # that no message text, code, token or secret is logged at any level; LOG_LEVEL=DEBUG adds PeerLearn's own
    # details and the other libraries' (database driver, HTTP servers, scheduler).
    "slack_sdk": logging.INFO,
    "slack_bolt": logging.INFO,
    "peerlearn.slack_sdk": logging.INFO,  # the bot's WebClients (bot/runtime/app.py)
    "peerlearn.bolt": logging.INFO,  # Bolt's framework logger, whose level its own loggers copy
    "peerlearn.oauth.flow": logging.INFO,  # Bolt's OAuth flow (bot/runtime/oauth.py)
}
