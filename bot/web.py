"""The HTTP surface: Slack's requests go to Bolt; /healthz says whether this replica can serve; /metrics
is for Prometheus."""

from __future__ import annotations

import contextvars
import io
import json
from collections.abc import Callable, Iterable
from typing import Any

from slack_bolt import App
from slack_bolt.adapter.wsgi import SlackRequestHandler
from slack_bolt.request.internals import parse_body

from bot import metrics
from bot.logging_setup import request_kind
from models.migrate import pending_migrations
from models.session import Store

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


def classify(environ: dict[str, Any]) -> str:
    """The kind of Slack request, for metrics (Bolt's own parser; a body it can't parse is "other")."""
    if environ.get("PATH_INFO") != "/slack/events":
        return "oauth"
    try:
        body = parse_body(_read_body(environ).decode("utf-8"), environ.get("CONTENT_TYPE"))
    except ValueError:
        return "other"
    return request_kind(body) if isinstance(body, dict) else "other"


def create_wsgi_app(bolt_app: App, store: Store, ready: Callable[[], bool] = lambda: True) -> WSGIApp:
    """`ready` is False while the replica is still waiting for its database at start: Slack gets a 503
    (and retries), /healthz says why."""
    slack = SlackRequestHandler(bolt_app)

    def application(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path in SLACK_PATHS:
            if not ready():
                return _json(start_response, "503 Service Unavailable", {"error": "starting, try again shortly"})
            # A fresh context per request: log fields set while handling it never leak into the next one.
            handle = contextvars.copy_context().run
            return metrics.observe_slack_request(
                classify(environ), lambda respond: handle(slack, environ, respond), start_response
            )
        if path == "/metrics":
            body, content_type = metrics.render()
            start_response("200 OK", [("Content-Type", content_type), ("Content-Length", str(len(body)))])
            return [body]
        if path == "/healthz":
            ok, payload = health(store)
            if ok and not ready():  # reachable, but this replica has not finished starting (migrating)
                ok, payload = False, {**payload, "status": "starting"}
            return _json(start_response, "200 OK" if ok else "503 Service Unavailable", payload)
        return _json(start_response, "404 Not Found", {"error": "not found"})

    return application
