"""`serve`'s HTTP front: acknowledges what can wait in the inbox, forwards everything else to its workers.

`python app.py serve` is two kinds of process. This one, the front, listens for Slack: an Events API delivery
or an /ask question (bot/acks.py) is acknowledged as soon as it is stored in the inbox (its signature checked
with slack_sdk's verifier, as Bolt checks it; one INSERT; an empty 200). Every other request (interactivity,
/teach, help, OAuth, /healthz) is forwarded as it came to the worker processes, which run the Bolt app over
HTTP on a socket the front opened for them, and their answer goes back to Slack; so does a request the inbox
could not take. The workers also take the inbox's requests to Bolt (bot/worker.py) and run the scheduler.

The front loads no Bolt, SQLAlchemy or models (tests/test_front.py checks): it is small (~31 MB resident,
bench/memory.py) and has no other work in its interpreter to wait behind. `serve --workers 0`, an in-memory
database and the tests use one process instead: bot/web.py, the same acknowledgement with Bolt beside it.
"""

from __future__ import annotations

import http.client
import io
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import quote, unquote_plus

import waitress
from slack_sdk.signature import SignatureVerifier

from bot import metrics
from bot.acks import inbox_key
from bot.clock import Clock
from bot.config import Settings
from bot.inbox_writer import InboxWriter, inbox_location
from bot.logging_setup import request_kind

logger = logging.getLogger("peerlearn.front")

StartResponse = Callable[..., Any]
WSGIApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]


class Appends(Protocol):
    def put(self, request_key: str, content_type: str, body: str, now: Any) -> None: ...


def json_response(start_response: StartResponse, status: str, payload: dict[str, Any]) -> list[bytes]:
    body = json.dumps(payload).encode()
    start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]


def read_body(environ: dict[str, Any]) -> bytes:
    """The request body, put back so that Bolt (or the forwarder) can read it again."""
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0
    body = environ["wsgi.input"].read(length) if length > 0 else b""
    environ["wsgi.input"] = io.BytesIO(body)
    return body


# What the front decides on (bot/acks.py, request_kind); a form's other fields are left to Bolt.
_FORM_FIELDS = frozenset({"command", "trigger_id", "text", "payload"})


def peek(raw: bytes, content_type: str | None) -> dict[str, Any] | None:
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


def classify(
    environ: dict[str, Any], key_for: Callable[[dict[str, Any]], str | None] | None
) -> tuple[bytes, str, str | None]:
    """A Slack request's raw body, its kind (for metrics) and its inbox key (`key_for`), None when it may not
    wait there."""
    raw = read_body(environ)
    body = peek(raw, environ.get("CONTENT_TYPE"))
    if body is None:
        return raw, "other", None
    key = key_for(body) if key_for is not None and environ.get("REQUEST_METHOD") == "POST" else None
    return raw, request_kind(body), key


class Queueing:
    """Acknowledging requests into the inbox: which may wait there, and storing them."""

    def __init__(
        self,
        inbox: Appends,
        key_for: Callable[[dict[str, Any]], str | None],
        signing_secret: str | None,
        clock: Clock,
    ) -> None:
        self.inbox = inbox
        self.key_for = key_for
        self.verifier = SignatureVerifier(signing_secret) if signing_secret else None
        self.clock = clock

    def acknowledge(
        self, environ: dict[str, Any], respond: StartResponse, raw: bytes, key: str, otherwise: WSGIApp
    ) -> Iterable[bytes]:
        """Store the request (`raw`, its body) and answer an empty 200; a request the inbox cannot take goes to
        `otherwise`."""
        if not self.authentic(raw, environ):
            return json_response(respond, "401 Unauthorized", {"error": "invalid request"})
        if not self.store(key, raw, environ.get("CONTENT_TYPE") or ""):
            return otherwise(environ, respond)
        respond("200 OK", [("Content-Length", "0")])
        return [b""]

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


# Headers that concern one connection, not the request or response itself (RFC 9110 §7.6.1).
_HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding", "upgrade", "content-length"}
)
FORWARD_TIMEOUT = 10.0  # seconds; Slack itself waits 3 s for an ack


