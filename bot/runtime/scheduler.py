"""APScheduler 3.x in the running app: periodic "ticks" that poll the database for due work.

Every periodic job is a tick: a plain function `tick(services, client, now)` that finds what is due at
`now` in the database, does it, and records that it did. The scheduler only calls ticks at an interval,
so all state (what is due, what is done, who claimed what) lives in the database: it survives restarts,
several replicas can tick at once (each job makes itself exactly-once with a unique row it claims
before acting), and tests call the tick directly with a frozen clock instead of running a scheduler.

To add a job: write its tick function, then add one `Tick(...)` line to `default_ticks()`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.interval import IntervalTrigger
from slack_sdk import WebClient

from bot.services import Services
from bot.workspaces import TokenLookup

logger = logging.getLogger("peerlearn.scheduler")

TickFunction = Callable[..., Any]  # tick(services, client, now) [, token_for=...] -> anything


@dataclass(frozen=True)
class Tick:
    name: str  # the APScheduler job id; also what the logs say
    run: TickFunction
    every: timedelta
    # Let a tick run this late (a busy or just-resumed process) rather than skip it.
    misfire_grace: timedelta = timedelta(minutes=5)
    # A tick that acts for many workspaces also gets `token_for=` (each workspace's bot token: with
    # "Add to Slack" every installation has its own; otherwise the single SLACK_BOT_TOKEN).
    per_team_tokens: bool = False


def default_ticks() -> list[Tick]:
    """Every periodic job PeerLearn runs. Imported here, so a tick's module loads only with a scheduler."""
    from bot import mentoring, onboarding, posting, sessions, workspaces
    from bot.digest import posting as digest_posting
    from bot.routing import escalation
    from bot.search import vectors

    return [
        # Questions still owed to their channel: a listener that died, a stopped process, a Slack that was slow.
        Tick("posting", posting.tick, every=timedelta(minutes=1), per_team_tokens=True),
        Tick("digest", digest_posting.tick, every=timedelta(minutes=1), per_team_tokens=True),
        # Routing after the similar-answers grace period, escalation rounds, bumps, DMs due in someone's morning.
        Tick("routing", escalation.tick, every=timedelta(minutes=1), per_team_tokens=True),
        # Lunch-and-learn sessions: announcements owed, reminders, the host's notes request, cancellation DMs.
        Tick("sessions", sessions.tick, every=timedelta(minutes=1), per_team_tokens=True),
        # Mentoring: pairings whose time is up, check-ins due, introductions owed, requests waiting for a mentor.
        Tick("mentoring", mentoring.tick, every=timedelta(minutes=1), per_team_tokens=True),
        # Newcomers waiting for an onboarding buddy, introductions still owed.
        Tick("onboarding", onboarding.tick, every=timedelta(minutes=1), per_team_tokens=True),
        # Search vectors still owed (a crash or a restart before they were computed, another replica's change).
        Tick("vectors", vectors.tick, every=timedelta(minutes=1)),
        # A token Slack refused: does it work again? (At start, then while a workspace is disabled.)
        Tick(
            "tokens",
            workspaces.TokenRecheck(),
            every=timedelta(minutes=workspaces.RECHECK_MINUTES),
            per_team_tokens=True,
        ),
    ]


def run_tick(tick: Tick, services: Services, client: WebClient, token_for: TokenLookup | None = None) -> None:
    """One run of one tick at the services' clock; an error is logged and the next run tries again."""
    extra = {"token_for": token_for} if tick.per_team_tokens and token_for is not None else {}
    try:
        tick.run(services, client, services.clock.now(), **extra)
    except Exception:
        logger.exception("scheduled job %s failed; it runs again in %s", tick.name, tick.every)


def build_scheduler(
    services: Services,
    client: WebClient,
    token_for: TokenLookup | None = None,
    ticks: Sequence[Tick] | None = None,
    start_delay: timedelta = timedelta(seconds=1),
) -> BackgroundScheduler:
    """A BackgroundScheduler (not started) that runs each tick at its interval, first `start_delay` from now.

    Each job runs at most once at a time in this process (`max_instances=1`), and runs that piled up while
    the process was busy or suspended collapse into one (`coalesce`): ticks catch up by reading the database.
    """
    scheduler = BackgroundScheduler(timezone=UTC)
    first_run = datetime.now(UTC) + start_delay
    for tick in default_ticks() if ticks is None else ticks:
        scheduler.add_job(
            run_tick,
            IntervalTrigger(seconds=tick.every.total_seconds(), timezone=UTC),
            args=(tick, services, client, token_for),
            id=tick.name,
            name=tick.name,
            next_run_time=first_run,  # catch up at start: e.g. a digest missed while no replica ran
            max_instances=1,
            coalesce=True,
            misfire_grace_time=int(tick.misfire_grace.total_seconds()),
            replace_existing=True,
        )
    return scheduler


def start_scheduler(
    services: Services,
    client: WebClient,
    token_for: TokenLookup | None = None,
    ticks: Sequence[Tick] | None = None,
    start_delay: timedelta = timedelta(seconds=1),
) -> BackgroundScheduler:
    scheduler = build_scheduler(services, client, token_for, ticks, start_delay)
    scheduler.start()
    names = ", ".join(f"{job.id} every {job.trigger.interval}" for job in scheduler.get_jobs())
    logger.debug("scheduler started: %s", names or "no jobs")
    return scheduler


def stop_scheduler(scheduler: BackgroundScheduler | None, wait: bool = True) -> None:
    """Stop scheduling; with `wait`, let a tick that is running finish (it holds a claim it should record)."""
    if scheduler is not None and scheduler.running:
        scheduler.shutdown(wait=wait)
