"""The plugin's fixtures: `slack` runs the real PeerLearn; `fake_slack` turns violations into failures."""

from __future__ import annotations

import json
import os
import urllib.request

import pytest
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.playground.emulator.fake_api import BOT_TOKEN, FakeSlackAPI
from bot.playground.emulator.world import SlackWorld


def test_slack_runs_peerlearn_behind_its_http_endpoint(slack: SlackWorld) -> None:
    assert not [name for name in os.environ if name.startswith("SLACK_")]
    with urllib.request.urlopen(slack.sender.url.removesuffix("/slack/events") + "/healthz") as health:
        assert json.load(health)["status"] == "ok"
    slack.add_user("U_ASKER", tz="Europe/Berlin")
    slack.add_channel("C_GENERAL", name="general", members=["U_ASKER"])
    question = slack.ask("U_ASKER", "How do I vacuum a big table? #postgres", "C_GENERAL")
    assert question.user == "UBOT" and "vacuum a big table" in question.plain
    assert slack.clock.now().isoformat() == "2026-11-23T10:00:00+00:00"


@pytest.mark.filterwarnings("ignore:The top-level `text` argument is missing")
def test_violations_are_listed_readably() -> None:
    with FakeSlackAPI() as fake:
        fake.add_channel("C1")
        with pytest.raises(SlackApiError):
            WebClient(base_url=fake.base_url, token=BOT_TOKEN).chat_postMessage(channel="C1", text="")
        with pytest.raises(AssertionError, match=r"1 Slack contract violation\(s\):\n  - chat.postMessage: no_text"):
            fake.assert_no_violations()
