"""When to DM whom: working hours and days in each person's time zone, daily caps, ties spread by recent load,
the escalation period. Pure code: no database, no Slack (bot.routing.escalation plans one question with it)."""

from __future__ import annotations

import heapq
import math
from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from functools import lru_cache
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from bot.config import Settings
from bot.routing.ranker import ScoredExpert, require_aware
from bot.workdays import DAYS_IN_WEEK, MONDAY_TO_FRIDAY, days_from_text

if TYPE_CHECKING:
    from bot.routing.evidence import PersonFacts


# --------------------------------------------------------------------------------------------------
# Working hours
# --------------------------------------------------------------------------------------------------


@lru_cache(maxsize=1024)
def resolve_timezone(tz_name: str | None) -> tzinfo:
    """The IANA zone for ``tz_name``; UTC when it is empty, unknown or malformed."""
    if not tz_name:
        return UTC
    try:
        return ZoneInfo(tz_name)
    except (ZoneInfoNotFoundError, ValueError):
        return UTC


def is_within_working_hours(
    now: datetime,
    tz_name: str | None,
    start_hour: int,
    end_hour: int,
    work_days: Collection[int] = MONDAY_TO_FRIDAY,
) -> bool:
    """Whether ``now`` falls in a local working shift: [start_hour, end_hour) on one of ``work_days``
    (``date.weekday()`` numbers: Monday 0 … Sunday 6).

    A shift may run past midnight (start 22, end 6); it belongs to the weekday it starts on.
    """
    require_aware(now)
    _validate_hours(start_hour, end_hour)
    _validate_days(work_days)
    shifts = _shifts(now, resolve_timezone(tz_name), start_hour, end_hour, work_days)
    return any(start <= now < end for start, end in shifts)


def next_working_start(
    now: datetime,
    tz_name: str | None,
    start_hour: int,
    end_hour: int,
    work_days: Collection[int] = MONDAY_TO_FRIDAY,
) -> datetime:
    """The earliest moment at or after ``now`` within working hours, as an aware UTC datetime.

    ``now`` itself (in UTC) when already within working hours; otherwise the next shift's start, skipping
    the days not in ``work_days``. DST is handled by computing each shift's wall-clock start in the user's zone.
    """
    require_aware(now)
    _validate_hours(start_hour, end_hour)
    _validate_days(work_days)
    for start, end in _shifts(now, resolve_timezone(tz_name), start_hour, end_hour, work_days):
        if now < end:
            return max(start, now.astimezone(UTC))
    raise AssertionError("a 9-day window always contains a shift of a working day")  # pragma: no cover


def working_shifts(moment: datetime, availability: Availability) -> list[tuple[datetime, datetime]]:
    """Someone's working shifts in UTC, in order, from the one that started the local day before `moment` to
    8 days after it."""
    require_aware(moment)
    a = availability
    _validate_hours(a.start_hour, a.end_hour)
    _validate_days(a.work_days)
    return list(_shifts(moment, resolve_timezone(a.tz_name), a.start_hour, a.end_hour, a.work_days))


def week_shifts(start: datetime, availability: Availability) -> list[tuple[datetime, datetime]]:
    """Someone's working shifts in the week from `start`, clipped to it (for overlaps of working time)."""
    end = start + timedelta(days=7)
    clipped = ((max(a, start), min(b, end)) for a, b in working_shifts(start, availability))
    return [(a, b) for a, b in clipped if a < b]


def overlap_hours(mine: Sequence[tuple[datetime, datetime]], theirs: Sequence[tuple[datetime, datetime]]) -> float:
    """Hours when both lists of shifts are at work (mentoring and onboarding buddies: who works when you do)."""
    together = timedelta()
    for start, end in mine:
        for other_start, other_end in theirs:
            together += max(timedelta(), min(end, other_end) - max(start, other_start))
    return together / timedelta(hours=1)


def _shifts(
    now: datetime, zone: tzinfo, start_hour: int, end_hour: int, work_days: Collection[int]
) -> Iterator[tuple[datetime, datetime]]:
    """Working shifts in UTC, in order, from the one that started yesterday (local) to 8 days ahead."""
    today = now.astimezone(zone).date()
    for offset in range(-1, 9):
        day = today + timedelta(days=offset)
        if day.weekday() not in work_days:
            continue
        end_day = day if end_hour > start_hour else day + timedelta(days=1)
        yield _local_to_utc(day, start_hour, zone), _local_to_utc(end_day, end_hour, zone)


