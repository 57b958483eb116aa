"""Weekly channel digests: when one is due, what it says (a pure function of the week's data), and
posting it exactly once per (team, channel, week), however many replicas tick at the same moment.

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

import difflib
import logging
import os
import re
import socket
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time, timedelta
from functools import cache
from typing import Any
from zoneinfo import ZoneInfo, available_timezones

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from sqlalchemy.orm import Session

from bot.messages.blocks import SECTION_LIMIT, Block, Message, context, divider, header, mention, section
from bot.metrics import DIGEST_RUNS
from bot.services import Services
from bot.slack_errors import AUTH_ERRORS, error_code
from bot.text import escape_mrkdwn, format_tags, truncate
from models.digest import (
    DIGEST_CLAIMED,
    DIGEST_EMPTY,
    DIGEST_FAILED,
    DIGEST_POSTED,
    Claim,
    DigestData,
    DigestRun,
    DigestSubscription,
    Listing,
    RunKey,
    claim_run,
    enabled_subscriptions,
    ensure_subscription,
    fetch_subscription,
    finish_run,
    load_digest_data,
    mark_run_posting,
    reclaim_run,
    runs_by_key,
)
from models.workspace import Workspace

logger = logging.getLogger("peerlearn.digest")

WINDOW = timedelta(days=7)  # a digest covers the week before its slot
GRACE = timedelta(hours=24)  # a slot missed while no replica was running still posts this long after it
MAX_ATTEMPTS = 3
RETRY_AFTER = timedelta(minutes=10)
STALE_CLAIM = timedelta(minutes=10)  # building takes well under a second; a claim this old was abandoned
MAX_ITEMS = 10  # per section, before "…and N more"
ITEM_CHARS = 150
DEFAULT_TIMEZONE = "UTC"
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

WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
EXAMPLE = "`/ask digest at fri 16:00 Europe/Berlin`"


# --- schedules ------------------------------------------------------------------------------------------


@cache
def _zone_names() -> dict[str, str]:
    return {name.lower(): name for name in available_timezones()}


def canonical_zone(name: str) -> str | None:
    """`europe/berlin` → `Europe/Berlin`; None when the tz database has no such zone."""
    return _zone_names().get(name.strip().lower())


def zone(name: str | None) -> ZoneInfo:
    canonical = canonical_zone(name or "") or DEFAULT_TIMEZONE
    return ZoneInfo(canonical)


@dataclass(frozen=True)
class Schedule:
    weekday: int = 0  # Monday = 0
    hour: int = 9
    minute: int = 0
    timezone: str = DEFAULT_TIMEZONE

    @property
    def zone(self) -> ZoneInfo:
        return zone(self.timezone)

    def describe(self, with_zone: bool = True) -> str:
        when = f"every {WEEKDAYS[self.weekday].title()} at {self.hour:02d}:{self.minute:02d}"
        return f"{when} ({self.timezone})" if with_zone else when


def schedule_of(subscription: DigestSubscription | None, workspace_timezone: str | None) -> Schedule:
    """A channel's schedule; with no subscription (a preview, the admin verb), the default one."""
    timezone = (subscription.timezone if subscription else None) or workspace_timezone or DEFAULT_TIMEZONE
    timezone = canonical_zone(timezone) or DEFAULT_TIMEZONE
    if subscription is None:
        return Schedule(timezone=timezone)
    return Schedule(subscription.weekday, subscription.hour, subscription.minute, timezone)


def _local_slot(day: date, schedule: Schedule) -> datetime:
    # A time that a DST change skips resolves to the instant just after the gap; a repeated one to its first.
    return datetime.combine(day, time(schedule.hour, schedule.minute), tzinfo=schedule.zone)


def last_slot(schedule: Schedule, now: datetime) -> datetime:
    """The latest scheduled moment at or before `now`, in UTC."""
    local = now.astimezone(schedule.zone)
    day = local.date() - timedelta(days=(local.weekday() - schedule.weekday) % 7)
    slot = _local_slot(day, schedule)
    if slot > now:
        slot = _local_slot(day - timedelta(days=7), schedule)
    return slot.astimezone(UTC)


