"""A fake Slack Web API on localhost that records every call and checks it against Slack's contract.

Point a real `slack_sdk.WebClient(base_url=fake.base_url)` at it. Each call is recorded (`calls`),
checked (`violations`: missing arguments, Block Kit limits, broadcast mentions, unknown methods or tokens)
and answered from a small world state (users, channels, messages, views) the way Slack would, errors too.
"""

from __future__ import annotations

import base64
import contextlib
import json
import secrets
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from bot.playground.emulator.contract import Problem
from bot.playground.emulator.signing import slash_command_fields
from bot.playground.emulator.socket_mode import SocketModeServer
from bot.playground.emulator.web_methods import WebMethods
from bot.playground.emulator.workspace import (
    APP_ID,
    BOT_ID,
    BOT_USER_ID,
    TEAM_DOMAIN,
    TEAM_ID,
    Json,
    ResponseUrl,
    SlackError,
    Violation,
)

__all__ = ["APP_ID", "BOT_ID", "BOT_TOKEN", "BOT_USER_ID", "TEAM_DOMAIN", "TEAM_ID", "Call", "FakeSlackAPI"]
__all__ += ["ConnectionCut", "SlackError", "Violation"]

BOT_TOKEN = "xoxb-test-token"
JSON_ARGS = ("blocks", "view", "attachments", "metadata")
RESPONSE_URL_MAX_USES = 5


@dataclass
class Call:
    method: str  # a Web API method, or "response_url"
    args: Json
    token: str | None
    at: float = field(default_factory=time.monotonic)
    target: str = ""  # the response_url posted to
    status: int = 200
    response: Json = field(default_factory=dict)
    answered: bool = True  # False: Slack did the call, but the connection closed before its answer (drop_responses)

    @property
    def ok(self) -> bool:
        return bool(self.response.get("ok"))

    def __str__(self) -> str:
        args = json.dumps(self.args, default=str)
        args = args if len(args) <= 240 else args[:237] + "..."
        outcome = "ok" if self.ok else f"error={self.response.get('error')} (HTTP {self.status})"
        return f"{self.method} {args} -> {outcome}" + ("" if self.answered else ", connection cut before the answer")


class ConnectionCut(Exception):
    """Raised by an `after_applying` action: the connection closes with no answer (the client sees it cut)."""


@dataclass
class _Interception:
    action: Callable[[Call], None]
    times: int


@dataclass
class _Failure:
    error: str
    times: int
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    extra: Json = field(default_factory=dict)


