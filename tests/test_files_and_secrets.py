"""What PeerLearn leaves on disk: SQLite files private to their owner, and a loud warning when "Add to Slack"
would store tokens unencrypted."""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from bot.clock import FrozenClock
from bot.config import Settings
from bot.playground.emulator.fake_api import BOT_TOKEN, FakeSlackAPI
from bot.playground.emulator.world import SlackWorld
from bot.runtime.wiring import build_runtime, serve_in_thread
from tests.slack.fixtures import SIGNING_SECRET

GENERAL = "C_GENERAL"


@pytest.fixture
def usual_umask() -> Iterator[None]:
    """The umask most systems give a service (022): what SQLite's own 0644 is masked with."""
    previous = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(previous)


def modes(folder: Path) -> dict[str, str]:
    return {path.name: oct(stat.S_IMODE(path.stat().st_mode)) for path in sorted(folder.iterdir())}


def test_every_sqlite_file_is_created_readable_by_its_owner_only(
    usual_umask, fake_slack: FakeSlackAPI, slack_clock: FrozenClock, tmp_path: Path
):
    folder = tmp_path / "data"
    folder.mkdir()
    settings = Settings(
        bot_token=BOT_TOKEN,
        signing_secret=SIGNING_SECRET,
        database_url=f"sqlite:///{folder / 'peerlearn.db'}",
        slack_api_url=fake_slack.base_url,
    )
    runtime = build_runtime(settings, clock=slack_clock)
    server = serve_in_thread(runtime)
    try:
        world = SlackWorld(
            fake_slack,
            server.url,
            SIGNING_SECRET,
            slack_clock,
            listener_executor=runtime.bolt_app.listener_runner.listener_executor,
            runtime=runtime,
        )
        world.add_user("U_ASKER")
        world.add_channel(GENERAL, name="general", members=["U_ASKER"])
        world.ask("U_ASKER", "Who can read my database file? #security", GENERAL)  # through the inbox
        world.settle()
        found = modes(folder)  # while every connection is open: the -wal and -shm files are there
    finally:
        server.stop()
        runtime.close()
    expected = ["peerlearn.db", "peerlearn.db-inbox", "peerlearn.db-inbox.worker"]
    expected += [name + suffix for name in ("peerlearn.db", "peerlearn.db-inbox") for suffix in ("-wal", "-shm")]
    assert sorted(found) == sorted(expected)
    assert found == dict.fromkeys(found, "0o600")


def test_a_file_that_exists_keeps_its_mode(usual_umask, tmp_path: Path):
    from models.session import create_store_engine

    path = tmp_path / "shared.db"
    path.touch(mode=0o640)  # an operator's choice (a group that backs it up)
    create_store_engine(f"sqlite:///{path}").dispose()
    assert oct(stat.S_IMODE(path.stat().st_mode)) == "0o640"


@pytest.mark.parametrize("key", [None, Fernet.generate_key().decode()], ids=["no key", "a key"])
def test_add_to_slack_without_an_encryption_key_warns_at_start(key, caplog, tmp_path: Path, no_slack_env):
    settings = Settings(
        bot_token=None,
        client_id="1111.2222",
        client_secret="secret",
        signing_secret=SIGNING_SECRET,
        database_url=f"sqlite:///{tmp_path / 'peerlearn.db'}",
        encryption_keys=(key,) if key else (),
    )
    with caplog.at_level(logging.WARNING):
        build_runtime(settings).close()
    warnings = [r.getMessage() for r in caplog.records if "UNENCRYPTED" in r.getMessage()]
    if key:
        assert warnings == []
    else:
        assert len(warnings) == 1 and "PEERLEARN_ENCRYPTION_KEY" in warnings[0]
        assert "Fernet.generate_key()" in warnings[0]  # how to make one
        assert all(r.levelno == logging.WARNING for r in caplog.records if "UNENCRYPTED" in r.getMessage())
