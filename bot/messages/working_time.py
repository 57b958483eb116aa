"""Working time as people read it: hours ("09:00", "midnight") and working days ("Monday to Friday")."""

from __future__ import annotations

from collections.abc import Collection

from bot.workdays import DAYS_IN_WEEK

DAY_NAMES = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


def hour_label(hour: int) -> str:
    return "midnight" if hour in (0, 24) else f"{hour:02d}:00"


def hours_text(start_hour: int, end_hour: int) -> str:
    return f"{hour_label(start_hour)}–{hour_label(end_hour)}"


def days_text(days: Collection[int]) -> str:
    """The days as said: "Monday to Friday", "Sunday to Thursday", "every day", "Monday, Wednesday and Friday"."""
    chosen = sorted(set(days))
    if len(chosen) >= DAYS_IN_WEEK:
        return "every day"
    starts = [day for day in chosen if (day - 1) % DAYS_IN_WEEK not in chosen]  # each run's first day
    if len(chosen) >= 3 and len(starts) == 1:  # one run of days, maybe over the weekend (Sunday to Thursday)
        first = starts[0]
        return f"{DAY_NAMES[first]} to {DAY_NAMES[(first + len(chosen) - 1) % DAYS_IN_WEEK]}"
    names = [DAY_NAMES[day] for day in chosen]
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def day_choices() -> dict[str, str]:
    """Checkbox choices: a day's date.weekday() number (as text) → its name."""
    return {str(day): name for day, name in enumerate(DAY_NAMES)}
