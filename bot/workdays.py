"""Working days: the weekdays someone works, as `date.weekday()` numbers (Monday 0 … Sunday 6).

Stored as the digits of those numbers in order (`"01234"`: Monday to Friday; `"01236"`: Sunday to Thursday) in
`people.work_days`; nothing stored, or anything that is not such digits, means "not set" (the default applies).
"""

from __future__ import annotations

from collections.abc import Iterable

DAYS_IN_WEEK = 7
MONDAY_TO_FRIDAY: frozenset[int] = frozenset(range(5))


def days_from_text(text: str | None) -> frozenset[int] | None:
    """The days a stored value names; None when nothing (or nothing valid) is stored."""
    if not text or not text.isascii() or not text.isdigit():
        return None
    days = frozenset(int(digit) for digit in text)
    return days if days and max(days) < DAYS_IN_WEEK else None


def days_as_text(days: Iterable[int]) -> str:
    """The stored form of a non-empty set of days."""
    chosen = sorted(set(days))
    if not chosen or chosen[0] < 0 or chosen[-1] >= DAYS_IN_WEEK:
        raise ValueError(f"working days must be some of 0 (Monday) to 6 (Sunday); got {chosen}")
    return "".join(str(day) for day in chosen)
