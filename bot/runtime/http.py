"""Serving HTTP: Bolt's WSGI adapter under waitress, one server process per replica.

Slack's requests go to Bolt, or into the inbox (models/inbox.py): an Events API delivery or an /ask whose ack
is blank (bot/asking.py) is acknowledged as soon as it is stored, and the inbox worker (bot/runtime/worker.py)
hands it to Bolt afterwards. Nothing but the size and the signature of a request is looked at before it is
authenticated. /healthz says whether this replica can serve; /metrics is for Prometheus.

waitress is configured for clients on the open internet (`server_options`): bounded headers and bodies,
bodies over a few kB spooled to disk, idle connections and requests that do not arrive whole in time closed.
"""

from __future__ import annotations

import contextvars
import io
import json
import logging
import threading
import time
from collections.abc import Callable, Collection, Iterable
from datetime import datetime
from typing import Any
from urllib.parse import unquote_plus

from slack_bolt import App
from slack_bolt.adapter.wsgi import SlackRequestHandler
from slack_sdk.signature import SignatureVerifier
from waitress import wasyncore
from waitress.adjustments import Adjustments
from waitress.channel import HTTPChannel
from waitress.parser import HTTPRequestParser
from waitress.server import TcpWSGIServer
from waitress.task import ThreadedTaskDispatcher

from bot.clock import Clock
from bot.runtime import metrics
from bot.runtime.logging import request_kind
from models.inbox import Inbox
from models.migrate import applied_revisions
from models.session import Store
from models.workspace import count_disabled_workspaces, disabled_workspaces

logger = logging.getLogger("peerlearn.http")

StartResponse = Callable[..., Any]
WSGIApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]

SLACK_PATHS = {"/slack/events", "/slack/install", "/slack/oauth_redirect"}
STARTING = {"error": "starting, try again shortly"}
HTTP_STATUS = {400: "400 Bad Request", 401: "401 Unauthorized"}

MAX_BODY = 1 << 20  # bytes; Slack's requests are a few kB (a modal's state, at most some tens of kB)
# What the server decides on (inbox_key, request_kind); a form's other fields are left to Bolt.
_FORM_FIELDS = frozenset({"command", "trigger_id", "text", "payload"})


def peek(raw: bytes, content_type: str | None) -> dict[str, Any] | None:
    """The fields of a request that say what it is: all of a JSON body (an event); of a form (a command, or
    interactivity's `payload`), only _FORM_FIELDS, decoded as Bolt's parser would. None when unparseable
    (not UTF-8, not JSON, JSON nested too deep to read, not an object)."""
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
    except (ValueError, RecursionError):
        return None


class Screening:
    """What the server does with a Slack request before anything else: nothing but its signature is looked at
    until it is authenticated (slack_sdk's verifier, as Bolt checks it); then its body is read as Bolt would
    read it. The size is checked before (MAX_BODY)."""

    def __init__(self, signing_secret: str | None) -> None:
        self.verifier = SignatureVerifier(signing_secret) if signing_secret else None

    def authentic(self, raw: bytes, timestamp: str | None, signature: str | None) -> bool:
        if self.verifier is None:  # no signing secret: Bolt does not check either (local use only)
            return True
        if not timestamp or not signature:
            return False
        try:
            return self.verifier.is_valid(raw, timestamp, signature)
        except ValueError:  # a timestamp that is not a number
            return False

    def admit(
        self, raw: bytes, content_type: str | None, timestamp: str | None, signature: str | None
    ) -> tuple[int, dict[str, Any] | None]:
        """(200, the body's fields) for a request Bolt may have; (401, None) when it is not signed by Slack,
        (400, None) when its body is not something Slack sends. A refusal is logged in one line."""
        if not self.authentic(raw, timestamp, signature):
            logger.info("refused a request without a valid Slack signature (401, %s bytes)", len(raw))
            return 401, None
        body = peek(raw, content_type)
        if body is None:
            logger.info("refused a signed request whose body Slack would not send (400, %s bytes)", len(raw))
            return 400, None
        return 200, body


class Queueing:
    """Acknowledging requests into the inbox: which may wait there (`key_for`: bot/asking.inbox_key) and what
    is stored."""

    def __init__(
        self, inbox: Inbox, key_for: Callable[[dict[str, Any]], str | None], signing_secret: str | None, clock: Clock
    ) -> None:
        self.inbox = inbox
        self.key_for = key_for
        self.screening = Screening(signing_secret)
        self.clock = clock

    def key(self, body: dict[str, Any], method: str) -> str | None:
        """An authenticated request's inbox key, None when it may not wait there."""
        return self.key_for(body) if method == "POST" else None

    def stored(self, key: str, raw: bytes, content_type: str | None) -> tuple[str, str, str, datetime]:
        """The inbox's `put` arguments for a request."""
        return key, content_type or "", raw.decode("utf-8"), self.clock.now()

    @staticmethod
    def refused(error: BaseException) -> None:
        logger.warning("the inbox could not take a request (%s); handling it at once", error.__class__.__name__)


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
    queueing: Queueing, environ: dict[str, Any], respond: StartResponse, raw: bytes, key: str, otherwise: WSGIApp
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
    queueing: Queueing | None = None,
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


