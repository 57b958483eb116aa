"""Helpers for the emulator's own tests: serve any WSGI app (a minimal Bolt app) on a free port; where the Slack
reference beside the repository is (shared/: Slack's payload samples, method reference and contract notes)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import pytest
from slack_sdk import WebClient

from bot.playground.emulator.fake_api import BOT_TOKEN, FakeSlackAPI

SHARED_DIR = Path(__file__).resolve().parents[2] / ".." / "shared"
Serve = Callable[[Any], str]


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def serve_wsgi() -> Iterator[Serve]:
    """`url = serve_wsgi(app)`: the app answers on http://127.0.0.1:PORT until the test ends."""
    servers: list[tuple[WSGIServer, threading.Thread]] = []

    def serve(app: Any) -> str:
        server = make_server("127.0.0.1", 0, app, handler_class=_QuietHandler)
        thread = threading.Thread(target=server.serve_forever, args=(0.05,), name="test-wsgi", daemon=True)
        thread.start()
        servers.append((server, thread))
        return f"http://127.0.0.1:{server.server_port}"

    yield serve
    for server, thread in servers:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture
def client(fake_slack: FakeSlackAPI) -> WebClient:
    """A real slack_sdk WebClient talking to the fake, as the bot's would."""
    return WebClient(base_url=fake_slack.base_url, token=BOT_TOKEN)
