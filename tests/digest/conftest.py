"""The digest scenarios' fixtures: a Slack world with people in #general, and a PeerLearn runtime on the
emulator."""

from __future__ import annotations

import pytest

from bot.config import Settings
from bot.playground.emulator.fake_api import BOT_TOKEN
from bot.runtime.wiring import build_runtime
from tests.digest.helpers import GENERAL, PEOPLE


@pytest.fixture
def world(slack):
    for user in PEOPLE:
        slack.add_user(user, tz="Europe/Berlin")
    slack.add_channel(GENERAL, name="general", members=list(PEOPLE))
    return slack


@pytest.fixture
def runtime(fake_slack, database_url, slack_clock):
    settings = Settings(bot_token=BOT_TOKEN, database_url=database_url, slack_api_url=fake_slack.base_url)
    runtime = build_runtime(settings, clock=slack_clock)
    yield runtime
    runtime.close()