def _local_to_utc(day: date, hour: int, zone: tzinfo) -> datetime:
    if hour == 24:
        day, hour = day + timedelta(days=1), 0
    # A wall time inside a spring-forward gap resolves to the first real moment after it (fold=0).
    return datetime.combine(day, time(hour), tzinfo=zone).astimezone(UTC)


def _validate_hours(start_hour: int, end_hour: int) -> None:
    if not (0 <= start_hour <= 23 and 1 <= end_hour <= 24 and start_hour != end_hour):
        raise ValueError(
            f"working hours must satisfy 0 <= start <= 23, 1 <= end <= 24, start != end; got {start_hour}-{end_hour}"
        )


def _validate_days(work_days: Collection[int]) -> None:
    if not work_days or not all(0 <= day < DAYS_IN_WEEK for day in work_days):
        raise ValueError(f"working days must be some of 0 (Monday) to 6 (Sunday); got {sorted(work_days)}")


# --------------------------------------------------------------------------------------------------
# Planning the DMs
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Availability:
    tz_name: str = "UTC"
    start_hour: int = 9
    end_hour: int = 18
    work_days: frozenset[int] = MONDAY_TO_FRIDAY


@dataclass(frozen=True, slots=True)
class PlannedDM:
    user_id: str
    send_at: datetime  # UTC; equal to ``now`` for "send right away"
    reason: str


def plan_routing(
    ranked: Sequence[ScoredExpert],
    *,
    now: datetime,
    top_n: int = 2,
    daily_cap: int = 3,
    dm_counts_today: Mapping[str, int],
    availability_by_user: Mapping[str, Availability],
    prefer_awake: bool = True,
) -> list[PlannedDM]:
    """Choose at most ``top_n`` experts from ``ranked`` (best first) and when to DM each.

    Experts with ``daily_cap`` DMs today are skipped so load spreads, even one who would only be DMed
    tomorrow morning (today's counts are what the caller knows). With ``prefer_awake``, experts within their
    working hours come first, in rank order; remaining places go to the best of the others, scheduled for
    the start of their next shift. Users missing from ``availability_by_user`` count as available.
    Result: those sent now, then those scheduled, each group in rank order.
    """
    require_aware(now)
    if top_n <= 0:
        return []
    now_utc = now.astimezone(UTC)
    timed = [
        (expert, _send_time(availability_by_user.get(expert.user_id), now_utc))
        for expert in _unique_experts(ranked)
        if dm_counts_today.get(expert.user_id, 0) < daily_cap
    ]
    if prefer_awake:
        awake = [item for item in timed if item[1] == now_utc]
        asleep = [item for item in timed if item[1] != now_utc]
        chosen = awake[:top_n] + asleep[: top_n - min(len(awake), top_n)]
    else:
        chosen = sorted(timed[:top_n], key=lambda item: item[1] != now_utc)
    return [
        PlannedDM(expert.user_id, send_at, _timing_reason(expert, send_at, now_utc, availability_by_user))
        for expert, send_at in chosen
    ]


def _unique_experts(ranked: Sequence[ScoredExpert]) -> Iterator[ScoredExpert]:
    seen: set[str] = set()
    for expert in ranked:
        if expert.user_id not in seen:
            seen.add(expert.user_id)
            yield expert


def _send_time(availability: Availability | None, now: datetime) -> datetime:
    if availability is None:
        return now
    return next_working_start(
        now, availability.tz_name, availability.start_hour, availability.end_hour, availability.work_days
    )


def _timing_reason(
    expert: ScoredExpert, send_at: datetime, now: datetime, availability_by_user: Mapping[str, Availability]
) -> str:
    if send_at == now:
        return f"{expert.reason}; available now"
    availability = availability_by_user[expert.user_id]  # only known users can be scheduled later
    zone = resolve_timezone(availability.tz_name)
    local = send_at.astimezone(zone).strftime("%a %H:%M")
    return f"{expert.reason}; outside working hours, DM at {local} {_zone_label(zone)}"


def _zone_label(zone: tzinfo) -> str:
    return getattr(zone, "key", None) or "UTC"


# --- a person's hours, ties between equals, the escalation period --------------------------------------------


def _valid_hours(start: int | None, end: int | None) -> bool:
    return start is not None and end is not None and 0 <= start <= 23 and 1 <= end <= 24 and start != end