class Upstream:
    """The workers' HTTP server, on the socket the front opened for them and they share; one kept-alive
    connection per front thread."""

    def __init__(self, host: str, port: int, timeout: float = FORWARD_TIMEOUT) -> None:
        self.host, self.port, self.timeout = host, port, timeout
        self._local = threading.local()

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        body = read_body(environ)
        path = quote(environ.get("PATH_INFO", "/"))
        if environ.get("QUERY_STRING"):
            path += "?" + environ["QUERY_STRING"]
        headers = {
            name[5:].replace("_", "-").title(): value
            for name, value in environ.items()
            if name.startswith("HTTP_") and name[5:].replace("_", "-").lower() not in _HOP_BY_HOP
        }
        if environ.get("CONTENT_TYPE"):
            headers["Content-Type"] = environ["CONTENT_TYPE"]
        headers["Content-Length"] = str(len(body))
        headers["X-Forwarded-For"] = environ.get("REMOTE_ADDR", "")
        try:
            response, content = self._exchange(environ.get("REQUEST_METHOD", "GET"), path, body, headers)
        except OSError as error:  # includes timeouts and http.client's errors about a closed connection
            logger.warning("no worker answered %s (%s)", environ.get("PATH_INFO"), error.__class__.__name__)
            return json_response(start_response, "503 Service Unavailable", {"error": "busy, try again shortly"})
        kept = [(name, value) for name, value in response.getheaders() if name.lower() not in _HOP_BY_HOP]
        start_response(f"{response.status} {response.reason}", [*kept, ("Content-Length", str(len(content)))])
        return [content]

    def _exchange(
        self, method: str, path: str, body: bytes, headers: dict[str, str]
    ) -> tuple[http.client.HTTPResponse, bytes]:
        kept: http.client.HTTPConnection | None = getattr(self._local, "connection", None)
        if kept is not None:
            try:
                return self._send(kept, method, path, body, headers)
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                pass  # a kept-alive connection its worker had closed (it restarted): once more, on a new one
        return self._send(
            http.client.HTTPConnection(self.host, self.port, timeout=self.timeout), method, path, body, headers
        )

    def _send(
        self, connection: http.client.HTTPConnection, method: str, path: str, body: bytes, headers: dict[str, str]
    ) -> tuple[http.client.HTTPResponse, bytes]:
        """One exchange; the connection is kept for this thread's next one only if it went through."""
        self._local.connection = None
        try:
            connection.request(method, path, body, headers)
            response = connection.getresponse()
            content = response.read()
        except BaseException:
            connection.close()
            raise
        self._local.connection = connection
        return response, content


def create_front_app(queueing: Queueing, upstream: WSGIApp) -> WSGIApp:
    def application(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path == "/metrics":
            page, content_type = metrics.render()
            start_response("200 OK", [("Content-Type", content_type), ("Content-Length", str(len(page)))])
            return [page]
        if path != "/slack/events":
            return upstream(environ, start_response)
        raw, kind, key = classify(environ, queueing.key_for)
        if key is not None:
            handle = lambda respond: queueing.acknowledge(environ, respond, raw, key, upstream)  # noqa: E731
        else:
            handle = lambda respond: upstream(environ, respond)  # noqa: E731
        return metrics.observe_slack_request(kind, handle, start_response)

    return application


# The inbox's worker processes run at a lower CPU priority than the front: acks have Slack's 3-second
# deadline, the work after them has none (on a busy machine it waits, in the inbox).
WORKER_NICENESS = 19
APP = Path(__file__).resolve().parent.parent / "app.py"


class WorkerProcesses:
    """`serve`'s workers: `python app.py work` processes with the server's environment, serving HTTP on
    `listener` (when given), started again when one ends, stopped with the server."""

    def __init__(self, count: int, listener: socket.socket | None = None) -> None:
        self.count = count
        self.listener = listener
        self._processes: list[subprocess.Popen[bytes]] = []
        self._stopping = threading.Event()
        self._supervisor = threading.Thread(target=self._supervise, name="peerlearn-workers", daemon=True)

    def start(self) -> WorkerProcesses:
        self._processes = [self._spawn() for _ in range(self.count)]
        self._supervisor.start()
        return self

    @property
    def pids(self) -> list[int]:
        return [process.pid for process in self._processes]

    def _spawn(self) -> subprocess.Popen[bytes]:
        command = [sys.executable, str(APP), "work", "--parent-pid", str(os.getpid())]
        descriptors: tuple[int, ...] = ()
        if self.listener is not None:
            descriptors = (self.listener.fileno(),)
            command += ["--listen-fd", str(self.listener.fileno())]
        process = subprocess.Popen(command, pass_fds=descriptors, preexec_fn=lambda: os.nice(WORKER_NICENESS))
        logger.info("worker process %s started", process.pid)
        return process

    def _supervise(self) -> None:
        pause = 1.0
        while not self._stopping.wait(pause):
            for number, process in enumerate(self._processes):
                if process.poll() is not None and not self._stopping.is_set():
                    code = process.returncode
                    logger.error("worker process %s ended (exit %s); starting another", process.pid, code)
                    self._processes[number] = self._spawn()

    def stop(self, timeout: float = 15.0) -> None:
        self._stopping.set()
        for process in self._processes:
            if process.poll() is None:
                process.terminate()
        for process in self._processes:
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def run(settings: Settings, host: str, port: int, threads: int, workers: int) -> int:
    """`serve`: the front on host:port, `workers` worker processes behind it, until SIGTERM or SIGINT."""
    location = inbox_location(settings.database_url)
    assert location is not None, "an in-memory database has no inbox: serve it in one process (bot/runtime.py)"
    # The workers' socket: opened here, so requests wait in its backlog while a worker (re)starts.
    listener = socket.create_server(("127.0.0.1", 0))
    upstream = Upstream(*listener.getsockname()[:2])
    writer = InboxWriter(location)
    queueing = Queueing(writer, lambda body: inbox_key(body, settings), settings.signing_secret, Clock())
    processes = WorkerProcesses(workers, listener).start()
    # SIGTERM (docker stop, systemd) ends waitress's loop like Ctrl-C: the workers finish what they hold.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    logger.info("PeerLearn serving HTTP on %s:%s (POST /slack/events, GET /healthz)", host, port)
    try:
        waitress.serve(create_front_app(queueing, upstream), host=host, port=port, threads=threads, ident="PeerLearn")
    finally:
        processes.stop()
        writer.close()
        listener.close()
    return 0