def next_slot(schedule: Schedule, after: datetime) -> datetime:
    """The first scheduled moment strictly after `after`, in UTC."""
    last = last_slot(schedule, after).astimezone(schedule.zone)
    return _local_slot(last.date() + timedelta(days=7), schedule).astimezone(UTC)


def week_key(moment: datetime, schedule: Schedule) -> str:
    """The ISO week of `moment` in the schedule's time zone: one digest per channel per such week."""
    year, week, _ = moment.astimezone(schedule.zone).date().isocalendar()
    return f"{year}-W{week:02d}"


class ScheduleError(ValueError):
    """The `/ask digest at …` text could not be read; the message says how to write it."""


@dataclass(frozen=True)
class ScheduleChange:
    """What `/ask digest at …` changes; None keeps the current value."""

    weekday: int | None = None
    hour: int | None = None
    minute: int | None = None
    timezone: str | None = None


_TIME = re.compile(r"^(\d{1,2})(?::(\d{2}))?(am|pm)?$")


def _weekday(word: str) -> int | None:
    word = word.lower().rstrip(".,")
    if len(word) < 2:
        return None
    matches = [
        i for i, name in enumerate(WEEKDAYS) if name.startswith(word) or (word.endswith("s") and name == word[:-1])
    ]
    return matches[0] if len(matches) == 1 else None


def _time(word: str) -> tuple[int, int] | None:
    match = _TIME.match(word.lower())
    if not match or (match.group(2) is None and match.group(3) is None):
        return None  # a bare number is not a time
    hour, minute, half = int(match.group(1)), int(match.group(2) or 0), match.group(3)
    if half:
        if not 1 <= hour <= 12:
            raise ScheduleError(f"`{word}` isn't a time of day: with am/pm the hour goes from 1 to 12.")
        hour = hour % 12 + (12 if half == "pm" else 0)
    if hour > 23 or minute > 59:
        raise ScheduleError(f"`{word}` isn't a time of day. Use 24-hour HH:MM like `16:00` (or `4pm`).")
    return hour, minute


def parse_schedule(text: str) -> ScheduleChange:
    """`fri 16:00 Europe/Berlin`, `monday 9:30am`, `16:00`, `thu`, `Asia/Tokyo`: any of them, in any order."""
    text = re.sub(r"(\d)\s+(am|pm)\b", r"\1\2", text.strip(), flags=re.IGNORECASE)
    words = text.split()
    if not words:
        raise ScheduleError(f"Tell me when, e.g. {EXAMPLE} (day, 24-hour time, and optionally a time zone).")
    weekday: int | None = None
    at: tuple[int, int] | None = None
    timezone: str | None = None
    for word in words:
        day = _weekday(word)
        clock = None if day is not None else _time(word)
        zone_name = None if day is not None or clock is not None else canonical_zone(word)
        if day is not None:
            if weekday is not None:
                raise ScheduleError(f"One day per week, please: I read both {WEEKDAYS[weekday].title()} and `{word}`.")
            weekday = day
        elif clock is not None:
            if at is not None:
                raise ScheduleError(f"One time, please: I read both {at[0]:02d}:{at[1]:02d} and `{word}`.")
            at = clock
        elif zone_name is not None:
            timezone = zone_name
        else:
            raise ScheduleError(_unreadable(word))
    return ScheduleChange(
        weekday=weekday,
        hour=at[0] if at else None,
        minute=at[1] if at else None,
        timezone=timezone,
    )


def _unreadable(word: str) -> str:
    shown = escape_mrkdwn(truncate(word, 60))
    if "/" in word or word[:1].isupper():
        close = difflib.get_close_matches(word.lower(), list(_zone_names()), n=1, cutoff=0.8)
        hint = f" Did you mean `{_zone_names()[close[0]]}`?" if close else ""
        return (
            f"I don't know the time zone `{shown}`.{hint} Use a tz database name such as `Europe/Berlin`, "
            f"`America/New_York` or `UTC`, e.g. {EXAMPLE}."
        )
    return f"I couldn't read `{shown}` as a day, a time or a time zone. Try {EXAMPLE}."


# --- subscriptions (called from /ask digest, inside the caller's transaction) ------------------------------