def availability_of(person: PersonFacts | None, settings: Settings) -> Availability | None:
    """A person's working time in their zone: their own hours and days, or the workspace's default for what
    they did not set; None when PeerLearn knows neither their zone nor a working time of their own: they
    count as available."""
    if person is None:
        return None
    own_hours = _valid_hours(person.work_start_hour, person.work_end_hour)
    own_days = days_from_text(person.work_days)
    if not own_hours and own_days is None and not person.tz:
        return None
    if own_hours:
        start, end = person.work_start_hour, person.work_end_hour
    elif _valid_hours(settings.work_start_hour, settings.work_end_hour):
        start, end = settings.work_start_hour, settings.work_end_hour
    else:
        return None
    assert start is not None and end is not None
    days = own_days or settings.work_days
    return Availability(tz_name=person.tz or "UTC", start_hour=start, end_hour=end, work_days=days)


def next_summary_time(now: datetime, availability: Availability | None) -> datetime:
    """When a daily-summary person's next summary goes out: the start of their next working shift that
    begins after `now` (their next working morning when they are at work now)."""
    hours = availability or Availability()
    moment = now
    for _ in range(100):  # a shift is at most 23 h long
        if not is_within_working_hours(moment, hours.tz_name, hours.start_hour, hours.end_hour, hours.work_days):
            break
        moment += timedelta(minutes=30)
    return next_working_start(moment, hours.tz_name, hours.start_hour, hours.end_hour, hours.work_days)


def spread_ties(
    ranked: Sequence[ScoredExpert], recent: Mapping[str, tuple[int, datetime | None]]
) -> list[ScoredExpert]:
    """Among experts the ranker cannot tell apart, who had fewer DMs lately (then the longest ago) goes
    first, so equal experts take turns instead of the first user id always winning the tie."""
    never = datetime.min.replace(tzinfo=UTC)
    result: list[ScoredExpert] = []
    start = 0
    while start < len(ranked):
        end = start + 1
        while end < len(ranked) and _tied(ranked[start], ranked[end]):
            end += 1
        group = ranked[start:end]
        result += sorted(
            group,
            key=lambda e: (
                recent.get(e.user_id, (0, None))[0],
                recent.get(e.user_id, (0, None))[1] or never,
                e.user_id,
            ),
        )
        start = end
    return result


def _tied(a: ScoredExpert, b: ScoredExpert) -> bool:
    return math.isclose(a.score, b.score, rel_tol=1e-9, abs_tol=1e-12) and math.isclose(
        a.expertise, b.expertise, rel_tol=1e-9, abs_tol=1e-12
    )


def escalation_period(settings: Settings) -> timedelta:
    """How long a question waits for an answer before its next step (`settings`: the workspace's effective ones):
    of the asked experts' working time (working_deadline)."""
    return timedelta(hours=settings.escalation_hours)


NEVER = datetime.max.replace(tzinfo=UTC)


def working_deadline(
    now: datetime, period: timedelta, asked: Sequence[tuple[datetime, Availability | None]]
) -> datetime:
    """When the experts asked in a round have had `period` of working time to answer: time counts while at
    least one of them is at work, each from when their DM goes out (`asked`: (send_at, their working time)).
    Nights, weekends and days off count for nobody; someone whose working time PeerLearn does not know counts
    as always at work. With nobody asked, `period` is plain time."""
    require_aware(now)
    if not asked:
        return now + period
    left = period
    block: tuple[datetime, datetime] | None = None  # the merged working time being counted
    for start, end in heapq.merge(*(_working_time(max(now, send_at), hours) for send_at, hours in asked)):
        if block is None or start > block[1]:
            if block is not None:
                left -= block[1] - block[0]  # less than what is left, or the deadline was in it
            block = (start, end)
        else:
            block = (block[0], max(block[1], end))
        if block[1] - block[0] >= left:
            return block[0] + left
    raise AssertionError("unreachable: everyone works on at least one day a week")  # pragma: no cover


def _working_time(after: datetime, hours: Availability | None) -> Iterator[tuple[datetime, datetime]]:
    """One person's working shifts from `after` on (UTC, in order, endless); all of it without known hours."""
    if hours is None:
        yield after, NEVER
        return
    zone = resolve_timezone(hours.tz_name)
    day = after.astimezone(zone).date() - timedelta(days=1)  # a shift that began yesterday may still run
    while True:
        if day.weekday() in hours.work_days:
            end_day = day if hours.end_hour > hours.start_hour else day + timedelta(days=1)
            start, end = _local_to_utc(day, hours.start_hour, zone), _local_to_utc(end_day, hours.end_hour, zone)
            if end > after:
                yield max(start, after), end
        day += timedelta(days=1)
