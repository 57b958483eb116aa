"""When a lunch-and-learn starts, read in the host's time zone (bot/session_time.py, pure)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from bot.session_time import InvalidWhen, parse_schedule, parse_when

NOW = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)  # Monday; 11:00 in Berlin
BERLIN = ZoneInfo("Europe/Berlin")
TOKYO = ZoneInfo("Asia/Tokyo")


def berlin(*args: int) -> datetime:
    return datetime(*args, tzinfo=BERLIN)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("tomorrow 12:30", berlin(2026, 11, 24, 12, 30)),
        ("today at 17:00", berlin(2026, 11, 23, 17, 0)),
        ("thu 12:30", berlin(2026, 11, 26, 12, 30)),
        ("next thursday at 12:30 pm", berlin(2026, 11, 26, 12, 30)),
        ("mon 12pm", berlin(2026, 11, 23, 12, 0)),  # today is Monday and noon is still ahead
        ("2026-12-10 12:00", berlin(2026, 12, 10, 12, 0)),
        ("dec 10 12pm", berlin(2026, 12, 10, 12, 0)),
        ("10 december 9am", berlin(2026, 12, 10, 9, 0)),
        ("12:30 tomorrow", berlin(2026, 11, 24, 12, 30)),
        ("jan 5 noon", berlin(2027, 1, 5, 12, 0)),  # January is past this year: next year's
        ("15:45", berlin(2026, 11, 23, 15, 45)),
    ],
)
def test_the_forms_a_host_types(text, expected):
    assert parse_when(text, NOW, BERLIN) == expected


@pytest.mark.parametrize("text", ["someday", "12", "13pm", "25:00", "feb 30 12:00", "tomorrow", "2026-13-01 10:00"])
def test_what_is_not_a_time(text):
    assert parse_when(text, NOW, BERLIN) is None


def test_the_host_s_zone_decides_the_day_and_the_hour():
    # 10:00 UTC on Monday is 19:00 in Tokyo: "tomorrow" there is Tuesday, and 12:30 is 03:30 UTC.
    assert parse_when("tomorrow 12:30", NOW, TOKYO) == datetime(2026, 11, 24, 3, 30, tzinfo=UTC)


def test_a_schedule_splits_title_time_and_length():
    scheduled = parse_schedule("Rebasing without fear, part 2 thu 12:30 for 45m", NOW, BERLIN)
    assert scheduled.title == "Rebasing without fear, part 2"
    assert scheduled.starts_at == berlin(2026, 11, 26, 12, 30)
    assert scheduled.length == timedelta(minutes=45)
    assert parse_schedule("Helm charts on dec 10 at 1pm", NOW, BERLIN).title == "Helm charts"
    assert parse_schedule("Helm 3 tomorrow 12:00", NOW, BERLIN).length == timedelta(hours=1)


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("Rebasing without fear someday", "couldn't read when"),
        ("Rebasing today 9:00", "has passed"),
        ("tomorrow 12:30", "title"),
        ("Rebasing tomorrow 12:30 for 12h", "between 5 minutes and 8 hours"),
        ("Rebasing 2028-01-01 12:00", "a year ahead"),
    ],
)
def test_what_the_host_is_told(text, says):
    with pytest.raises(InvalidWhen, match=says):
        parse_schedule(text, NOW, BERLIN)
