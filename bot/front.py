"""`serve`'s HTTP front: acknowledges what can wait in the inbox, forwards everything else to its workers.

`python app.py serve` is two kinds of process. This one, the front, listens for Slack: an Events API delivery
or an /ask question (bot/acks.py) is acknowledged as soon as it is stored in the inbox (its signature checked
with slack_sdk's verifier, as Bolt checks it; one INSERT; an empty 200). Every other request (interactivity,
/teach, help, OAuth, /healthz) is forwarded as it came to the worker processes, which run the Bolt app over
HTTP on a socket the front opened for them, and their answer goes back to Slack; so does a request the inbox
could not take. The workers also take the inbox's requests to Bolt (bot/worker.py) and run the scheduler.

The front is an ASGI app on uvicorn (httptools, uvloop where installed): one event loop reads the requests,
and the acks read in one turn of it are stored with one INSERT (bot/inbox_writer.LoopAppender), so an ack
costs no thread switch and no hand-over of the interpreter lock. Measured against a bare Bolt app on waitress
that only acks (bench/ack_latency.py), the same front on waitress spent as much CPU per request as that app;
on uvicorn it takes 2-3x the requests per second at 8 and 32 clients. Forwarded requests are rare (buttons,
forms, /teach) and go through a small thread pool (`--threads`).

The front loads no Bolt, SQLAlchemy or models (tests/test_front.py checks). `serve --workers 0`, an in-memory
database and the tests use one process instead: bot/web.py, the same acknowledgement with Bolt beside it.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Awaitable, Callable, MutableMapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import uvicorn

from bot import metrics
from bot.acks import MAX_BODY, Queueing, inbox_key
from bot.cli import WORKER_GRACE
from bot.clock import Clock
from bot.config import Settings
from bot.inbox_writer import LoopAppender, inbox_location
from bot.logging_setup import request_kind

logger = logging.getLogger("peerlearn.front")

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
Headers = list[tuple[str, str]]


async def respond(send: Send, status: int, headers: Headers, body: bytes = b"") -> None:
    head = [(name.encode("latin-1"), value.encode("latin-1")) for name, value in headers]
    head.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": head})
    await send({"type": "http.response.body", "body": body})


async def respond_json(send: Send, status: int, payload: dict[str, Any]) -> None:
    await respond(send, status, [("Content-Type", "application/json")], json.dumps(payload).encode())


class ClientGone(Exception):
    """The client closed the connection before its request's body had arrived."""


async def read_body(receive: Receive, limit: int = MAX_BODY) -> bytes | None:
    """The whole request body; None when it is longer than `limit`. Raises ClientGone."""
    parts: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":  # http.disconnect: nothing to answer, nothing to store
            raise ClientGone
        part = message.get("body", b"")
        size += len(part)
        if size > limit:
            return None
        parts.append(part)
        if not message.get("more_body"):
            return b"".join(parts)


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

    def exchange(
        self, method: str, target: str, headers: Headers, body: bytes, client: str = ""
    ) -> tuple[int, Headers, bytes]:
        """Forward one request (blocking: run it on a thread); its answer's status, headers (this connection's
        own left out) and body. A 503 when no worker answered."""
        sent = {name: value for name, value in headers if name.lower() not in _HOP_BY_HOP}
        sent["Content-Length"] = str(len(body))
        sent["X-Forwarded-For"] = client
        try:
            response, content = self._exchange(method, target, body, sent)
        except OSError as error:  # includes timeouts and http.client's errors about a closed connection
            logger.warning("no worker answered %s (%s)", target.split("?", 1)[0], error.__class__.__name__)
            answer = json.dumps({"error": "busy, try again shortly"}).encode()
            return 503, [("Content-Type", "application/json")], answer
        kept = [(name, value) for name, value in response.getheaders() if name.lower() not in _HOP_BY_HOP]
        return response.status, kept, content

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


async def acknowledge(queueing: Queueing[LoopAppender], raw: bytes, content_type: str | None, key: str) -> bool:
    """Store an authenticated request (`raw`, its body): False when the inbox could not take it (then Bolt
    must handle it at once)."""
    try:
        await queueing.inbox.put(*queueing.stored(key, raw, content_type))
    except Exception as error:
        queueing.refused(error)
        return False
    return True


