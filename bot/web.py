"""The HTTP surface: Slack's requests go to Bolt; /healthz says whether this replica can serve."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import Any

from slack_bolt import App
from slack_bolt.adapter.wsgi import SlackRequestHandler

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


def create_wsgi_app(bolt_app: App, store: Store) -> WSGIApp:
    slack = SlackRequestHandler(bolt_app)

    def application(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path in SLACK_PATHS:
            return slack(environ, start_response)
        if path == "/healthz":
            ok, payload = health(store)
            return _json(start_response, "200 OK" if ok else "503 Service Unavailable", payload)
        return _json(start_response, "404 Not Found", {"error": "not found"})

    return application
