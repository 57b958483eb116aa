"""A token Slack refused works again: the workspace is enabled again, routing resumes, the operator is told.

Slack refuses the bot's token (the emulator answers every call with it with invalid_auth, token_revoked…),
so PeerLearn disables the workspace; then Slack takes the token again, or SLACK_BOT_TOKEN is replaced and the
app restarted, and the `tokens` tick (run here as the scheduler runs it, at start and then every few
minutes) enables it again. /healthz names the disabled workspaces and stays 200.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import urllib.error
import urllib.request
from datetime import UTC, datetime, timedelta

import pytest

from bot.playground.emulator.fake_api import BOT_TOKEN, TEAM_ID
from bot.runtime.scheduler import Tick, default_ticks, run_tick
from bot.runtime.wiring import Runtime
from bot.workspaces import RECHECK_MINUTES
from models.workspace import Workspace
from tests.production_harness import Replica, populate, running_peerlearn
from tests.route_helpers import GENERAL, Bot, add_people, bot_maker, declare, routing_dms
from tests.test_oauth import CLIENT_ID, CLIENT_SECRET, install, oauth_settings

BERLIN, TOKYO = "Europe/Berlin", "Asia/Tokyo"
TOKYO_NINE_TUESDAY = datetime(2026, 11, 24, 0, 0, tzinfo=UTC)  # the fixtures start Monday 10:00 UTC
RECHECK = timedelta(minutes=RECHECK_MINUTES)


@pytest.fixture
def make_bot(fake_slack, database_url, slack_clock):
    yield from bot_maker(fake_slack, database_url, slack_clock)


@pytest.fixture
def bot(make_bot) -> Bot:
    bot = make_bot()
    add_people(bot.world, U_ASKER=BERLIN, U_TOKYO=TOKYO)
    declare(bot.world, "U_TOKYO", "#postgres")
    return bot


class Scheduler:
    """The `tokens` job of one process's scheduler, run by hand: its first run is the one at start."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.tick: Tick = next(tick for tick in default_ticks() if tick.name == "tokens")

    def run(self) -> None:
        runtime = self.runtime
        run_tick(self.tick, runtime.services, runtime.bolt_app.client, runtime.bot_token_for)


def workspace_state(bot: Bot | Replica) -> tuple[bool, str | None]:
    with bot.runtime.store.session() as session:
        workspace = session.get(Workspace, TEAM_ID)
        return workspace.active, workspace.disabled_reason


def healthz(bot: Bot) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(bot.server.url + "/healthz", timeout=10) as reply:
            return reply.status, json.load(reply)
    except urllib.error.HTTPError as error:
        return error.code, json.load(error)


def logged(caplog: pytest.LogCaptureFixture, words: str) -> list[str]:
    return [record.getMessage() for record in caplog.records if words in record.getMessage()]


def ask_at_night(bot: Bot) -> None:
    """Ana asks at 19:00 in Tokyo: the DM to the Tokyo expert waits for their morning."""
    bot.world.ask("U_ASKER", "How do I vacuum a big table? #postgres", GENERAL)
    bot.tick(bot.clock.now() + timedelta(minutes=11))  # after the similar-answers grace period
    assert routing_dms(bot.world, "U_TOKYO") == []


def refuse(bot: Bot, code: str) -> None:
    """Slack refuses the token from now on; PeerLearn learns it at its next call (a question it posts)."""
    bot.fake.refuse_token(BOT_TOKEN, code)
    bot.world.command("U_ASKER", "/ask", "Is Slack refusing us? #ops", GENERAL)
    bot.world.settle()
    assert workspace_state(bot) == (False, code)


@pytest.mark.parametrize("code", ["invalid_auth", "account_inactive"])
def test_a_refused_token_that_works_again_enables_the_workspace_and_routing_resumes(bot, caplog, code):
    world, fake = bot.world, bot.fake
    scheduler = Scheduler(bot.runtime)
    with caplog.at_level(logging.INFO, logger="peerlearn"):
        scheduler.run()  # at start: Slack takes the token, nothing to do
        ask_at_night(bot)
        refuse(bot, code)  # e.g. the bot user deactivated for a while
        bot.tick(TOKYO_NINE_TUESDAY)
        assert routing_dms(world, "U_TOKYO") == [], "a disabled workspace gets no routing"
        status, health = healthz(bot)
        assert status == 200 and health["status"] == "ok", "a disabled workspace is no reason to replace the replica"
        assert (health["disabled_workspaces"], health["disabled_workspaces_total"]) == ({TEAM_ID: code}, 1)

        bot.clock.advance(RECHECK)
        scheduler.run()  # still refused: still disabled
        assert workspace_state(bot) == (False, code)

        fake.accept_token(BOT_TOKEN)
        bot.clock.advance(RECHECK)
        scheduler.run()
        assert workspace_state(bot) == (True, None)
        assert "disabled_workspaces" not in healthz(bot)[1]
        scheduler.run()  # nothing disabled any more: Slack is not asked again

        bot.tick(bot.clock.now())
    [dm] = routing_dms(world, "U_TOKYO")
    assert "How do I vacuum a big table?" in dm.plain
    assert len(logged(caplog, f"workspace {TEAM_ID} disabled")) == 1, "said once when it happened"
    assert len(logged(caplog, f"workspace {TEAM_ID} enabled again")) == 1, "and once when it was over"
    assert len(fake.calls_to("auth.test", where=lambda call: not call.ok)) == 1, "one recheck while refused"
    assert len(fake.calls_to("auth.test", where=lambda call: call.ok)) == 3, "Bolt's first, at start, recovery"