class FakeSlackAPI(WebMethods):
    """A threaded HTTP server that plays the Slack Web API for one workspace (team T0001, bot UBOT)."""

    def __init__(self, *, now: Callable[[], float] | None = None, tokens: Iterable[str] = (BOT_TOKEN,)):
        super().__init__(now)
        self.tokens = set(tokens)
        self.refused: dict[str, str] = {}  # token -> the error Slack answers every call with it
        self.calls: list[Call] = []
        self._failures: dict[str, list[_Failure]] = {}
        self._delays: dict[str, float] = {}
        self._interceptions: dict[str, list[_Interception]] = {}
        self.oauth_apps: dict[str, str] = {}  # "Add to Slack": client_id -> client_secret
        self._oauth_codes: dict[str, Json] = {}  # one-time codes the authorize page hands out
        self.socket_mode: dict[str, SocketModeServer] = {}  # app-level token -> its Socket Mode endpoint
        self._stopping = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # --- lifecycle ---------------------------------------------------------------------------------

    def start(self) -> FakeSlackAPI:
        server = _Server(self)
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, args=(0.05,), name="fake-slack-api", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        for endpoint in self.socket_mode.values():
            endpoint.stop()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = self._thread = None

    def __enter__(self) -> FakeSlackAPI:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("FakeSlackAPI is not started")
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    @property
    def base_url(self) -> str:
        return f"{self.url}/api/"

    # --- OAuth ("Add to Slack") ---------------------------------------------------------------------

    def add_oauth_app(self, client_id: str, client_secret: str) -> None:
        with self.lock:
            self.oauth_apps[client_id] = client_secret

    def approve_install(
        self, user_id: str, *, client_id: str, scopes: str, team_id: str = TEAM_ID, team_name: str = "PeerLearn Test"
    ) -> str:
        """What Slack's authorize page does when `user_id` clicks Allow: a one-time code for the redirect."""
        with self.lock:
            if client_id not in self.oauth_apps:
                raise AssertionError(f"Slack knows no app with client_id {client_id!r}: add_oauth_app() first")
            code = secrets.token_hex(12)
            self._oauth_codes[code] = {
                "client_id": client_id,
                "user": user_id,
                "scopes": scopes,
                "team": {"id": team_id, "name": team_name},
            }
            return code

    def _oauth_v2_access(self, headers: Message, args: Json) -> Json:
        auth = headers.get("Authorization", "")
        client_id, client_secret = args.get("client_id"), args.get("client_secret")
        if auth.startswith("Basic "):
            client_id, _, client_secret = base64.b64decode(auth.removeprefix("Basic ")).decode().partition(":")
        if client_id not in self.oauth_apps:
            raise SlackError("invalid_client_id")
        if self.oauth_apps[client_id] != client_secret:
            raise SlackError("bad_client_secret")
        grant = self._oauth_codes.pop(str(args.get("code")), None)  # a code works once
        if grant is None or grant["client_id"] != client_id:
            raise SlackError("invalid_code")
        token = f"xoxb-{grant['team']['id']}-{secrets.token_hex(12)}"
        self.tokens.add(token)
        return {
            "access_token": token,
            "token_type": "bot",
            "scope": grant["scopes"],
            "bot_user_id": BOT_USER_ID,
            "app_id": APP_ID,
            "team": grant["team"],
            "enterprise": None,
            "is_enterprise_install": False,
            "authed_user": {"id": grant["user"]},
        }

    # --- Socket Mode ----------------------------------------------------------------------------------

    def enable_socket_mode(self, app_token: str) -> SocketModeServer:
        """Socket Mode on, with an app-level token (`xapp-…`, connections:write): `apps.connections.open`
        called with it hands out the endpoint's URL; the endpoint delivers what a test sends through it."""
        endpoint = SocketModeServer(APP_ID)
        with self.lock:
            self.socket_mode[app_token] = endpoint
        return endpoint

    def _apps_connections_open(self, call: Call) -> Json:
        endpoint = self.socket_mode.get(call.token or "")
        if endpoint is None:  # no token, a bot token, or an app token Slack does not know
            raise SlackError("not_allowed_token_type" if (call.token or "").startswith("xox") else "invalid_auth")
        return {"url": endpoint.url}

    def new_response_url(self, user_id: str, channel_id: str, **origin: Any) -> str:
        """A response_url served by this fake; `origin`: message_ts=..., ephemeral=True."""
        url_id = secrets.token_hex(8)
        with self.lock:
            self.response_urls[url_id] = ResponseUrl(user=user_id, channel=channel_id, **origin)
        return f"{self.url}/response/{url_id}"

    def command_fields(
        self, user_id: str, text: str, channel_id: str, *, channel_name: str, command: str = "/ask"
    ) -> dict[str, str]:
        """A slash command from `user_id` in `channel_id`, as Slack sends it: with a response_url and a
        trigger_id of this fake."""
        return slash_command_fields(
            team_id=TEAM_ID,
            team_domain=TEAM_DOMAIN,
            api_app_id=APP_ID,
            channel_id=channel_id,
            channel_name=channel_name,
            user_id=user_id,
            user_name=self.users[user_id].name,
            command=command,
            text=text,
            response_url=self.new_response_url(user_id, channel_id),
            trigger_id=self.new_trigger_id(user_id),
        )

    # --- failure injection --------------------------------------------------------------------------

    def fail(self, method: str, error: str, times: int = 1, status: int = 200, **extra: Any) -> None:
        """The next `times` calls to `method` get `{"ok": false, "error": error, **extra}`."""
        with self.lock:
            self._failures.setdefault(method, []).append(_Failure(error, times, status, extra=extra))

    def rate_limit(self, method: str, retry_after: int = 1, times: int = 1) -> None:
        """The next `times` calls get HTTP 429 with `Retry-After`, like Slack's rate limiter."""
        failure = _Failure("ratelimited", times, 429, headers={"Retry-After": str(retry_after)})
        with self.lock:
            self._failures.setdefault(method, []).append(failure)

    def revoke_token(self, token: str) -> None:
        self.refuse_token(token, "token_revoked")

    def refuse_token(self, token: str, error: str = "invalid_auth") -> None:
        """Every call with `token` gets `error` (invalid_auth, token_revoked, account_inactive…) until
        `accept_token`: Slack refusing a token the bot was given, not the bot using a wrong one."""
        with self.lock:
            self.refused[token] = error

    def accept_token(self, token: str) -> None:
        """Slack takes `token` again (a transient refusal over, a reactivated bot user, a new token)."""
        with self.lock:
            self.refused.pop(token, None)
            self.tokens.add(token)

    def respond_slowly(self, method: str, seconds: float, *, after_applying: bool = False) -> None:
        """Every call to `method` takes `seconds` more: before Slack does it, or (`after_applying`) after Slack
        did it, before the answer goes back (a client that gives up first never learns that it was done)."""
        if after_applying:

            def answer_late(_call: Call) -> None:
                self._stopping.wait(seconds)

            self.after_applying(method, answer_late, times=-1)
            return
        with self.lock:
            self._delays[method] = seconds

    def after_applying(self, method: str, action: Callable[[Call], None], times: int = 1) -> None:
        """The next `times` calls to `method` (-1: every call) are done as usual, then `action(call)` runs
        before Slack's answer goes back: it may wait (a slow answer), act meanwhile (an event that overtakes
        the answer), or raise ConnectionCut (no answer at all)."""
        with self.lock:
            self._interceptions.setdefault(method, []).append(_Interception(action, times))

    def drop_responses(self, method: str, times: int = 1) -> None:
        """The next `times` calls to `method` are done, but the connection closes before Slack's answer."""

        def cut(_call: Call) -> None:
            raise ConnectionCut(method)

        self.after_applying(method, cut, times)

    def _interception(self, method: str) -> _Interception | None:
        queue = self._interceptions.get(method, [])
        if not queue:
            return None
        interception = queue[0]
        if interception.times > 0:
            interception.times -= 1
            if interception.times == 0:
                queue.pop(0)
        return interception

    # --- assertions ---------------------------------------------------------------------------------

    def mark(self) -> int:
        """A position in `calls`, to look only at what happens afterwards (`since=`)."""
        with self.lock:
            return len(self.calls)

    def calls_to(
        self, method: str, *, since: int = 0, where: Callable[[Call], bool] | None = None, **match: Any
    ) -> list[Call]:
        with self.lock:
            return [
                call
                for call in self.calls[since:]
                if call.method == method
                and all(call.args.get(key) == value for key, value in match.items())
                and (where is None or where(call))
            ]

    def wait_for(
        self,
        method: str,
        timeout: float = 5.0,
        *,
        count: int = 1,
        since: int = 0,
        where: Callable[[Call], bool] | None = None,
        **match: Any,
    ) -> Call:
        """Wait until `count` matching calls arrived (the bot works on other threads); return the last."""
        deadline = time.monotonic() + timeout
        with self.lock:
            while len(found := self.calls_to(method, since=since, where=where, **match)) < count:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    wanted = ", ".join([f"{k}={v!r}" for k, v in match.items()] + (["where=…"] if where else []))
                    seen = "\n".join(f"  {i}. {call}" for i, call in enumerate(self.calls) if i >= since)
                    raise AssertionError(
                        f"Timed out after {timeout}s waiting for {count} x {method}({wanted}); "
                        f"got {len(found)}. Calls received{f' since #{since}' if since else ''}:\n"
                        f"{seen or '  (none)'}"
                    )
                self.lock.wait(remaining)
            return found[count - 1]

    def wait_quiet(self, idle: float = 0.2, timeout: float = 5.0) -> None:
        """Wait until no call has arrived for `idle` seconds (before asserting that nothing happened)."""
        deadline = time.monotonic() + timeout
        with self.lock:
            while True:
                last = self.calls[-1].at if self.calls else 0.0
                now = time.monotonic()
                if now - last >= idle:
                    return
                if now >= deadline:
                    raise AssertionError(f"Still receiving calls after {timeout}s; last: {self.calls[-1]}")
                self.lock.wait(min(idle - (now - last), deadline - now))

    def take_violations(self) -> list[Violation]:
        """The violations so far, forgotten (for tests that provoke them on purpose)."""
        with self.lock:
            taken, self.violations = self.violations, []
            return taken

    def assert_no_violations(self) -> None:
        with self.lock:
            if self.violations:
                listing = "\n".join(f"  - {v}\n      args: {json.dumps(v.args)[:300]}" for v in self.violations)
                raise AssertionError(f"{len(self.violations)} Slack contract violation(s):\n{listing}")

    # --- request handling ---------------------------------------------------------------------------

    def handle(self, path: str, query: str, headers: Message, body: bytes) -> tuple[int | None, dict[str, str], Json]:
        """One HTTP request → (status, headers, JSON body); status None: close the connection without an
        answer. Runs on the server's request threads."""
        if path.startswith("/response/"):
            return self._response_url_call(path.removeprefix("/response/"), headers, body)
        if not path.startswith("/api/"):
            return 404, {}, {"ok": False, "error": "not_found"}
        method = path.removeprefix("/api/")
        if delay := self._delays.get(method):
            self._stopping.wait(delay)
        auth = headers.get("Authorization", "")
        token = auth.removeprefix("Bearer ").strip() if auth.startswith("Bearer ") else None
        call = Call(method, {}, token)
        with self.lock:
            try:
                call.args, query_token = _parse_body(query, headers.get("Content-Type", ""), body)
                call.token = call.token or call.args.pop("token", None)
                if query_token:
                    self._reject(method, call.args, [Problem("invalid_auth", "token sent in the query string")])
                if method == "oauth.v2.access":  # authenticated by the app's client id/secret, not a token
                    call.response = {"ok": True, **self._oauth_v2_access(headers, call.args)}
                elif method == "apps.connections.open":  # the one method for an app-level token
                    call.response = {"ok": True, **self._apps_connections_open(call)}
                elif call.token in self.socket_mode:
                    raise SlackError("not_allowed_token_type")
                else:
                    call.response = {"ok": True, **self._answer(call)}
            except SlackError as error:
                call.status, call.response = error.status, {"ok": False, "error": error.error, **error.extra}
                headers_out = error.headers
            else:
                headers_out = {}
            self.calls.append(call)
            self.lock.notify_all()
            interception = self._interception(method)
        if interception is not None:
            try:
                interception.action(call)
            except ConnectionCut:
                with self.lock:
                    call.answered = False
                    self.lock.notify_all()
                return None, {}, {}
        return call.status, headers_out, call.response

    def _answer(self, call: Call) -> Json:
        method, args = call.method, call.args
        handler: Callable[[Json], Json] | None = getattr(self, "_api_" + method.replace(".", "_"), None)
        if handler is None:
            self._reject(method, args, [Problem("unknown_method", f"{method} is not an emulated method")])
            raise AssertionError("unreachable")
        if not call.token:
            self._reject(method, args, [Problem("not_authed", "no token (Authorization: Bearer … or token=…)")])
        if call.token in self.refused:
            raise SlackError(self.refused[call.token])
        if call.token not in self.tokens:
            self._reject(method, args, [Problem("invalid_auth", f"unknown token {call.token!r}")])
        queue = self._failures.get(call.method, [])
        if queue:
            failure = queue[0]
            failure.times -= 1
            if failure.times <= 0:
                queue.pop(0)
            raise SlackError(failure.error, failure.status, failure.headers, **failure.extra)
        self.check(method, args)
        return handler(args)

    # --- response_url -------------------------------------------------------------------------------

    def _response_url_call(self, url_id: str, headers: Message, body: bytes) -> tuple[int, dict[str, str], Json]:
        call = Call("response_url", {}, None, target=f"{self.url}/response/{url_id}")
        with self.lock:
            try:
                args, _ = _parse_body("", headers.get("Content-Type", ""), body)
                call.args = args
                origin = self.response_urls.get(url_id)
                if origin is None:
                    self._reject(call.method, args, [Problem("no_service", "unknown response_url")])
                    raise AssertionError("unreachable")
                origin.uses += 1
                if origin.uses > RESPONSE_URL_MAX_USES:
                    self._reject(call.method, args, [Problem("used_url", "used more than 5 times")])
                self.check(call.method, args)
                self._apply_response(origin, args)
                call.response = {"ok": True}
            except SlackError as error:
                call.status = 400 if error.error.startswith("invalid_") else 404
                call.response = {"ok": False, "error": error.error}
            self.calls.append(call)
            self.lock.notify_all()
        return call.status, {}, call.response