def create_front_app(queueing: Queueing[LoopAppender], upstream: Upstream, forwarding: ThreadPoolExecutor) -> ASGIApp:
    """The front as an ASGI app: /slack/events acked into the inbox or forwarded, /metrics, the rest
    forwarded."""

    async def forward(scope: Scope, send: Send, headers: Headers, body: bytes) -> int:
        target = scope["raw_path"].decode("latin-1") if scope.get("raw_path") else scope["path"]
        if scope.get("query_string"):
            target += "?" + scope["query_string"].decode("latin-1")
        client = scope["client"][0] if scope.get("client") else ""
        status, answer_headers, content = await asyncio.get_running_loop().run_in_executor(
            forwarding, upstream.exchange, scope["method"], target, headers, body, client
        )
        await respond(send, status, answer_headers, content)
        return status

    async def application(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":  # lifespan is off; websockets are not served
            return
        path = scope["path"]
        if path == "/metrics":
            page, content_type = metrics.render()
            await respond(send, 200, [("Content-Type", content_type)], page)
            return
        try:
            raw = await read_body(receive)
        except ClientGone:
            return
        if raw is None:
            await respond_json(send, 413, {"error": "request too large"})
            return
        headers = [(name.decode("latin-1"), value.decode("latin-1")) for name, value in scope["headers"]]
        if path != "/slack/events":
            await forward(scope, send, headers, raw)
            return
        started = time.perf_counter()
        named = dict(headers)  # ASGI header names are lower-case
        # Nothing but the size (above) and the signature is looked at before a request is authenticated.
        status, body = queueing.screening.admit(
            raw, named.get("content-type"), named.get("x-slack-request-timestamp"), named.get("x-slack-signature")
        )
        kind = request_kind(body) if body is not None else "other"
        metrics.IN_FLIGHT.inc()
        answered = 500
        try:
            if body is None:
                answered = status
                await respond_json(send, status, {"error": "invalid request"})
                return
            key = queueing.key(body, scope["method"])
            if key is not None and await acknowledge(queueing, raw, named.get("content-type"), key):
                answered = 200
                await respond(send, 200, [])
            else:
                answered = await forward(scope, send, headers, raw)
        finally:
            metrics.IN_FLIGHT.dec()
            metrics.record_slack_request(kind, str(answered), started)

    return application


# The inbox's worker processes run at a lower CPU priority than the front: acks have Slack's 3-second
# deadline, the work after them has none (on a busy machine it waits, in the inbox).
WORKER_NICENESS = 19
# A stopping worker finishes its batch and gives its listeners WORKER_GRACE seconds (bot/cli.py's `work`); the
# front waits that long and a little more before it kills it. (What it still had not posted stays owed.)
WORKER_STOP_WAIT = WORKER_GRACE + 10.0
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

    def stop(self, timeout: float = WORKER_STOP_WAIT) -> None:
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
    """`serve`: the front on host:port, `workers` worker processes behind it, until SIGTERM or SIGINT; `threads`
    forward requests to them."""
    location = inbox_location(settings.database_url)
    assert location is not None, "an in-memory database has no inbox: serve it in one process (bot/runtime.py)"
    # The workers' socket: opened here, so requests wait in its backlog while a worker (re)starts.
    listener = socket.create_server(("127.0.0.1", 0))
    upstream = Upstream(*listener.getsockname()[:2])
    appender = LoopAppender(location)
    queueing = Queueing(appender, lambda body: inbox_key(body, settings), settings.signing_secret, Clock())
    forwarding = ThreadPoolExecutor(threads, thread_name_prefix="peerlearn-forward")
    processes = WorkerProcesses(workers, listener).start()
    # uvicorn stops on SIGTERM or SIGINT (the requests under way are answered), then raises that signal again
    # with the handler it found: ours ends the process the ordinary way, stopping the workers first (below).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    config = uvicorn.Config(
        create_front_app(queueing, upstream, forwarding),
        host=host,
        port=port,
        lifespan="off",
        log_config=None,  # bot/logging_setup.py's
        access_log=False,
        server_header=False,
        timeout_graceful_shutdown=int(FORWARD_TIMEOUT),
    )
    logger.info("PeerLearn serving HTTP on %s:%s (POST /slack/events, GET /healthz)", host, port)
    try:
        uvicorn.Server(config).run()
    finally:
        processes.stop()
        forwarding.shutdown(wait=False, cancel_futures=True)
        appender.close()
        listener.close()
    return 0
