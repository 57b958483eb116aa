"""Posting the weekly digests: which are due, and each posted exactly once per (team, channel, week), however
many replicas tick at the same moment; on demand, the preview and the admin verb.

Exactly once: a replica first inserts the week's `DigestRun` row (unique on team, channel, week) and
commits; only the replica whose insert won builds and posts. The row then moves claimed → posting →
posted / empty / failed, each step a compare-and-swap on the attempt number its owner claimed.
Retries: a `failed` run whose error retrying can fix (rate limits, Slack hiccups, our own crash while
building) is claimed again by a later tick, at most MAX_ATTEMPTS in all, RETRY_AFTER apart and within
GRACE of its slot; a `claimed` run whose owner vanished for STALE_CLAIM is taken over the same way. A
run left in `posting` (the process died during chat.postMessage, or the network dropped mid-call) is
never retried: it may have gone out, and a missing digest is better than a double one.
"""

from __future__ import annotations

import logging
import os
import socket
import uuid
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from sqlalchemy.orm import Session

from bot.digest.content import MAX_ITEMS, build_digest
from bot.digest.schedule import Schedule, current_schedule, last_slot, schedule_of, week_key
from bot.messages.blocks import Message
from bot.metrics import DIGEST_RUNS
from bot.services import Services
from bot.slack_errors import AUTH_ERRORS, error_code
from bot.workspaces import TokenLookup, WorkspaceClients
from models.digest import (
    DIGEST_CLAIMED,
    DIGEST_EMPTY,
    DIGEST_FAILED,
    DIGEST_POSTED,
    Claim,
    DigestRun,
    RunKey,
    claim_run,
    enabled_subscriptions,
    finish_run,
    load_digest_data,
    mark_run_posting,
    reclaim_run,
    runs_by_key,
)

logger = logging.getLogger("peerlearn.digest")

WINDOW = timedelta(days=7)  # a digest covers the week before its slot
GRACE = timedelta(hours=24)  # a slot missed while no replica was running still posts this long after it
MAX_ATTEMPTS = 3
RETRY_AFTER = timedelta(minutes=10)
STALE_CLAIM = timedelta(minutes=10)  # building takes well under a second; a claim this old was abandoned
UNKNOWN_OUTCOME = "post_outcome_unknown"
BUILD_FAILED = "build_failed"
# Errors another attempt cannot fix: the channel is gone or closed to us, the token is dead, or the payload
# itself is wrong. Everything else (ratelimited after slack_sdk's own retries, 5xx, our crash) is retried.
PERMANENT_ERRORS = AUTH_ERRORS | {
    "is_archived",
    "channel_not_found",
    "not_in_channel",
    "restricted_action",
    "missing_scope",
    "invalid_blocks",
    "invalid_blocks_format",
    "invalid_arguments",
    "msg_too_long",
    "no_text",
    UNKNOWN_OUTCOME,
}


# --- due digests, claims and posting -------------------------------------------------------------------------


@dataclass(frozen=True)
class DueDigest:
    team_id: str
    channel_id: str
    schedule: Schedule
    slot: datetime
    week_key: str
    post_when_empty: bool
    run: DigestRun | None  # the week's row when one exists and may be taken over

    @property
    def key(self) -> RunKey:
        return (self.team_id, self.channel_id, self.week_key)


@dataclass(frozen=True)
class DigestOutcome:
    team_id: str
    channel_id: str
    week_key: str | None
    status: str  # posted, empty, failed; or "taken": already done or being done elsewhere
    message_ts: str | None = None
    error: str | None = None


TAKEN = "taken"


def retryable(error: str | None) -> bool:
    return (error or "").split(":", 1)[0] not in PERMANENT_ERRORS