def _parse_body(query: str, content_type: str, body: bytes) -> tuple[Json, str | None]:
    """Args from a JSON or form body (plus the query string); JSON-valued form fields are decoded."""
    query_args = dict(parse_qsl(query, keep_blank_values=True))
    query_token = query_args.pop("token", None)
    args: Json = dict(query_args)
    if "application/json" in content_type:
        try:
            data = json.loads(body or b"{}")
        except ValueError:
            raise SlackError("invalid_json") from None
        if not isinstance(data, dict):
            raise SlackError("json_not_object")
        args.update(data)
    elif body:
        args.update(parse_qsl(body.decode("utf-8"), keep_blank_values=True))
    for key in JSON_ARGS:
        if isinstance(args.get(key), str) and args[key]:
            with contextlib.suppress(ValueError):  # else left as a string: invalid_blocks_format
                args[key] = json.loads(args[key])
    return args, query_token


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, fake: FakeSlackAPI) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.fake = fake


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def _serve(self) -> None:
        url = urlsplit(self.path)
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        status, headers, payload = self.server.fake.handle(url.path, url.query, self.headers, body)
        if status is None:  # the connection dies with no answer at all
            self.close_connection = True
            return
        data = json.dumps(payload).encode()
        try:
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):  # the bot went away meanwhile (killed): nobody to answer
            self.close_connection = True

    def log_message(self, format: str, *args: Any) -> None:  # keep test output clean
        pass
