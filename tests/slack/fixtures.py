"""Pytest plugin for the Slack emulator (`pytest_plugins = ["tests.slack.fixtures"]` in tests/conftest.py).

- `fake_slack`: a started FakeSlackAPI; the test fails at teardown if the bot broke Slack's contract.
- `slack`: a SlackWorld around a running PeerLearn (real HTTP endpoint, real database, frozen clock).
- `slack_clock`: the FrozenClock both share, starting Monday 2026-11-23 10:00 UTC.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from bot.clock import FrozenClock
from bot.playground.emulator.fake_api import BOT_TOKEN, FakeSlackAPI
from bot.playground.emulator.world import SlackWorld

SIGNING_SECRET = "test-signing-secret"
START = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)  # a Monday


@pytest.fixture
def no_slack_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Clear SLACK_* variables so a developer's real token or secret never reaches a test."""
    for name in list(os.environ):
        if name.startswith("SLACK_"):
            monkeypatch.delenv(name)


@pytest.fixture
def slack_clock() -> FrozenClock:
    return FrozenClock(START)


@pytest.fixture
def fake_slack(no_slack_env: None, slack_clock: FrozenClock) -> Iterator[FakeSlackAPI]:
    fake = FakeSlackAPI(now=lambda: slack_clock.now().timestamp()).start()
    try:
        yield fake
    finally:
        fake.stop()
    fake.assert_no_violations()


@pytest.fixture
def slack(fake_slack: FakeSlackAPI, database_url: str, slack_clock: FrozenClock) -> Iterator[SlackWorld]:
    # Imported here so the emulator's own tests run even while the bot does not import.
    from bot.config import Settings
    from bot.runtime.wiring import build_runtime, serve_in_thread

    settings = Settings(
        bot_token=BOT_TOKEN,
        signing_secret=SIGNING_SECRET,
        database_url=database_url,
        slack_api_url=fake_slack.base_url,
    )
    runtime = build_runtime(settings, clock=slack_clock)
    server = serve_in_thread(runtime)
    executor = runtime.bolt_app.listener_runner.listener_executor
    world = SlackWorld(fake_slack, server.url, SIGNING_SECRET, slack_clock, listener_executor=executor, runtime=runtime)
    try:
        yield world
        world.settle()  # the bot's background work ends inside the test, so its calls are checked too
    finally:
        server.stop()
        runtime.close()
