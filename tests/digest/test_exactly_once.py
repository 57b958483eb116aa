"""Each digest posted exactly once: two replicas racing on one database, restarts, Slack failures and retries,
abandoned claims; the admin verb claims the week like the scheduler. SQLite and PostgreSQL."""

from __future__ import annotations

import json
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

from bot.config import Settings
from bot.digest import posting, schedule
from bot.playground.emulator.fake_api import BOT_TOKEN, TEAM_ID
from bot.runtime.cli import main as cli_main
from bot.runtime.wiring import build_runtime
from models.digest import (
    DIGEST_CLAIMED,
    DIGEST_FAILED,
    DIGEST_POSTED,
    DIGEST_POSTING,
    DigestRun,
    claim_run,
    mark_run_posting,
)
from models.workspace import ensure_workspace
from tests.digest.helpers import (
    GENERAL,
    SLOT,
    add_question,
    digest_posts,
    digest_runs_metric,
    plain,
    runs,
    subscribe_directly,
    tick_at,
)
from tests.slack.fixtures import START

# --- exactly once: replicas, restarts, failures ------------------------------------------------------------------


def test_two_replicas_ticking_at_once_post_each_digest_exactly_once(fake_slack, database_url, slack_clock):
    settings = Settings(bot_token=BOT_TOKEN, database_url=database_url, slack_api_url=fake_slack.base_url)
    replicas = [build_runtime(settings, clock=slack_clock) for _ in range(2)]
    channels = [f"C_TEAM{i}" for i in range(6)]
    try:
        with replicas[0].store.session() as s:
            add_question(s, channels[0], "Who reviews infra changes? #ops", at=SLOT - timedelta(days=1))
        for channel in channels:
            fake_slack.add_channel(channel)
            subscribe_directly(replicas[0].store, channel, START)
        slack_clock.set(SLOT)
        start = threading.Barrier(len(replicas))

        def replica(runtime):
            start.wait(timeout=10)
            return [o for _ in range(3) for o in posting.tick(runtime.services, runtime.bolt_app.client, SLOT)]

        with ThreadPoolExecutor(len(replicas)) as pool:
            outcomes = [o for found in pool.map(replica, replicas) for o in found]
        assert sorted(o.channel_id for o in outcomes) == channels  # each claimed by exactly one replica
        for channel in channels:
            assert len(digest_posts(fake_slack, channel)) == 1, channel
        assert all(run.status == DIGEST_POSTED and run.attempts == 1 for run in runs(replicas[0].store).values())
        assert len(runs(replicas[1].store)) == len(channels)
    finally:
        for runtime in replicas:
            runtime.close()


def test_a_digest_missed_while_no_replica_ran_goes_out_once_when_one_is_back(fake_slack, database_url, slack_clock):
    settings = Settings(bot_token=BOT_TOKEN, database_url=database_url, slack_api_url=fake_slack.base_url)
    fake_slack.add_channel("C_MONDAY")
    fake_slack.add_channel("C_SUNDAY")
    before = build_runtime(settings, clock=slack_clock)
    subscribe_directly(before.store, "C_MONDAY", START)
    subscribe_directly(before.store, "C_SUNDAY", START, weekday=6)  # Sunday 09:00 UTC
    assert tick_at(before, SLOT - timedelta(days=2)) == []  # Saturday: nothing due
    before.close()  # down from Saturday to Monday afternoon

    after = build_runtime(settings, clock=slack_clock)
    outcomes = tick_at(after, SLOT + timedelta(hours=5))
    # Monday's slot passed 5 hours ago (within the grace period); Sunday's 29 hours ago (beyond it).
    assert [(o.channel_id, o.status) for o in outcomes] == [("C_MONDAY", DIGEST_POSTED)]
    assert tick_at(after, SLOT + timedelta(hours=5, minutes=1)) == []
    after.close()

    again = build_runtime(settings, clock=slack_clock)
    assert tick_at(again, SLOT + timedelta(hours=6)) == []
    assert len(digest_posts(fake_slack, "C_MONDAY")) == 1
    assert digest_posts(fake_slack, "C_SUNDAY") == []
    assert set(runs(again.store)) == {"C_MONDAY"}  # the skipped Sunday left no row
    # Next Sunday's digest goes out as usual.
    assert [o.channel_id for o in tick_at(again, SLOT + timedelta(days=6))] == ["C_SUNDAY"]
    again.close()


