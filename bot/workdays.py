"""Working days: the weekdays someone works, as `date.weekday()` numbers (Monday 0 … Sunday 6).

Stored as the digits of those numbers in order (`"01234"`: Monday to Friday; `"01236"`: Sunday to Thursday) in
`people.work_days` and a workspace's `work_days` setting; nothing stored, or anything that is not such digits,
means "not set" (the default applies). PEERLEARN_WORK_DAYS names them (`mon-fri`, `sun-thu`, `mon,wed,fri`).
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


_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def days_from_names(text: str) -> frozenset[int]:
    """Days named as in PEERLEARN_WORK_DAYS: comma-separated days or ranges of days, by their English name or
    its first three letters (`mon-fri`, `sun-thu`, `Monday,Wednesday,Friday`); ValueError when it names none."""

    def day(word: str) -> int:
        name = word.strip().lower()[:3]
        if len(word.strip()) < 3 or name not in _NAMES:
            raise ValueError(f"'{word.strip()}' is not a day of the week")
        return _NAMES.index(name)

    days: set[int] = set()
    for part in text.split(","):
        if not part.strip():
            continue
        first, _, last = part.partition("-")
        start = day(first)
        end = day(last) if last else start
        days.update((start + step) % DAYS_IN_WEEK for step in range((end - start) % DAYS_IN_WEEK + 1))
    if not days:
        raise ValueError("no day named")
    return frozenset(days)