def test_a_replaced_token_enables_the_workspace_when_the_app_restarts(bot, caplog):
    fake = bot.fake
    ask_at_night(bot)
    refuse(bot, "token_revoked")

    fake.accept_token("xoxb-replaced")  # a new token, in SLACK_BOT_TOKEN, and a restart
    bot.settings = dataclasses.replace(bot.settings, bot_token="xoxb-replaced")
    bot.restart()
    with caplog.at_level(logging.INFO, logger="peerlearn"):
        Scheduler(bot.runtime).run()  # the first run of the new process's scheduler, at start
    assert workspace_state(bot) == (True, None)
    assert logged(caplog, "enabled again: Slack accepts SLACK_BOT_TOKEN")

    bot.tick(TOKYO_NINE_TUESDAY)
    [dm] = routing_dms(bot.world, "U_TOKYO")
    assert fake.calls_to("chat.postMessage", channel=dm.channel)[-1].token == "xoxb-replaced"


def test_a_token_refused_at_start_disables_the_workspace_and_the_app_keeps_serving(bot, caplog):
    fake = bot.fake
    fake.refuse_token(BOT_TOKEN, "invalid_auth")
    bot.restart()  # Bolt does not check the token at start any more: it would stop the app
    with caplog.at_level(logging.WARNING, logger="peerlearn"):
        Scheduler(bot.runtime).run()
    assert workspace_state(bot) == (False, "invalid_auth")
    assert len(logged(caplog, "disabled: Slack refused its token (invalid_auth on auth.test)")) == 1
    assert healthz(bot)[0] == 200

    answer = bot.world.command("U_ASKER", "/teach", "list", GENERAL)
    assert answer.status == 200 and "reinstall this app" in answer.body, "the person hears why nothing works"


def test_only_a_reinstall_or_a_working_token_enables_an_uninstalled_workspace(bot):
    """app_uninstalled is not a refusal: the recheck leaves it alone unless the token is the workspace's own."""
    with bot.store.session() as session:
        workspace = session.get(Workspace, TEAM_ID)
        workspace.active, workspace.disabled_reason = False, "app_uninstalled"
    fake = bot.fake
    fake.revoke_token(BOT_TOKEN)
    Scheduler(bot.runtime).run()
    assert workspace_state(bot) == (False, "app_uninstalled")
    fake.accept_token(BOT_TOKEN)  # installed again, the same token working (single-token mode)
    Scheduler(bot.runtime).run()
    assert workspace_state(bot) == (True, None)


def test_with_add_to_slack_a_refused_installation_is_rechecked_with_its_own_token(
    fake_slack, database_url, slack_clock, caplog
):
    fake_slack.add_oauth_app(CLIENT_ID, CLIENT_SECRET)
    with running_peerlearn(fake_slack, database_url, slack_clock, **oauth_settings()) as replica:
        populate(replica.world)
        install(replica)
        token = replica.runtime.bot_token_for(TEAM_ID)
        assert token is not None and token != BOT_TOKEN
        fake_slack.refuse_token(token, "account_inactive")
        replica.world.command("U_ASKER", "/ask", "Is Slack refusing us? #ops", GENERAL)
        replica.world.settle()
        assert workspace_state(replica) == (False, "account_inactive")

        scheduler = Scheduler(replica.runtime)
        scheduler.run()
        assert workspace_state(replica) == (False, "account_inactive")
        fake_slack.accept_token(token)
        with caplog.at_level(logging.INFO, logger="peerlearn"):
            scheduler.run()
        assert workspace_state(replica) == (True, None)
        assert logged(caplog, "enabled again: Slack accepts its installation's token again")
        assert {call.token for call in fake_slack.calls_to("auth.test")} == {token}