def test_slack_errors_are_recorded_and_the_other_channels_still_get_theirs(runtime, fake_slack):
    fake_slack.add_channel("C1_ARCHIVED", archived=True)
    fake_slack.add_channel("C3_NOBOT", bot_member=False)
    fake_slack.add_channel("C4_OK")
    for channel in ("C1_ARCHIVED", "C2_DELETED", "C3_NOBOT", "C4_OK"):
        subscribe_directly(runtime.store, channel, START)
    failed_before, posted_before = digest_runs_metric("failed"), digest_runs_metric("posted")

    outcomes = tick_at(runtime, SLOT)
    assert [(o.channel_id, o.status, o.error) for o in outcomes] == [
        ("C1_ARCHIVED", DIGEST_FAILED, "is_archived"),
        ("C2_DELETED", DIGEST_FAILED, "channel_not_found"),
        ("C3_NOBOT", DIGEST_FAILED, "not_in_channel"),
        ("C4_OK", DIGEST_POSTED, None),
    ]
    recorded = runs(runtime.store)
    assert {c: (r.status, r.error) for c, r in recorded.items()} == {
        "C1_ARCHIVED": (DIGEST_FAILED, "is_archived"),
        "C2_DELETED": (DIGEST_FAILED, "channel_not_found"),
        "C3_NOBOT": (DIGEST_FAILED, "not_in_channel"),
        "C4_OK": (DIGEST_POSTED, None),
    }
    assert all(r.finished_at == SLOT for r in recorded.values())
    assert (digest_runs_metric("failed"), digest_runs_metric("posted")) == (failed_before + 3, posted_before + 1)
    # Retrying cannot fix these: later ticks leave them alone.
    since = fake_slack.mark()
    assert tick_at(runtime, SLOT + timedelta(hours=2)) == []
    assert fake_slack.calls_to("chat.postMessage", since=since) == []


def test_a_rate_limited_digest_is_retried_on_a_later_tick_then_given_up(runtime, fake_slack):
    for channel in ("C1_BUSY", "C2_OK"):
        fake_slack.add_channel(channel)
        subscribe_directly(runtime.store, channel, START)
    fake_slack.rate_limit("chat.postMessage", retry_after=0, times=4)  # the first try and slack_sdk's 3 retries

    outcomes = tick_at(runtime, SLOT)
    assert [(o.channel_id, o.status, o.error) for o in outcomes] == [
        ("C1_BUSY", DIGEST_FAILED, "ratelimited"),
        ("C2_OK", DIGEST_POSTED, None),
    ]
    assert tick_at(runtime, SLOT + timedelta(minutes=5)) == []  # not before RETRY_AFTER
    [retry] = tick_at(runtime, SLOT + timedelta(minutes=10))
    assert (retry.channel_id, retry.status) == ("C1_BUSY", DIGEST_POSTED)
    assert runs(runtime.store)["C1_BUSY"].attempts == 2
    assert len(digest_posts(fake_slack, "C1_BUSY")) == 1

    # A channel that keeps failing is tried MAX_ATTEMPTS times in all, then left failed.
    fake_slack.add_channel("C3_FLAKY")
    subscribe_directly(runtime.store, "C3_FLAKY", SLOT + timedelta(hours=1), hour=11, minute=0)
    fake_slack.fail("chat.postMessage", "internal_error", times=posting.MAX_ATTEMPTS)
    eleven = SLOT + timedelta(hours=2)
    for minutes in range(0, 60, 10):
        tick_at(runtime, eleven + timedelta(minutes=minutes))
    flaky = runs(runtime.store)["C3_FLAKY"]
    assert (flaky.status, flaky.error, flaky.attempts) == (DIGEST_FAILED, "internal_error", posting.MAX_ATTEMPTS)
    assert len(fake_slack.calls_to("chat.postMessage", channel="C3_FLAKY")) == posting.MAX_ATTEMPTS


def test_an_abandoned_claim_is_taken_over_but_an_interrupted_post_is_never_repeated(runtime, fake_slack):
    for channel in ("C1_CLAIMED", "C2_POSTING"):
        fake_slack.add_channel(channel)
        subscribe_directly(runtime.store, channel, START)
    with runtime.store.session() as s:
        # Two replicas died at the slot: one while building, one while chat.postMessage was in flight.
        for channel, status in (("C1_CLAIMED", DIGEST_CLAIMED), ("C2_POSTING", DIGEST_POSTING)):
            s.add(
                DigestRun(
                    team_id=TEAM_ID,
                    channel_id=channel,
                    week_key="2026-W49",
                    status=status,
                    claimed_by="replica-that-died",
                    claimed_at=SLOT,
                    attempts=1,
                )
            )
    assert tick_at(runtime, SLOT + timedelta(minutes=5)) == []  # maybe still building
    [outcome] = tick_at(runtime, SLOT + posting.STALE_CLAIM)
    assert (outcome.channel_id, outcome.status) == ("C1_CLAIMED", DIGEST_POSTED)
    assert runs(runtime.store)["C1_CLAIMED"].attempts == 2
    assert tick_at(runtime, SLOT + timedelta(hours=3)) == []
    assert digest_posts(fake_slack, "C2_POSTING") == []
    assert runs(runtime.store)["C2_POSTING"].status == DIGEST_POSTING


