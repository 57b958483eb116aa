"""The scheduler: which jobs run and how often, that a running one calls its ticks with the app's clock,
and that a failing tick neither crashes nor stops it. (What each tick does is tested with its feature.)"""

from __future__ import annotations

import logging
import threading
from datetime import UTC, datetime, timedelta

import pytest

from bot.clock import FrozenClock
from bot.config import Settings
from bot.digest import posting as digest_posting
from bot.playground.emulator.fake_api import BOT_TOKEN
from bot.runtime.scheduler import Tick, build_scheduler, default_ticks, run_tick, start_scheduler, stop_scheduler
from bot.runtime.wiring import build_runtime

FROZEN = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)


@pytest.fixture
def runtime(tmp_path, fake_slack):
    database_url = f"sqlite:///{tmp_path / 'scheduler.db'}"
    settings = Settings(bot_token=BOT_TOKEN, database_url=database_url, slack_api_url=fake_slack.base_url)
    runtime = build_runtime(settings, clock=FrozenClock(FROZEN))
    yield runtime
    runtime.close()


def test_the_digest_is_a_tick_polled_every_minute():
    [digest_tick] = [tick for tick in default_ticks() if tick.name == "digest"]
    assert digest_tick.run is digest_posting.tick
    assert digest_tick.every == timedelta(minutes=1)
    assert digest_tick.per_team_tokens  # it posts in every subscribed workspace, each with its own token


def test_each_tick_becomes_one_job_that_never_overlaps_itself(runtime):
    scheduler = build_scheduler(runtime.services, runtime.bolt_app.client, runtime.bot_token_for)
    jobs = {job.id: job for job in scheduler.get_jobs()}
    assert set(jobs) == {tick.name for tick in default_ticks()}
    job = jobs["digest"]
    assert job.trigger.interval == timedelta(minutes=1)
    assert job.max_instances == 1 and job.coalesce is True
    assert job.args[1] is runtime.services and job.args[2] is runtime.bolt_app.client
    assert job.args[3] == runtime.bot_token_for
    assert not scheduler.running  # built, not started: tests and one-shot verbs never start one


def test_a_running_scheduler_calls_its_ticks_with_the_apps_clock_until_the_runtime_closes(runtime):
    called = threading.Event()
    seen = []

    def record(services, client, now):
        seen.append((services, client, now))
        called.set()

    assert runtime.scheduler is None  # build_runtime alone starts nothing
    runtime.scheduler = start_scheduler(
        runtime.services,
        runtime.bolt_app.client,
        runtime.bot_token_for,
        [Tick("record", record, every=timedelta(hours=1))],
        timedelta(0),
    )
    assert called.wait(timeout=10)
    assert seen[0] == (runtime.services, runtime.bolt_app.client, FROZEN)
    scheduler = runtime.scheduler
    runtime.close()
    assert not scheduler.running
    stop_scheduler(scheduler)  # stopping twice is harmless


def test_a_failing_tick_is_logged_and_the_next_run_goes_ahead(runtime, caplog):
    runs = []

    def broken(services, client, now):
        runs.append(now)
        raise RuntimeError("database went away")

    tick = Tick("broken", broken, every=timedelta(minutes=1))
    with caplog.at_level(logging.ERROR, logger="peerlearn.scheduler"):
        run_tick(tick, runtime.services, runtime.bolt_app.client)
        run_tick(tick, runtime.services, runtime.bolt_app.client)
    assert runs == [FROZEN, FROZEN]
    [first, _] = [r for r in caplog.records if r.name == "peerlearn.scheduler"]
    assert "scheduled job broken failed" in first.getMessage() and first.exc_info is not None


def test_only_ticks_that_act_for_many_workspaces_get_the_token_lookup(runtime):
    calls = []

    def record(services, client, now, **extra):
        calls.append(extra)

    def token_for(team_id):
        return "xoxb-" + team_id

    for per_team in (False, True):
        tick = Tick("t", record, every=timedelta(minutes=1), per_team_tokens=per_team)
        run_tick(tick, runtime.services, runtime.bolt_app.client, token_for)
    assert calls == [{}, {"token_for": token_for}]
    assert runtime.bot_token_for("T0001") == BOT_TOKEN  # single-workspace mode: the one bot token
