"""The HTTP surface: Slack's requests go to Bolt, or into the inbox; /healthz says whether this replica can
serve; /metrics is for Prometheus.

An Events API delivery or an /ask question (handlers.inbox_key) is acknowledged as soon as it is stored in
the inbox (models/inbox.py): its signature checked with slack_sdk's verifier, as Bolt checks it, one INSERT,
an empty 200. A worker hands it to Bolt afterwards (bot/worker.py). Everything else (interactivity, other
commands, OAuth) goes to Bolt at once, and so does a request the inbox could not take."""

from __future__ import annotations

import contextvars
import io
import json
import logging
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import unquote_plus

from slack_bolt import App
from slack_bolt.adapter.wsgi import SlackRequestHandler
from slack_sdk.signature import SignatureVerifier

from bot import metrics
from bot.clock import Clock
from bot.logging_setup import request_kind
from models.inbox import Inbox
from models.migrate import pending_migrations
from models.session import Store

logger = logging.getLogger("peerlearn.web")

StartResponse = Callable[..., Any]
WSGIApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]

SLACK_PATHS = {"/slack/events", "/slack/install", "/slack/oauth_redirect"}


def _json(start_response: StartResponse, status: str, payload: dict[str, Any]) -> list[bytes]:
    body = json.dumps(payload).encode()
    start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]


def health(store: Store) -> tuple[bool, dict[str, Any]]:
    """Healthy once the database answers and has every migration."""
    if not store.ping():
        return False, {"status": "unavailable", "database": "unreachable"}
    try:
        pending = sorted(pending_migrations(store.engine))
    except Exception as exc:  # a half-created schema must not crash the probe
        return False, {"status": "unavailable", "database": f"unreadable ({exc.__class__.__name__})"}
    if pending:
        return False, {"status": "starting", "database": "ok", "pending_migrations": pending}
    return True, {"status": "ok", "database": "ok", "migrations": "at head"}


def _read_body(environ: dict[str, Any]) -> bytes:
    """The request body, put back so Bolt can read it again."""
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0
    body = environ["wsgi.input"].read(length) if length > 0 else b""
    environ["wsgi.input"] = io.BytesIO(body)
    return body


# What the front decides on (handlers.inbox_key, request_kind); a form's other fields are left to Bolt.
_FORM_FIELDS = frozenset({"command", "trigger_id", "text", "payload"})


def _peek(raw: bytes, content_type: str | None) -> dict[str, Any] | None:
    """The fields of a request that say what it is: all of a JSON body (an event); of a form (a command, or
    interactivity's `payload`), only _FORM_FIELDS, decoded as Bolt's parser would. None when unparseable."""
    try:
        text = raw.decode("utf-8")
        if content_type == "application/json" or text.startswith("{"):
            body = json.loads(text)
            return body if isinstance(body, dict) else None
        fields = {}
        for pair in text.split("&"):
            name, _, value = pair.partition("=")
            if name in _FORM_FIELDS:
                fields[name] = unquote_plus(value)
        if "payload" in fields:
            payload = json.loads(fields["payload"])
            return payload if isinstance(payload, dict) else None
        return fields
    except ValueError:
        return None


class Queueing:
    """What the front needs to acknowledge requests into the inbox."""

    def __init__(
        self,
        inbox: Inbox,
        key_for: Callable[[dict[str, Any]], str | None],
        signing_secret: str | None,
        clock: Clock,
    ) -> None:
        self.inbox = inbox
        self.key_for = key_for
        self.verifier = SignatureVerifier(signing_secret) if signing_secret else None
        self.clock = clock

    def authentic(self, raw: bytes, environ: dict[str, Any]) -> bool:
        if self.verifier is None:  # no signing secret: Bolt does not check either (local use only)
            return True
        timestamp, signature = environ.get("HTTP_X_SLACK_REQUEST_TIMESTAMP"), environ.get("HTTP_X_SLACK_SIGNATURE")
        if not timestamp or not signature:
            return False
        try:
            return self.verifier.is_valid(raw, timestamp, signature)
        except ValueError:  # a timestamp that is not a number
            return False

    def store(self, key: str, raw: bytes, content_type: str) -> bool:
        """True once the request is in the inbox; False (logged) when the inbox could not take it."""
        try:
            self.inbox.put(key, content_type, raw.decode("utf-8"), self.clock.now())
        except Exception as exc:
            logger.warning("the inbox could not take a request (%s); handling it at once", exc.__class__.__name__)
            return False
        return True


def create_wsgi_app(
    bolt_app: App, store: Store, ready: Callable[[], bool] = lambda: True, queueing: Queueing | None = None
) -> WSGIApp:
    """`ready` is False while the replica is still waiting for its database at start: Slack gets a 503
    (and retries), /healthz says why. With `queueing`, requests that can be are acknowledged into the inbox."""
    slack = SlackRequestHandler(bolt_app)

    def to_bolt(environ: dict[str, Any], respond: StartResponse) -> Iterable[bytes]:
        # A fresh context per request: log fields set while handling it never leak into the next one.
        return contextvars.copy_context().run(slack, environ, respond)

    def queue_or_bolt(environ: dict[str, Any], respond: StartResponse, raw: bytes, key: str) -> Iterable[bytes]:
        assert queueing is not None
        if not queueing.authentic(raw, environ):
            return _json(respond, "401 Unauthorized", {"error": "invalid request"})
        if not queueing.store(key, raw, environ.get("CONTENT_TYPE") or ""):
            return to_bolt(environ, respond)
        respond("200 OK", [("Content-Length", "0")])
        return [b""]

    def application(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path in SLACK_PATHS:
            if not ready():
                return _json(start_response, "503 Service Unavailable", {"error": "starting, try again shortly"})
            if path != "/slack/events":
                return metrics.observe_slack_request("oauth", lambda respond: to_bolt(environ, respond), start_response)
            raw = _read_body(environ)
            body = _peek(raw, environ.get("CONTENT_TYPE"))
            kind = request_kind(body) if body is not None else "other"
            key = queueing.key_for(body) if queueing is not None and body is not None else None
            if key is not None and environ.get("REQUEST_METHOD") == "POST":
                handle = lambda respond: queue_or_bolt(environ, respond, raw, key)  # noqa: E731
            else:
                handle = lambda respond: to_bolt(environ, respond)  # noqa: E731
            return metrics.observe_slack_request(kind, handle, start_response)
        if path == "/metrics":
            page, content_type = metrics.render()
            start_response("200 OK", [("Content-Type", content_type), ("Content-Length", str(len(page)))])
            return [page]
        if path == "/healthz":
            ok, payload = health(store)
            if ok and not ready():  # reachable, but this replica has not finished starting (migrating)
                ok, payload = False, {**payload, "status": "starting"}
            return _json(start_response, "200 OK" if ok else "503 Service Unavailable", payload)
        return _json(start_response, "404 Not Found", {"error": "not found"})

    return application