def can_retake(run: DigestRun, now: datetime) -> bool:
    """A run another tick may claim again: failed for a reason retrying fixes, or abandoned mid-build."""
    if run.attempts >= MAX_ATTEMPTS:
        return False
    if run.status == DIGEST_FAILED:
        return retryable(run.error) and run.finished_at is not None and now - run.finished_at >= RETRY_AFTER
    if run.status == DIGEST_CLAIMED:
        return now - run.claimed_at >= STALE_CLAIM
    return False


def due_digests(session: Session, now: datetime) -> list[DueDigest]:
    """Subscriptions whose latest slot passed less than GRACE ago, after the schedule was set, and whose
    week has no run yet (or one that may be retried). Two queries, whatever the number of channels."""
    candidates: list[DueDigest] = []
    for subscription, workspace_tz in enabled_subscriptions(session):
        schedule = schedule_of(subscription, workspace_tz)
        slot = last_slot(schedule, now)
        if now - slot > GRACE or slot < subscription.updated_at:
            continue
        key = week_key(slot, schedule)
        candidates.append(
            DueDigest(
                subscription.team_id, subscription.channel_id, schedule, slot, key, subscription.post_when_empty, None
            )
        )
    runs = runs_by_key(session, [c.key for c in candidates])
    due = []
    for candidate in candidates:
        run = runs.get(candidate.key)
        if run is None:
            due.append(candidate)
        elif can_retake(run, now):
            due.append(replace(candidate, run=run))
    return due


def owner_name() -> str:
    """Who claimed a run, for the operator reading digest_runs (the claim itself is the unique row)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


def tick(
    services: Services, client: WebClient, now: datetime, token_for: TokenLookup | None = None
) -> list[DigestOutcome]:
    """The scheduler's digest job: post every due digest once. One channel's failure never stops the next.
    `token_for(team_id)` gives each workspace's bot token when there are several (bot.workspaces)."""
    with services.store.session() as session:
        due = due_digests(session, now)
    if not due:
        return []
    owner = owner_name()
    workspaces = WorkspaceClients(client, token_for)
    outcomes = []
    for digest in due:
        try:
            with services.store.session() as session:
                claim = (
                    claim_run(session, digest.key, owner, now)
                    if digest.run is None
                    else reclaim_run(session, digest.run, owner, now)
                )
            if claim is None:
                continue  # another replica (or tick) has it
            outcome = deliver(
                services,
                workspaces,
                claim,
                team_id=digest.team_id,
                channel_id=digest.channel_id,
                key=digest.week_key,
                since=digest.slot - WINDOW,
                until=digest.slot,
                tz=digest.schedule.zone,
                post_when_empty=digest.post_when_empty,
            )
        except Exception:
            logger.exception("digest for %s in %s (%s) failed", digest.channel_id, digest.team_id, digest.week_key)
            continue
        outcomes.append(outcome)
    return outcomes