# --- waitress -------------------------------------------------------------------------------------------

# A connection with nothing to do for this long is closed, and so is one whose request has not arrived whole
# in this time (slow headers, a body held back). Slack sends a request at once and waits 3 s for the answer;
# 30 s leaves a slow mobile link room for a 1 MiB body and keeps Slack's connections alive between requests,
# while a client holding connections open costs each of them for half a minute at most.
CHANNEL_TIMEOUT = 30.0
CLEANUP_INTERVAL = 2  # seconds between looks for connections past their time
MAX_HEADERS = 64 * 1024  # bytes; Slack's headers are well under 2 kB
SPOOL_OVER = 64 * 1024  # bytes of a request body kept in memory; the rest waits in a temporary file
CONNECTION_LIMIT = 1000  # open connections before waitress stops accepting: hundreds of idle ones leave room


def server_options(threads: int = 8, channel_timeout: float = CHANNEL_TIMEOUT) -> dict[str, Any]:
    """waitress's Adjustments for serving Slack (and anyone else on the internet) directly."""
    return {
        "threads": threads,
        "channel_timeout": channel_timeout,
        "cleanup_interval": min(CLEANUP_INTERVAL, max(1, int(channel_timeout))),
        "max_request_header_size": MAX_HEADERS,
        "max_request_body_size": MAX_BODY + 1,  # waitress refuses a body of this size or more
        "inbuf_overflow": SPOOL_OVER,
        "connection_limit": CONNECTION_LIMIT,
        "asyncore_use_poll": True,  # select() cannot watch more than 1,024 sockets
        "expose_tracebacks": False,
        "ident": "PeerLearn",
    }


class _TimedParser(HTTPRequestParser):
    """A request being received, with when its first byte arrived."""

    def __init__(self, adj: Adjustments) -> None:
        super().__init__(adj)
        self.started = time.monotonic()


class _Channel(HTTPChannel):
    parser_class = _TimedParser


class _Server(TcpWSGIServer):
    """waitress's TCP server, which closes idle connections (channel_timeout), also closing those whose
    request has not arrived whole within channel_timeout: a client sending a byte now and then is never idle."""

    channel_class = _Channel

    def maintenance(self, now: float) -> None:
        super().maintenance(now)
        cutoff = time.monotonic() - self.adj.channel_timeout
        for channel in list(self.active_channels.values()):
            request = channel.request
            if request is not None and not request.completed and request.started < cutoff:
                channel.will_close = True


def without_body_for_head(app: WSGIApp) -> WSGIApp:
    """HEAD gets a GET's status and headers and no body. waitress sends whatever body the app returns, which
    the client, expecting none, would read as the start of the next response on a kept-alive connection."""

    def application(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        body = app(environ, start_response)
        if environ.get("REQUEST_METHOD") != "HEAD":
            return body
        try:
            for _ in body:  # run the app to its end (start_response may come with the first chunk)
                pass
        finally:
            close = getattr(body, "close", None)
            if close is not None:
                close()
        return []

    return application


class HttpServer:
    """waitress serving `wsgi_app` on host:port (`port=0`: a free one), its loop on this thread (`serve`) or
    on a thread of its own (`start`)."""

    def __init__(
        self,
        wsgi_app: WSGIApp,
        host: str = "127.0.0.1",
        port: int = 0,
        threads: int = 8,
        channel_timeout: float = CHANNEL_TIMEOUT,
    ) -> None:
        adjustments = Adjustments(host=host, port=port, **server_options(threads, channel_timeout))
        self.tasks = ThreadedTaskDispatcher()
        self.tasks.set_thread_count(threads)
        self._map: dict[int, Any] = {}
        self._server = _Server(without_body_for_head(wsgi_app), map=self._map, dispatcher=self.tasks, adj=adjustments)
        self.host = host
        self.port = int(self._server.effective_port)
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> HttpServer:
        self._thread = threading.Thread(target=self.serve, name="peerlearn-http", daemon=True)
        self._thread.start()
        return self

    def serve(self) -> None:
        """Until `stop_accepting` (or `stop`): short loop turns, so that another thread can end the loop."""
        while not self._stopping.is_set():
            self._turn()

    def _turn(self) -> None:
        wasyncore.loop(timeout=0.05, map=self._map, use_poll=True, count=1)

    def stop_accepting(self) -> None:
        self._stopping.set()

    def drain(self, grace: float) -> bool:
        """After `stop_accepting`, on the loop's thread: close the listening socket, then serve the requests
        already received for at most `grace` seconds (their answers are written by this loop). Whether they
        all finished."""
        self._server.close()
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            busy = (
                self.tasks.active_count
                or self.tasks.queue
                or any(
                    channel.requests or channel.total_outbufs_len
                    for channel in self._map.values()
                    if isinstance(channel, HTTPChannel)
                )
            )
            if not busy:
                return True
            self._turn()
        return False

    def stop(self) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self.tasks.shutdown()
        wasyncore.close_all(self._map)