def subscribe(
    session: Session,
    *,
    team_id: str,
    channel_id: str,
    user_id: str,
    now: datetime,
    change: ScheduleChange | None = None,
    timezone_hint: str | None = None,
) -> DigestSubscription:
    """Turn the channel's digest on (keeping its schedule), applying `change`; a new schedule takes effect
    from its next slot. `timezone_hint` (the subscriber's own zone, when known) fills an unset zone."""
    subscription = ensure_subscription(session, team_id, channel_id, user_id, now)
    was_enabled = subscription.enabled
    change = change or ScheduleChange()
    schedule_changed = any(v is not None for v in (change.weekday, change.hour, change.minute, change.timezone))
    if change.weekday is not None:
        subscription.weekday = change.weekday
    if change.hour is not None and change.minute is not None:
        subscription.hour, subscription.minute = change.hour, change.minute
    if change.timezone is not None:
        subscription.timezone = change.timezone
    elif subscription.timezone is None and timezone_hint and canonical_zone(timezone_hint):
        subscription.timezone = canonical_zone(timezone_hint)
    subscription.enabled = True
    if schedule_changed or not was_enabled:
        subscription.updated_at = now
    return subscription


def unsubscribe(session: Session, *, team_id: str, channel_id: str, now: datetime) -> bool:
    """Stop the channel's digest (its settings are kept for `on`); False when it had none running."""
    subscription = fetch_subscription(session, team_id, channel_id)
    if subscription is None or not subscription.enabled:
        return False
    subscription.enabled = False
    subscription.updated_at = now
    return True


def set_empty_weeks(
    session: Session, *, team_id: str, channel_id: str, user_id: str, now: datetime, post: bool
) -> DigestSubscription:
    subscription = ensure_subscription(session, team_id, channel_id, user_id, now)
    subscription.post_when_empty = post
    return subscription


def learn_timezone(session: Session, *, team_id: str, channel_id: str, timezone: str | None) -> str | None:
    """Fill a subscription's unset time zone (from the subscriber's profile); the zone now in use."""
    subscription = fetch_subscription(session, team_id, channel_id)
    if subscription is None:
        return None
    if subscription.timezone is None and timezone and canonical_zone(timezone):
        subscription.timezone = canonical_zone(timezone)  # not a schedule change: updated_at stays
    return subscription.timezone


def workspace_timezone(session: Session, team_id: str) -> str | None:
    workspace = session.get(Workspace, team_id)
    return workspace.timezone if workspace else None


# --- building: pure, from plain data to Block Kit ----------------------------------------------------------


def permalink(base_url: str, channel_id: str, ts: str, thread_ts: str | None = None) -> str:
    """Slack's message permalink (what chat.getPermalink returns), built without a call per message."""
    link = f"{base_url.rstrip('/')}/archives/{channel_id}/p{ts.replace('.', '')}"
    if thread_ts and thread_ts != ts:
        link += f"?thread_ts={thread_ts}&cid={channel_id}"
    return link


def snippet(text: str, limit: int = ITEM_CHARS) -> str:
    """User text on one line, mention-safe, cut with "…"."""
    return truncate(escape_mrkdwn(" ".join(text.split())), limit)


def _link(base_url: str | None, channel_id: str, ts: str | None, label: str, thread_ts: str | None = None) -> str:
    return f" · <{permalink(base_url, channel_id, ts, thread_ts)}|{label}>" if base_url and ts else ""


def _tags(tags: tuple[str, ...]) -> str:
    return f" {format_tags(tags[:3])}" if tags else ""


def _plural(n: int, one: str, many: str | None = None) -> str:
    return f"{n} {one if n == 1 else (many or one + 's')}"


def _age(created_at: datetime, until: datetime) -> str:
    days = (until - created_at).days
    return "today" if days <= 0 else "yesterday" if days == 1 else f"{days} days ago"


def listing_section(title: str, lines: list[str], hidden: int = 0, footer: str = "") -> Block:
    """One section: a bold title and as many lines as fit in Slack's 3,000 characters, then "…and N more"."""
    reserve = len(footer) + 40
    text = f"*{title}*"
    shown = 0
    for line in lines:
        if len(text) + 1 + len(line) > SECTION_LIMIT - reserve:
            break
        text += "\n" + line
        shown += 1
    more = len(lines) - shown + hidden
    if more:
        text += f"\n_…and {more} more_"
    if footer:
        text += "\n" + footer
    return section(text)


