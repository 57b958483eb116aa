"""The playground's own HTTP server, on 127.0.0.1 only: the page, and a small JSON API that it polls.

GET  /api/state?user=U&channel=C&thread=TS&since=V  what `user` sees; with `since`, waits (long poll) until
                                                     something changed after version V, or 20 s passed
POST /api/send   {user, channel, text, thread_ts?}   the message box: a message, a reply or a /command
POST /api/react  {user, channel, ts, reaction}       toggle a reaction
POST /api/shortcut {user, channel, ts, callback_id}  a message shortcut (the message's "More actions")
POST /api/click  {user, action_id, value?, channel?, message_ts?, view_id?}   a button or a select
POST /api/submit {user, view_id, values}             submit a modal ({block_id: {action_id: value}})
POST /api/close  {user, view_id}                     close a modal
POST /api/home   {user}                              open the App Home
POST /api/digest {channel}                           post the channel's digest now
POST /api/travel {hours}                             move the clock forward
"""

from __future__ import annotations

import json
import logging
import signal
import sys
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from bot.config import Settings
from bot.playground.server import Playground, PlaygroundError
from bot.runtime.http import HttpServer, StartResponse, WSGIApp

logger = logging.getLogger("peerlearn.playground")

HOST = "127.0.0.1"  # never reachable from another machine: the playground has no authentication
LONG_POLL_SECONDS = 20.0
STATIC = Path(__file__).resolve().parent / "static"
FILES = {
    "/": ("index.html", "text/html; charset=utf-8"),
    "/playground.js": ("playground.js", "text/javascript; charset=utf-8"),
    "/playground.css": ("playground.css", "text/css; charset=utf-8"),
    "/emoji.json": ("emoji.json", "application/json; charset=utf-8"),
}
Action = Callable[[Playground, dict[str, Any]], dict[str, Any]]
ACTIONS: dict[str, Action] = {
    "/api/send": lambda p, b: p.send(b["user"], b["channel"], str(b["text"]), b.get("thread_ts")),
    "/api/react": lambda p, b: p.react(b["user"], b["channel"], b["ts"], b["reaction"]),
    "/api/shortcut": lambda p, b: p.shortcut(b["user"], b["channel"], b["ts"], b["callback_id"]),
    "/api/click": lambda p, b: p.click(
        b["user"],
        b["action_id"],
        b.get("value"),
        channel=b.get("channel"),
        message_ts=b.get("message_ts"),
        view_id=b.get("view_id"),
    ),
    "/api/submit": lambda p, b: p.submit(b["user"], b["view_id"], dict(b.get("values") or {})),
    "/api/close": lambda p, b: p.close(b["user"], b["view_id"]),
    "/api/home": lambda p, b: p.open_home(b["user"]),
    "/api/digest": lambda p, b: p.post_digest(b["channel"]),
    "/api/travel": lambda p, b: p.travel(float(b["hours"])),
}


def _answer(start_response: StartResponse, status: str, body: bytes, content_type: str) -> list[bytes]:
    headers = [("Content-Type", content_type), ("Content-Length", str(len(body))), ("Cache-Control", "no-store")]
    start_response(status, headers)
    return [body]


def _json(start_response: StartResponse, status: str, payload: dict[str, Any]) -> list[bytes]:
    return _answer(start_response, status, json.dumps(payload).encode(), "application/json")


def create_playground_app(playground: Playground) -> WSGIApp:
    def application(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        method, path = environ.get("REQUEST_METHOD", "GET"), environ.get("PATH_INFO", "/")
        # Only pages served from this machine's own address may drive it (no DNS rebinding from the web).
        host = environ.get("HTTP_HOST", "")
        if (host.rpartition(":")[0] if ":" in host else host) not in (HOST, "localhost"):
            return _json(start_response, "403 Forbidden", {"error": "the playground answers on 127.0.0.1 only"})
        if method == "GET" and path in FILES:
            name, content_type = FILES[path]
            return _answer(start_response, "200 OK", (STATIC / name).read_bytes(), content_type)
        if method == "GET" and path == "/api/state":
            query = {key: values[0] for key, values in parse_qs(environ.get("QUERY_STRING", "")).items()}
            try:
                if "since" in query:
                    playground.wait_for_change(int(query["since"]), LONG_POLL_SECONDS)
                state = playground.state(query.get("user", ""), query.get("channel"), query.get("thread"))
            except (PlaygroundError, ValueError) as problem:
                return _json(start_response, "400 Bad Request", {"error": str(problem)})
            return _json(start_response, "200 OK", state)
        action = ACTIONS.get(path)
        if action is None or method != "POST":
            return _json(start_response, "404 Not Found", {"error": "not found"})
        # A JSON body needs a CORS preflight from another origin, which this server never grants.
        if not environ.get("CONTENT_TYPE", "").startswith("application/json"):
            return _json(start_response, "415 Unsupported Media Type", {"error": "send application/json"})
        try:
            body = json.loads(environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0)) or b"{}")
            return _json(start_response, "200 OK", action(playground, body))
        except PlaygroundError as refused:
            return _json(start_response, "400 Bad Request", {"error": str(refused)})
        except (KeyError, TypeError, ValueError) as problem:
            return _json(start_response, "400 Bad Request", {"error": f"bad request: {problem!r}"})

    return application


class PageServer(HttpServer):
    """waitress on 127.0.0.1, serving the page and its API; waiting long polls are answered before it stops."""

    def __init__(self, playground: Playground, port: int) -> None:
        super().__init__(create_playground_app(playground), host=HOST, port=port, threads=8)
        self.playground = playground

    def stop(self) -> None:
        self.playground.release_waiters()
        super().stop()


def serve(playground: Playground, port: int, *, any_port_if_taken: bool = False) -> PageServer:
    """The page on http://127.0.0.1:PORT (`port` 0: a free one)."""
    try:
        server = PageServer(playground, port)
    except OSError as busy:
        if not any_port_if_taken:
            raise PlaygroundError(f"Port {port} is not free ({busy.strerror}): pass --port N.") from None
        server = PageServer(playground, 0)
    server.start()
    return server


def run(settings: Settings, port: int, *, any_port_if_taken: bool = False) -> int:
    """`python app.py playground`: serve until Ctrl-C (or SIGTERM)."""
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    playground = Playground(settings).start()
    try:
        server = serve(playground, port, any_port_if_taken=any_port_if_taken)
    except PlaygroundError as problem:
        playground.stop()
        print(f"PeerLearn playground can't start: {problem}", file=sys.stderr)
        return 2
    print(
        f"PeerLearn playground: {server.url}\n"
        "A local simulation: PeerLearn runs against a built-in Slack emulator on this machine; nothing reaches "
        "a real Slack workspace. Press Ctrl-C to stop.",
        flush=True,
    )
    try:
        stop.wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
        playground.stop()
    return 0
