"""The HTTP surface with Bolt: Slack's requests go to Bolt, or into the inbox; /healthz says whether this
replica can serve; /metrics is for Prometheus.

With `queueing`, an Events API delivery or an /ask question (bot/acks.py) is acknowledged as soon as it is
stored in the inbox, as `serve`'s front does it (bot/front.py), and an in-process worker hands it to Bolt
afterwards (bot/worker.py): `serve --workers 0`, the tests. Without, everything goes to Bolt at once: the
workers behind `serve`'s front, which forwards them what it does not queue."""

from __future__ import annotations

import contextvars
import io
import json
import logging
from collections.abc import Callable, Collection, Iterable
from typing import Any

from slack_bolt import App
from slack_bolt.adapter.wsgi import SlackRequestHandler

from bot import metrics
from bot.acks import MAX_BODY, Queueing, Screening
from bot.logging_setup import request_kind
from models.inbox import Inbox
from models.migrate import applied_revisions
from models.session import Store
from models.workspace import count_disabled_workspaces, disabled_workspaces

logger = logging.getLogger("peerlearn.web")

StartResponse = Callable[..., Any]
WSGIApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]

SLACK_PATHS = {"/slack/events", "/slack/install", "/slack/oauth_redirect"}
STARTING = {"error": "starting, try again shortly"}
HTTP_STATUS = {400: "400 Bad Request", 401: "401 Unauthorized"}


def json_response(start_response: StartResponse, status: str, payload: dict[str, Any]) -> list[bytes]:
    body = json.dumps(payload).encode()
    start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]


def read_body(environ: dict[str, Any], limit: int = MAX_BODY) -> bytes | None:
    """The request body, put back so that Bolt can read it again; None when it is longer than `limit`."""
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0
    if length > limit:
        return None
    body = environ["wsgi.input"].read(length) if length > 0 else b""
    environ["wsgi.input"] = io.BytesIO(body)
    return body


def acknowledge(
    queueing: Queueing[Inbox], environ: dict[str, Any], respond: StartResponse, raw: bytes, key: str, otherwise: WSGIApp
) -> Iterable[bytes]:
    """Store an authenticated request (`raw`, its body) and answer an empty 200; a request the inbox cannot
    take goes to `otherwise`."""
    try:
        queueing.inbox.put(*queueing.stored(key, raw, environ.get("CONTENT_TYPE")))
    except Exception as error:
        queueing.refused(error)
        return otherwise(environ, respond)
    respond("200 OK", [("Content-Length", "0")])
    return [b""]


MAX_DISABLED_LISTED = 20


def health(store: Store, heads: Collection[str] | None) -> tuple[bool, dict[str, Any]]:
    """Healthy once the database answers and has `heads`, the revisions this replica migrated it to (None
    while it has not yet: starting). Disabled workspaces (Slack refused their token, PeerLearn was uninstalled)
    are listed with why, but leave the replica healthy: no other replica would do better (bot/workspaces.py)."""
    if not store.ping():
        return False, {"status": "unavailable", "database": "unreachable"}
    if heads is None:
        return False, {"status": "starting", "database": "ok"}
    try:
        pending = sorted(set(heads) - applied_revisions(store.engine))
        if pending:
            return False, {"status": "starting", "database": "ok", "pending_migrations": pending}
        with store.session() as session:
            disabled = disabled_workspaces(session, limit=MAX_DISABLED_LISTED)
            disabled_total = count_disabled_workspaces(session) if disabled else 0
    except Exception as exc:  # a half-created schema must not crash the probe
        return False, {"status": "unavailable", "database": f"unreadable ({exc.__class__.__name__})"}
    payload: dict[str, Any] = {"status": "ok", "database": "ok", "migrations": "at head"}
    if disabled:
        payload |= {"disabled_workspaces": disabled, "disabled_workspaces_total": disabled_total}
    return True, payload


def create_wsgi_app(
    bolt_app: App,
    store: Store,
    migrated: Callable[[], Collection[str] | None],
    queueing: Queueing[Inbox] | None = None,
    screening: Screening | None = None,
) -> WSGIApp:
    """`migrated`: the revisions this replica migrated the database to, None while it is still waiting for
    its database at start (Slack then gets a 503 and retries; /healthz says why). With `queueing`, requests
    that can be are acknowledged into the inbox. `screening` (the queueing's, if not given) authenticates
    and reads /slack/events requests before Bolt sees them."""
    slack = SlackRequestHandler(bolt_app)
    if screening is None:
        screening = queueing.screening if queueing is not None else Screening(None)

    def to_bolt(environ: dict[str, Any], respond: StartResponse) -> Iterable[bytes]:
        # A fresh context per request: log fields set while handling it never leak into the next one.
        return contextvars.copy_context().run(slack, environ, respond)

    def slack_events(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        """Nothing but the size and the signature is looked at before a request is authenticated."""
        raw = read_body(environ)
        if raw is None:
            return json_response(start_response, "413 Request Entity Too Large", {"error": "request too large"})
        timestamp, signature = environ.get("HTTP_X_SLACK_REQUEST_TIMESTAMP"), environ.get("HTTP_X_SLACK_SIGNATURE")
        status, body = screening.admit(raw, environ.get("CONTENT_TYPE"), timestamp, signature)
        if body is None:
            refused = HTTP_STATUS[status]
            return metrics.observe_slack_request(
                "other", lambda respond: json_response(respond, refused, {"error": "invalid request"}), start_response
            )
        key = queueing.key(body, environ.get("REQUEST_METHOD", "")) if queueing is not None else None
        if queueing is not None and key is not None:
            handle = lambda respond: acknowledge(queueing, environ, respond, raw, key, to_bolt)  # noqa: E731
        else:
            handle = lambda respond: to_bolt(environ, respond)  # noqa: E731
        return metrics.observe_slack_request(request_kind(body), handle, start_response)

    def application(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path in SLACK_PATHS:
            if migrated() is None:
                return json_response(start_response, "503 Service Unavailable", STARTING)
            if path != "/slack/events":
                return metrics.observe_slack_request("oauth", lambda respond: to_bolt(environ, respond), start_response)
            return slack_events(environ, start_response)
        if path == "/metrics":
            page, content_type = metrics.render()
            start_response("200 OK", [("Content-Type", content_type), ("Content-Length", str(len(page)))])
            return [page]
        if path == "/healthz":
            ok, payload = health(store, migrated())
            return json_response(start_response, "200 OK" if ok else "503 Service Unavailable", payload)
        return json_response(start_response, "404 Not Found", {"error": "not found"})

    return application