def _period(data: DigestData, tz: ZoneInfo) -> str:
    first = data.since.astimezone(tz).date()
    last = (data.until - timedelta(seconds=1)).astimezone(tz).date()
    return f"{first:%b} {first.day} – {last:%b} {last.day}"


FOOTER = (
    "PeerLearn posts this digest weekly · `/ask digest preview` shows it now · "
    "`/ask digest at fri 16:00` moves it · `/ask digest off` stops it"
)


def build_digest(
    data: DigestData, *, tz: ZoneInfo, base_url: str | None = None, post_when_empty: bool = True
) -> Message | None:
    """The channel's week as a Block Kit message; None for an empty week when the channel wants nothing then.

    Everything shown comes from `data`, which holds only this channel's content. Stays within Slack's
    limits: at most ~16 blocks, each section cut to 3,000 characters with "…and N more".
    """
    channel = data.channel_id
    top = [header("Weekly digest"), context(f"<#{channel}> · {_period(data, tz)}")]
    if data.is_empty:
        if not post_when_empty:
            return None
        note = (
            f":seedling: A quiet week in <#{channel}>: no questions, answers or lessons. Stuck on something? "
            "`/ask How do I …? #tag` asks your colleagues, and `/teach #tag …` shares what you know."
        )
        return Message(text=f"A quiet week in <#{channel}>", blocks=[*top, section(note), context(FOOTER)])

    summary = " · ".join(
        [
            f"*{_plural(data.asked, 'question')}* asked",
            f"*{data.answered.total}* answered",
            f"*{data.open.total}* still open",
            f"*{_plural(data.lessons.total, 'lesson')}* shared",
        ]
    )
    content: list[Block] = [*top, section(summary)]
    for part in (
        _answered(data, base_url),
        _open(data, base_url),
        _lessons(data, base_url),
        _helpers(data.helpers),
        _new_experts(data),
        _gaps(data.gaps),
    ):
        if part is not None:
            content += [divider(), part]
    content.append(context(FOOTER))
    fallback = (
        f"Weekly digest for <#{channel}>: {data.answered.total} answered, {data.open.total} still open, "
        f"{_plural(data.lessons.total, 'lesson')}"
    )
    return Message(text=fallback, blocks=content)


def _answered(data: DigestData, base_url: str | None) -> Block | None:
    listing = data.answered
    if not listing.items:
        return None
    lines = [
        f"• {snippet(q.text)}{_tags(q.tags)} — answered by {mention(q.answerer_id)}"
        + _link(base_url, data.channel_id, q.answer_ts, "see the answer", thread_ts=q.message_ts)
        for q in listing.items
    ]
    return listing_section(f":white_check_mark: Answered ({listing.total})", lines, listing.more)


def _open(data: DigestData, base_url: str | None) -> Block | None:
    listing = data.open
    if not listing.items:
        return None
    lines = []
    for q in listing.items:
        replies = _plural(q.replies, "reply", "replies") if q.replies else "no replies yet"
        lines.append(
            f"• {snippet(q.text)}{_tags(q.tags)} — asked {_age(q.created_at, data.until)}, {replies}"
            + _link(base_url, data.channel_id, q.message_ts, "answer in the thread")
        )
    title = f":raising_hand: Still open, oldest first: can you help? ({listing.total})"
    return listing_section(title, lines, listing.more)


def _lessons(data: DigestData, base_url: str | None) -> Block | None:
    listing = data.lessons
    if not listing.items:
        return None
    lines = [
        f"• {snippet(lesson.text)}{_tags(lesson.tags)} — by {mention(lesson.author_id)}"
        + (f" · {_plural(lesson.helpful, 'helpful vote')}" if lesson.helpful else "")
        + _link(base_url, data.channel_id, lesson.message_ts, "read it")
        for lesson in listing.items
    ]
    return listing_section(f":books: Lessons shared ({listing.total})", lines, listing.more)


def _helpers(listing: Listing) -> Block | None:  # type: ignore[type-arg]
    if not listing.items:
        return None
    lines = []
    for rank, helper in enumerate(listing.items[:5], start=1):
        parts = [_plural(helper.accepted, "accepted answer")] if helper.accepted else []
        parts += [_plural(helper.helpful, "helpful answer")] if helper.helpful else []
        lines.append(f"{rank}. {mention(helper.user_id)} — {', '.join(parts)}")
    return listing_section(":star2: Top helpers", lines, listing.total - len(lines))


