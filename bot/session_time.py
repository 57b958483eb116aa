"""When a lunch-and-learn starts: `tomorrow 12:30`, `thu 12:30`, `2026-12-10 12:00`, `dec 10 12pm`, read in
the host's time zone, and how long it lasts (`for 45m`, `for 2h`; an hour by default).

A few forms of our own rather than a library: dateparser pulls a regex engine, locale data for 200 languages and
guesses freely ("12" alone is a time somewhere); python-dateutil's parser reads no "tomorrow" or "thu" and fills
missing parts from today, silently. These forms are few, and what is not one of them gets the examples.

Pure functions: no Slack, no database.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, tzinfo

DEFAULT_LENGTH = timedelta(hours=1)
MAX_LENGTH = timedelta(hours=8)
MAX_AHEAD = timedelta(days=366)
MAX_WHEN_WORDS = 5  # "next thu at 12:30 pm" is the longest form

WEEKDAYS = {
    name: number
    for number, names in enumerate(
        (
            ("mon", "monday"),
            ("tue", "tues", "tuesday"),
            ("wed", "wednesday"),
            ("thu", "thur", "thurs", "thursday"),
            ("fri", "friday"),
            ("sat", "saturday"),
            ("sun", "sunday"),
        )
    )
    for name in names
}
MONTHS = {
    name: number
    for number, names in enumerate(
        (
            ("jan", "january"),
            ("feb", "february"),
            ("mar", "march"),
            ("apr", "april"),
            ("may",),
            ("jun", "june"),
            ("jul", "july"),
            ("aug", "august"),
            ("sep", "sept", "september"),
            ("oct", "october"),
            ("nov", "november"),
            ("dec", "december"),
        ),
        start=1,
    )
    for name in names
}

_CLOCK = re.compile(r"^(\d{1,2})(?::(\d{2}))?\s*(am|pm)?$")
_ISO_DATE = re.compile(r"^(\d{4})-(\d{1,2})-(\d{1,2})$")
_DAY = re.compile(r"^(\d{1,2})(?:st|nd|rd|th)?,?$")
_LENGTH = re.compile(r"\s+for\s+(\d{1,3})\s*(m|min|mins|minutes?|h|hr|hrs|hours?)$", re.IGNORECASE)

EXAMPLES = "`tomorrow 12:30`, `thu 12:30`, `dec 10 12pm` or `2026-12-10 12:00`"


class InvalidWhen(ValueError):
    """The time can't be read, or is in the past; the message says what to type instead."""


@dataclass(frozen=True)
class Scheduled:
    title: str
    starts_at: datetime  # aware
    length: timedelta


def parse_clock(words: list[str]) -> time | None:
    """`12:30`, `12pm`, `12:30 pm`, `9am`, `noon`, `at 17:00`."""
    if words and words[0] == "at":
        words = words[1:]
    text = " ".join(words)
    if text == "noon":
        return time(12, 0)
    match = _CLOCK.match(text)
    if not match or (match.group(2) is None and match.group(3) is None):
        return None  # a bare number is a day, not a time
    hour, minute, half = int(match.group(1)), int(match.group(2) or 0), match.group(3)
    if half:
        if not 1 <= hour <= 12:
            return None
        hour = hour % 12 + (12 if half == "pm" else 0)
    if hour > 23 or minute > 59:
        return None
    return time(hour, minute)


def parse_day(words: list[str], today: date) -> date | None:
    """`today`, `tomorrow`, `[on] thu` / `next thu` (the next one; today if it is that day), `2026-12-10`,
    `dec 10` / `10 dec` / `december 10th` (this year, or next once it is past)."""
    if words and words[0] == "on":
        words = words[1:]
    text = " ".join(words).rstrip(",")
    if text in ("today", "tonight"):
        return today
    if text == "tomorrow":
        return today + timedelta(days=1)
    after = text.removeprefix("next ")
    if after in WEEKDAYS:
        return today + timedelta(days=(WEEKDAYS[after] - today.weekday()) % 7)
    if match := _ISO_DATE.match(text):
        try:
            return date(int(match.group(1)), int(match.group(2)), int(match.group(3)))
        except ValueError:
            return None
    if len(words) == 2:
        first, second = words[0].rstrip(","), words[1]
        month, day = (
            (MONTHS.get(first), _DAY.match(second)) if first in MONTHS else (MONTHS.get(second), _DAY.match(first))
        )
        if month is None or day is None:
            return None
        for year in (today.year, today.year + 1):
            try:
                found = date(year, month, int(day.group(1)))
            except ValueError:
                return None
            if found >= today:
                return found
    return None


def parse_when(text: str, now: datetime, zone: tzinfo) -> datetime | None:
    """The moment `text` names in `zone` (a day then a time, or a time then a day; a time alone is today), or
    None when it is not one of the forms."""
    words = text.lower().split()
    today = now.astimezone(zone).date()
    for cut in range(1, len(words)):
        for day_words, clock_words in ((words[:cut], words[cut:]), (words[cut:], words[:cut])):
            day, clock = parse_day(day_words, today), parse_clock(clock_words)
            if day is not None and clock is not None:
                return _at(day, clock, zone)
    clock = parse_clock(words)
    return _at(today, clock, zone) if clock is not None else None


def _at(day: date, clock: time, zone: tzinfo) -> datetime:
    # A wall time a DST change skips or repeats: fold=0, the first reading, as zoneinfo resolves it.
    return datetime.combine(day, clock, tzinfo=zone)


def parse_schedule(text: str, now: datetime, zone: tzinfo) -> Scheduled:
    """`<title> <when> [for 45m]` -> the title, the start and the length; InvalidWhen with examples otherwise.

    The time is the longest run of words at the end that reads as one."""
    length = DEFAULT_LENGTH
    if match := _LENGTH.search(text):
        amount, unit = int(match.group(1)), match.group(2).lower()
        length = timedelta(hours=amount) if unit.startswith("h") else timedelta(minutes=amount)
        if not timedelta(minutes=5) <= length <= MAX_LENGTH:
            raise InvalidWhen("A session lasts between 5 minutes and 8 hours, e.g. `for 45m` or `for 2h`.")
        text = text[: match.start()]
    words = text.split()
    for size in range(min(MAX_WHEN_WORDS, len(words)), 0, -1):
        starts_at = parse_when(" ".join(words[-size:]), now, zone)
        if starts_at is None:
            continue
        title = " ".join(words[:-size]).strip(" ,-–—")
        if not title:
            raise InvalidWhen(
                "Give the session a title before its time, e.g. `/teach session #git Rebasing without fear thu 12:30`."
            )
        if starts_at <= now:
            raise InvalidWhen(
                f"That time ({starts_at:%a %d %b %H:%M}, your time) has passed. Pick one ahead, like {EXAMPLES}."
            )
        if starts_at - now > MAX_AHEAD:
            raise InvalidWhen("Sessions can be announced up to a year ahead; pick a nearer date.")
        return Scheduled(title=title, starts_at=starts_at, length=length)
    raise InvalidWhen(
        f"I couldn't read when the session starts. End with a time like {EXAMPLES}, "
        "e.g. `/teach session #git Rebasing without fear thu 12:30`."
    )
