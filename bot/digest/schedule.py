"""When a channel's digest is due: its schedule (weekday, time, time zone), parsing `/ask digest` settings,
the week slots, and the subscriptions (stored in the caller's transaction)."""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import cache
from zoneinfo import ZoneInfo, available_timezones

from sqlalchemy.orm import Session

from bot.text import escape_mrkdwn, truncate
from models.digest import DigestSubscription, ensure_subscription, fetch_subscription
from models.workspace import Workspace

DEFAULT_TIMEZONE = "UTC"
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


def current_schedule(session: Session, team_id: str, channel_id: str) -> tuple[Schedule, DigestSubscription | None]:
    subscription = fetch_subscription(session, team_id, channel_id)
    return schedule_of(subscription, workspace_timezone(session, team_id)), subscription
