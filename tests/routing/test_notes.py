"""What the asker reads about routing, as pure functions: when something happens, in their terms, and who is
asked now or later (issue 18 item 6)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from bot.messages.routing_notes import people_list, roughly_when, routing_plan_text
from bot.messages.suggestions import SimilarItem, similar_suggestions

LONDON, TOKYO = ZoneInfo("Europe/London"), ZoneInfo("Asia/Tokyo")
MONDAY_NIGHT = datetime(2026, 11, 23, 23, 30, tzinfo=UTC)
SATURDAY_NOON = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("later", "said"),
    [
        (timedelta(seconds=30), "now"),
        (timedelta(minutes=5), "in a few minutes"),
        (timedelta(minutes=38), "in about 40 minutes"),
        (timedelta(minutes=52), "in about 50 minutes"),
        (timedelta(minutes=58), "in about an hour"),
        (timedelta(hours=1, minutes=20), "in about an hour"),
        (timedelta(hours=1, minutes=40), "in about 2 hours"),
        (timedelta(hours=8, minutes=30), "in about 9 hours"),
        (timedelta(hours=11, minutes=20), "in about 11 hours"),
    ],
)
def test_soon_is_said_in_rounded_minutes_or_hours(later, said):
    assert roughly_when(MONDAY_NIGHT, MONDAY_NIGHT + later, LONDON) == said


def test_further_away_is_a_day_and_a_part_of_it_in_the_readers_time_zone():
    tuesday_2pm_utc = datetime(2026, 11, 24, 14, 0, tzinfo=UTC)
    assert roughly_when(MONDAY_NIGHT, tuesday_2pm_utc, LONDON) == "tomorrow afternoon"
    # The same moment for a reader in Tokyo, where it is already Tuesday morning: 23:00 today.
    assert roughly_when(MONDAY_NIGHT, tuesday_2pm_utc, TOKYO) == "tonight"

    monday_8am_utc = datetime(2026, 11, 30, 8, 0, tzinfo=UTC)
    assert roughly_when(SATURDAY_NOON, monday_8am_utc, LONDON) == "on Monday morning"
    assert roughly_when(SATURDAY_NOON, monday_8am_utc, TOKYO) == "on Monday evening"
    assert roughly_when(SATURDAY_NOON, monday_8am_utc + timedelta(hours=6), LONDON) == "on Monday afternoon"
    assert roughly_when(SATURDAY_NOON, monday_8am_utc - timedelta(hours=5), LONDON) == "on Monday early morning"

    early = datetime(2026, 11, 24, 0, 30, tzinfo=UTC)
    assert roughly_when(early, early + timedelta(hours=13), LONDON) == "this afternoon"
    assert roughly_when(early, early + timedelta(hours=18), LONDON) == "this evening"
    assert roughly_when(SATURDAY_NOON, SATURDAY_NOON + timedelta(days=9), LONDON) == "on Monday 7 December"


def test_people_are_listed_as_mentions():
    assert people_list(["U_A"]) == "<@U_A>"
    assert people_list(["U_A", "U_B"]) == "<@U_A> and <@U_B>"
    assert people_list(["U_A", "U_B", "U_C"]) == "<@U_A>, <@U_B> and <@U_C>"


def test_the_plan_says_who_is_asked_now_and_who_later_and_when():
    assert routing_plan_text([], []) is None
    assert routing_plan_text(["U_A"], []) == ":mag: I've asked <@U_A>, who knows your topics."
    assert routing_plan_text(["U_A", "U_B"], []) == ":mag: I've asked <@U_A> and <@U_B>, who know your topics."
    together = [("U_BRUNO", "in about 9 hours"), ("U_MAYA", "in about 9 hours")]
    assert routing_plan_text([], together) == (
        ":crescent_moon: Nobody is pinged yet: <@U_BRUNO> and <@U_MAYA> start their day in about 9 hours. "
        "I'll ask them then."
    )
    apart = [("U_BRUNO", "in about 9 hours"), ("U_MAYA", "tomorrow afternoon")]
    assert routing_plan_text([], apart) == (
        ":crescent_moon: Nobody is pinged yet: <@U_BRUNO> starts their day in about 9 hours and <@U_MAYA> "
        "tomorrow afternoon. I'll ask each of them then."
    )
    assert routing_plan_text(["U_ANNA"], [("U_KEN", "in about 8 hours")]) == (
        ":mag: I've asked <@U_ANNA> now. <@U_KEN> starts their day in about 8 hours. I'll ask them then."
    )


def test_the_suggestions_promise_no_time_for_the_experts_only_when_routing_is_looked_at():
    item = SimilarItem(kind="question", ref_id=1, text="How?", author_id="U_OLD")
    context = similar_suggestions(7, [item], 10).blocks[-1]["elements"][0]["text"]
    assert "I'll ask people who know your topics in" not in context
    assert "otherwise I will in 10 minutes" in context and "I'll tell you who I ask, and when" in context