def deliver(
    services: Services,
    workspaces: WorkspaceClients,
    claim: Claim | None,
    *,
    team_id: str,
    channel_id: str,
    key: str | None,
    since: datetime,
    until: datetime,
    tz: ZoneInfo,
    post_when_empty: bool,
) -> DigestOutcome:
    """Build and post one claimed digest, recording how it ended on its run row (no row: an admin override)."""

    def finish(status: str, message_ts: str | None = None, error: str | None = None) -> DigestOutcome:
        if claim is not None:
            with services.store.session() as session:
                finish_run(session, claim, status, services.clock.now(), message_ts=message_ts, error=error)
        DIGEST_RUNS.labels(status).inc()
        return DigestOutcome(team_id, channel_id, key, status, message_ts, error)

    try:
        with services.store.session() as session:
            data = load_digest_data(session, team_id, channel_id, since, until, MAX_ITEMS)
        base_url = workspaces.base_url(team_id) if not data.is_empty else None
        message = build_digest(data, tz=tz, base_url=base_url, post_when_empty=post_when_empty)
    except Exception as exc:
        logger.exception("could not build the digest for %s in %s", channel_id, team_id)
        return finish(DIGEST_FAILED, error=f"{BUILD_FAILED}: {type(exc).__name__}")
    if message is None:
        logger.info("quiet week in %s (%s): nothing posted, as the channel asked", channel_id, key)
        return finish(DIGEST_EMPTY)
    if claim is not None:
        with services.store.session() as session:
            if not mark_run_posting(session, claim):
                logger.warning(
                    "digest run %s for %s was taken over before posting; not posting", claim.run_id, channel_id
                )
                DIGEST_RUNS.labels("skipped").inc()
                return DigestOutcome(team_id, channel_id, key, TAKEN)
    try:
        slack = workspaces(team_id)
        posted = slack.client.chat_postMessage(
            channel=channel_id,
            unfurl_links=False,
            unfurl_media=False,
            **slack.auth,
            **message.as_kwargs(),
        )
    except SlackApiError as exc:
        code = error_code(exc)
        logger.warning("digest for %s in %s (%s) not posted: %s", channel_id, team_id, key, code)
        return finish(DIGEST_FAILED, error=code)
    except Exception as exc:
        # The request may have reached Slack: record it as done-or-not and never post it again.
        logger.exception("digest for %s in %s (%s): chat.postMessage broke off", channel_id, team_id, key)
        return finish(DIGEST_FAILED, error=f"{UNKNOWN_OUTCOME}: {type(exc).__name__}")
    logger.info("digest for %s in %s (%s) posted at %s", channel_id, team_id, key, posted.get("ts"))
    return finish(DIGEST_POSTED, message_ts=posted.get("ts"))


# --- on demand: the preview and the admin verb ------------------------------------------------------------


def on_demand_window(now: datetime) -> tuple[datetime, datetime]:
    """The 7 days up to and including `now` (a scheduled digest stops just before its slot instead)."""
    until = now + timedelta(microseconds=1)
    return until - WINDOW, until


def preview(services: Services, team_id: str, channel_id: str, now: datetime, base_url: str | None) -> Message:
    """What the channel's digest would say now, about the last 7 days (never None: quiet weeks show the note)."""
    with services.store.session() as session:
        schedule, _ = current_schedule(session, team_id, channel_id)
        data = load_digest_data(session, team_id, channel_id, *on_demand_window(now), MAX_ITEMS)
    message = build_digest(data, tz=schedule.zone, base_url=base_url, post_when_empty=True)
    assert message is not None
    return message


def post_now(
    services: Services,
    client: WebClient,
    team_id: str,
    channel_id: str,
    now: datetime,
    *,
    force: bool = False,
    token_for: TokenLookup | None = None,
) -> DigestOutcome:
    """Post the channel's digest about the last 7 days now (the admin verb).

    It claims this week's run like the scheduler does, so the scheduled digest of this week will not post
    again; when the week's digest already went out (or is going out), nothing is posted and the outcome says
    so. A failed or quiet (unposted) run of this week is taken over. `force` posts outside the claim.
    """
    with services.store.session() as session:
        schedule, _ = current_schedule(session, team_id, channel_id)
    key = week_key(now, schedule)
    claim: Claim | None = None
    if not force:
        with services.store.session() as session:
            claim = claim_run(session, (team_id, channel_id, key), owner_name(), now)
            if claim is None:
                run = runs_by_key(session, [(team_id, channel_id, key)])[(team_id, channel_id, key)]
                if run.status in (DIGEST_FAILED, DIGEST_EMPTY):
                    claim = reclaim_run(session, run, owner_name(), now)
                if claim is None:
                    return DigestOutcome(team_id, channel_id, key, TAKEN, run.message_ts, f"already {run.status}")
    since, until = on_demand_window(now)
    return deliver(
        services,
        WorkspaceClients(client, token_for),
        claim,
        team_id=team_id,
        channel_id=channel_id,
        key=key,
        since=since,
        until=until,
        tz=schedule.zone,
        post_when_empty=True,
    )
