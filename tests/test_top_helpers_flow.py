"""Top helpers (issue 18, item 10): the weekly digest, the App Home and the stats' ranking are one query with one
rule, so they agree, also after `forget-user`: a forgotten person is listed nowhere (not as "a former member").
A conversation in #general, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import re

import pytest

from bot.playground.emulator.fake_api import TEAM_ID
from bot.runtime.cli import forget_user
from bot.stats import month_of
from models.top_helpers import top_helpers

GENERAL = "C_GENERAL"
PEOPLE = ("U_ASKER", "U_GONE", "U_STAYS", "U_FAN")


@pytest.fixture
def world(slack):
    for user in PEOPLE:
        slack.add_user(user)
    slack.add_channel(GENERAL, name="general", members=list(PEOPLE))
    return slack


def listed(text: str) -> list[str]:
    """Who a "Top helpers" text lists, in order: user ids, or "a former member"."""
    section = text.split("Top helpers", 1)[1]
    return [user or former for user, former in re.findall(r"^\d+\. (?:<@(\w+)>|(a former member))", section, re.M)]


def digest_helpers(world) -> list[str]:
    world.command("U_FAN", "/ask", "digest preview", GENERAL)
    world.settle()
    preview = world.ephemerals("U_FAN")[-1]
    [section] = [b["text"]["text"] for b in preview["blocks"] if "Top helpers" in b.get("text", {}).get("text", "")]
    return listed(section)


def home_helpers(world) -> list[str]:
    world.open_home("U_FAN")
    world.settle()
    blocks = world.fake.home_view("U_FAN")["blocks"]
    start = next(i for i, b in enumerate(blocks) if "Top helpers" in json.dumps(b))
    return listed("Top helpers\n" + blocks[start + 1]["text"]["text"])


def stats_helpers(world) -> list[str]:
    with world.runtime.store.session() as session:
        helpers, _ = top_helpers(session, TEAM_ID, *month_of(world.clock.now()), limit=5)
    return [helper.user_id for helper in helpers]


def test_digest_app_home_and_stats_agree_on_top_helpers_before_and_after_forget_user(world, capsys):
    first = world.ask("U_ASKER", "How do I rotate the on-call? #ops", GENERAL)
    accepted = world.reply("U_GONE", first, "Swap in the on-call sheet, then tell the pager bot.")
    world.react("U_ASKER", "white_check_mark", GENERAL, accepted)
    second = world.ask("U_ASKER", "Where are the runbooks? #ops", GENERAL)
    helpful = world.reply("U_STAYS", second, "In the wiki, under Operations.")
    world.react("U_FAN", "+1", GENERAL, helpful)
    world.settle()

    assert digest_helpers(world) == home_helpers(world) == stats_helpers(world) == ["U_GONE", "U_STAYS"]

    assert forget_user(world.runtime.store, TEAM_ID, "U_GONE", dry_run=False) == 0
    assert "Forgot U_GONE" in capsys.readouterr().out

    assert digest_helpers(world) == home_helpers(world) == stats_helpers(world) == ["U_STAYS"]