def test_a_claim_taken_over_meanwhile_is_not_posted_by_its_old_owner(runtime, fake_slack):
    fake_slack.add_channel("C_SLOW")
    subscribe_directly(runtime.store, "C_SLOW", START)
    with runtime.store.session() as s:
        slow = claim_run(s, (TEAM_ID, "C_SLOW", "2026-W49"), "slow-replica", SLOT)
    [outcome] = tick_at(runtime, SLOT + posting.STALE_CLAIM)  # the slow replica's claim looked abandoned
    assert outcome.status == DIGEST_POSTED
    # The slow replica wakes up and tries to carry on: its claim is no longer valid.
    with runtime.store.session() as s:
        assert not mark_run_posting(s, slow)
    assert len(digest_posts(fake_slack, "C_SLOW")) == 1


# --- the admin verb ---------------------------------------------------------------------------------------------


def test_the_admin_verb_prints_the_digest_then_posts_it_once_per_week(
    fake_slack, database_url, monkeypatch, capsys, no_slack_env
):
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("SLACK_API_URL", fake_slack.base_url)
    monkeypatch.setenv("SLACK_BOT_TOKEN", BOT_TOKEN)
    fake_slack.add_channel(GENERAL)
    settings = Settings.from_env()
    runtime = build_runtime(settings)
    with runtime.store.session() as s:  # the verb reads the real clock: "this week" is now
        add_question(s, GENERAL, "Who has the VPN config? #vpn", at=datetime.now(UTC) - timedelta(hours=1))
    runtime.close()
    verb = ["digest", "--team", TEAM_ID, "--channel", GENERAL]

    assert cli_main([*verb, "--dry-run"]) == 0
    printed = capsys.readouterr().out
    assert printed.startswith("== Weekly digest ==")
    assert "Who has the VPN config?" in printed and "https://peerlearn-test.slack.com/archives/C_GENERAL/p" in printed
    assert cli_main([*verb, "--dry-run", "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["blocks"][0]["type"] == "header" and "Who has the VPN config?" in json.dumps(payload)
    assert digest_posts(fake_slack) == []

    assert cli_main(verb) == 0
    assert "Posted the digest in C_GENERAL" in capsys.readouterr().out
    assert cli_main(verb) == 1  # this week's digest went out already
    assert "already posted" in capsys.readouterr().err
    assert len(digest_posts(fake_slack)) == 1
    assert cli_main([*verb, "--force"]) == 0
    assert len(digest_posts(fake_slack)) == 2


def test_each_workspace_posts_with_its_own_token_and_a_revoked_one_is_recorded(runtime, fake_slack):
    fake_slack.tokens.update({"xoxb-installed", "xoxb-revoked"})
    fake_slack.revoke_token("xoxb-revoked")
    fake_slack.add_channel("C_OTHER_TEAM")
    for team, channel in (("T0002", "C_OTHER_TEAM"), ("T0003", "C_UNINSTALLED")):
        with runtime.store.session() as s:
            ensure_workspace(s, team, START)
            schedule.subscribe(s, team_id=team, channel_id=channel, user_id="U1", now=START)
    with runtime.store.session() as s:
        question = add_question(s, "C_OTHER_TEAM", "Who runs payroll? #hr", at=SLOT - timedelta(days=1))
        question.team_id = "T0002"
    tokens = {"T0002": "xoxb-installed", "T0003": "xoxb-revoked"}

    outcomes = posting.tick(runtime.services, runtime.bolt_app.client, SLOT, token_for=tokens.get)
    assert [(o.team_id, o.status, o.error) for o in outcomes] == [
        ("T0002", DIGEST_POSTED, None),
        ("T0003", DIGEST_FAILED, "token_revoked"),
    ]
    [post] = digest_posts(fake_slack)
    assert post.token == "xoxb-installed"
    assert "Who runs payroll?" in plain(post) and "/archives/C_OTHER_TEAM/p" in plain(post)
    assert "xoxb-installed" in {call.token for call in fake_slack.calls_to("auth.test")}  # for the links
    assert posting.can_retake(runs(runtime.store)["C_UNINSTALLED"], SLOT + timedelta(hours=1)) is False


def test_without_a_token_the_admin_verb_still_prints_the_digest_but_will_not_post(
    fake_slack, database_url, monkeypatch, capsys, no_slack_env
):
    monkeypatch.setenv("DATABASE_URL", database_url)
    verb = ["digest", "--team", TEAM_ID, "--channel", GENERAL]
    assert cli_main([*verb, "--dry-run"]) == 0
    printed = capsys.readouterr().out
    assert "quiet week in <#C_GENERAL>" in printed and "https://" not in printed
    assert cli_main(verb) == 2
    assert "SLACK_BOT_TOKEN" in capsys.readouterr().err
    assert fake_slack.calls == []