def _new_experts(data: DigestData) -> Block | None:
    listing = data.new_experts
    if not listing.items:
        return None
    lines = [
        f"• {mention(expert.user_id)} is now a go-to person for {format_tags(expert.tags)}" for expert in listing.items
    ]
    return listing_section(":mortar_board: New experts", lines, listing.more)


def _gaps(listing: Listing) -> Block | None:  # type: ignore[type-arg]
    if not listing.items:
        return None
    lines = [
        f"• `#{gap.tag}` — {_plural(gap.questions, 'question')}, nobody has declared it yet" for gap in listing.items
    ]
    footer = f"Know one of these? `/teach #{listing.items[0].tag}` puts you on the list of go-to people."
    return listing_section(":mag: Knowledge gaps", lines, listing.more, footer=footer)


def as_preview(message: Message, schedule: Schedule | None) -> Message:
    """The digest as an ephemeral preview: a note on top saying who sees it and when it really goes out."""
    when = f"The real one goes out {schedule.describe()}." if schedule else "`/ask digest on` posts one weekly."
    note = context(f":eyes: Preview, only you can see this. {when}")
    return Message(text=message.text, blocks=[note, *message.blocks][:50])


def render_text(message: Message) -> str:
    """A readable plain rendering of a message's blocks (the admin verb's --dry-run)."""
    lines: list[str] = []
    for block in message.blocks:
        kind = block.get("type")
        if kind == "header":
            lines.append(f"== {block['text']['text']} ==")
        elif kind == "section":
            lines.append(block["text"]["text"])
        elif kind == "context":
            lines.append("  ".join(element.get("text", "") for element in block["elements"]))
        elif kind == "divider":
            lines.append("-" * 40)
    return "\n".join(lines)


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


TokenLookup = Callable[[str], str | None]


class Workspaces:
    """How to reach each workspace from outside a request: its bot token (with "Add to Slack", each
    installation has its own; without `token_for`, the client's single token) and its URL (one auth.test
    per workspace per tick), which permalinks are built from."""

    def __init__(self, client: WebClient, token_for: TokenLookup | None = None) -> None:
        self.client = client
        self.token_for = token_for
        self._urls: dict[str, str | None] = {}

    def auth(self, team_id: str) -> dict[str, Any]:
        """Extra arguments for a Web API call on behalf of this workspace."""
        token = self.token_for(team_id) if self.token_for else None
        return {"token": token} if token else {}

    def base_url(self, team_id: str) -> str | None:
        if team_id not in self._urls:
            try:
                self._urls[team_id] = self.client.auth_test(**self.auth(team_id)).get("url")
            except SlackApiError as exc:
                logger.warning(
                    "auth.test failed for %s (%s); the digest goes out without links", team_id, error_code(exc)
                )
                self._urls[team_id] = None
            except Exception:
                logger.exception("auth.test failed for %s; the digest goes out without links", team_id)
                self._urls[team_id] = None
        return self._urls[team_id]


def tick(
    services: Services, client: WebClient, now: datetime, token_for: TokenLookup | None = None
) -> list[DigestOutcome]:
    """The scheduler's digest job: post every due digest once. One channel's failure never stops the next.
    `token_for(team_id)` gives each workspace's bot token when there are several (see Workspaces)."""
    with services.store.session() as session:
        due = due_digests(session, now)
    if not due:
        return []
    owner = owner_name()
    workspaces = Workspaces(client, token_for)
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
    workspaces: Workspaces,
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
        posted = workspaces.client.chat_postMessage(
            channel=channel_id,
            unfurl_links=False,
            unfurl_media=False,
            **workspaces.auth(team_id),
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


def current_schedule(session: Session, team_id: str, channel_id: str) -> tuple[Schedule, DigestSubscription | None]:
    subscription = fetch_subscription(session, team_id, channel_id)
    return schedule_of(subscription, workspace_timezone(session, team_id)), subscription


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
        Workspaces(client, token_for),
        claim,
        team_id=team_id,
        channel_id=channel_id,
        key=key,
        since=since,
        until=until,
        tz=schedule.zone,
        post_when_empty=True,
    )
