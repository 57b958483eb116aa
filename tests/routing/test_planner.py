"""bot.routing.planner: working hours in each person's time zone, and planning the DMs. Pure and fast."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from bot.routing.planner import (
    Availability,
    is_within_working_hours,
    next_working_start,
    plan_routing,
    resolve_timezone,
)
from bot.routing.ranker import Candidate, ScoredExpert, rank_experts

# Wednesday 6 March 2024, noon UTC: winter time in Europe and (until the 10th) in the US.
NOW = datetime(2024, 3, 6, 12, 0, tzinfo=UTC)


# --- working hours ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("utc_time", "expected"),
    [
        (datetime(2024, 3, 6, 7, 59, tzinfo=UTC), False),  # 08:59 in Paris
        (datetime(2024, 3, 6, 8, 0, tzinfo=UTC), True),  # 09:00
        (datetime(2024, 3, 6, 15, 59, tzinfo=UTC), True),  # 16:59
        (datetime(2024, 3, 6, 16, 0, tzinfo=UTC), False),  # 17:00: the end is exclusive
        (datetime(2024, 3, 9, 10, 0, tzinfo=UTC), False),  # Saturday
        (datetime(2024, 3, 10, 10, 0, tzinfo=UTC), False),  # Sunday
    ],
)
def test_working_hours_in_paris(utc_time: datetime, expected: bool) -> None:
    assert is_within_working_hours(utc_time, "Europe/Paris", 9, 17) is expected


def test_same_instant_differs_by_time_zone() -> None:
    assert is_within_working_hours(NOW, "Europe/Paris", 9, 17)  # 13:00
    assert not is_within_working_hours(NOW, "Asia/Tokyo", 9, 17)  # 21:00
    assert not is_within_working_hours(NOW, "America/Los_Angeles", 9, 17)  # 04:00


def test_next_start_is_now_when_already_working() -> None:
    paris_noon = datetime(2024, 3, 6, 13, 0, tzinfo=resolve_timezone("Europe/Paris"))

    assert next_working_start(paris_noon, "Europe/Paris", 9, 17) == datetime(2024, 3, 6, 12, 0, tzinfo=UTC)


def test_next_start_is_tomorrow_morning_on_a_weeknight() -> None:
    wednesday_evening = datetime(2024, 3, 6, 19, 0, tzinfo=UTC)  # 20:00 in Paris

    assert next_working_start(wednesday_evening, "Europe/Paris", 9, 17) == datetime(2024, 3, 7, 8, 0, tzinfo=UTC)


def test_next_start_skips_the_weekend() -> None:
    friday_evening = datetime(2024, 3, 8, 18, 0, tzinfo=UTC)

    assert next_working_start(friday_evening, "Europe/Paris", 9, 17) == datetime(2024, 3, 11, 8, 0, tzinfo=UTC)


def test_next_start_follows_the_spring_forward_change() -> None:
    # New York moves to EDT (UTC-4) on Sunday 10 March 2024: Monday 09:00 is 13:00 UTC, not 14:00.
    friday_evening = datetime(2024, 3, 8, 23, 0, tzinfo=UTC)  # 18:00 EST

    assert next_working_start(friday_evening, "America/New_York", 9, 17) == datetime(2024, 3, 11, 13, 0, tzinfo=UTC)
    assert is_within_working_hours(datetime(2024, 3, 11, 13, 0, tzinfo=UTC), "America/New_York", 9, 17)
    assert not is_within_working_hours(datetime(2024, 3, 8, 13, 30, tzinfo=UTC), "America/New_York", 9, 17)


def test_next_start_follows_the_autumn_change() -> None:
    # Paris leaves CEST (UTC+2) on Sunday 27 October 2024: Monday 09:00 is 08:00 UTC, Friday's was 07:00.
    friday_evening = datetime(2024, 10, 25, 17, 0, tzinfo=UTC)

    assert is_within_working_hours(datetime(2024, 10, 25, 7, 0, tzinfo=UTC), "Europe/Paris", 9, 17)
    assert next_working_start(friday_evening, "Europe/Paris", 9, 17) == datetime(2024, 10, 28, 8, 0, tzinfo=UTC)


def test_a_shift_starting_in_the_spring_forward_gap_starts_when_the_clock_resumes() -> None:
    # Israel springs forward on a weekday: Friday 29 March 2024, 02:00 IST (UTC+2) becomes 03:00 IDT (UTC+3).
    # A 02:00 shift that day starts at 03:00 IDT = 00:00 UTC, not at 23:00 UTC (which is still 01:00 IST).
    thursday_afternoon = datetime(2024, 3, 28, 12, 0, tzinfo=UTC)

    assert next_working_start(thursday_afternoon, "Asia/Jerusalem", 2, 10) == datetime(2024, 3, 29, 0, 0, tzinfo=UTC)
    assert not is_within_working_hours(datetime(2024, 3, 28, 23, 30, tzinfo=UTC), "Asia/Jerusalem", 2, 10)
    assert is_within_working_hours(datetime(2024, 3, 29, 6, 59, tzinfo=UTC), "Asia/Jerusalem", 2, 10)
    assert not is_within_working_hours(datetime(2024, 3, 29, 7, 0, tzinfo=UTC), "Asia/Jerusalem", 2, 10)


def test_half_hour_time_zones() -> None:
    # Kolkata is UTC+05:30, so 09:00 there is 03:30 UTC.
    assert next_working_start(datetime(2024, 3, 6, 1, 0, tzinfo=UTC), "Asia/Kolkata", 9, 17) == datetime(
        2024, 3, 6, 3, 30, tzinfo=UTC
    )


def test_overnight_shifts_belong_to_the_weekday_they_start_on() -> None:
    def at(day: int, hour: int) -> datetime:
        return datetime(2024, 3, day, hour, 0, tzinfo=UTC)

    assert is_within_working_hours(at(6, 23), "UTC", 22, 6)  # Wednesday night
    assert is_within_working_hours(at(7, 3), "UTC", 22, 6)  # ...into Thursday
    assert is_within_working_hours(at(9, 3), "UTC", 22, 6)  # Friday's shift runs into Saturday
    assert not is_within_working_hours(at(10, 3), "UTC", 22, 6)  # no shift starts on Saturday
    assert not is_within_working_hours(at(6, 12), "UTC", 22, 6)
    assert next_working_start(at(10, 3), "UTC", 22, 6) == at(11, 22)  # Monday night


@pytest.mark.parametrize("tz_name", ["Mars/Olympus_Mons", "", None, "../etc/passwd", "Europe"])
def test_unknown_or_invalid_time_zones_fall_back_to_utc(tz_name: str | None) -> None:
    assert resolve_timezone(tz_name) is UTC
    assert is_within_working_hours(datetime(2024, 3, 6, 9, 30, tzinfo=UTC), tz_name, 9, 17)
    assert next_working_start(datetime(2024, 3, 6, 20, 0, tzinfo=UTC), tz_name, 9, 17) == datetime(
        2024, 3, 7, 9, 0, tzinfo=UTC
    )


@pytest.mark.parametrize(("start", "end"), [(9, 9), (-1, 5), (9, 25), (24, 5), (9, 0)])
def test_impossible_working_hours_are_refused(start: int, end: int) -> None:
    with pytest.raises(ValueError, match="working hours"):
        is_within_working_hours(NOW, "UTC", start, end)


def test_a_full_day_shift_ends_at_midnight() -> None:
    assert is_within_working_hours(datetime(2024, 3, 6, 23, 59, tzinfo=UTC), "UTC", 0, 24)
    assert not is_within_working_hours(datetime(2024, 3, 9, 0, 1, tzinfo=UTC), "UTC", 0, 24)  # Saturday


def test_availability_functions_require_an_aware_now() -> None:
    with pytest.raises(ValueError, match="aware"):
        next_working_start(datetime(2024, 3, 6, 12, 0), "UTC", 9, 17)


# --- planning the DMs -------------------------------------------------------------------------------

PARIS = Availability("Europe/Paris", 9, 17)  # 13:00 at NOW: working
TOKYO = Availability("Asia/Tokyo", 9, 17)  # 21:00 at NOW: off
LOS_ANGELES = Availability("America/Los_Angeles", 9, 17)  # 04:00 at NOW: off


def expert(user_id: str) -> ScoredExpert:
    return ScoredExpert(user_id, score=0.0, reason=f"reason of {user_id}", expertise=1.0, activity=1.0)


def plan(ranked: list[str], availability: dict[str, Availability], **kwargs: object) -> list[tuple[str, datetime]]:
    options: dict = {"now": NOW, "top_n": 2, "daily_cap": 3, "dm_counts_today": {}} | kwargs
    planned = plan_routing([expert(u) for u in ranked], availability_by_user=availability, **options)
    return [(dm.user_id, dm.send_at) for dm in planned]


def test_awake_experts_are_preferred_over_better_ranked_sleepers() -> None:
    availability = {"U1": TOKYO, "U2": PARIS, "U3": PARIS}

    assert plan(["U1", "U2", "U3"], availability) == [("U2", NOW), ("U3", NOW)]


def test_the_best_sleeper_is_scheduled_for_their_morning_when_too_few_are_awake() -> None:
    availability = {"U1": TOKYO, "U2": LOS_ANGELES, "U3": PARIS}

    # Tokyo's next 09:00 is Thursday 00:00 UTC.
    assert plan(["U1", "U2", "U3"], availability) == [("U3", NOW), ("U1", datetime(2024, 3, 7, 0, 0, tzinfo=UTC))]


def test_experts_at_their_daily_cap_are_skipped() -> None:
    availability = {"U1": PARIS, "U2": PARIS, "U3": PARIS}

    assert plan(["U1", "U2", "U3"], availability, dm_counts_today={"U1": 3, "U2": 2}) == [("U2", NOW), ("U3", NOW)]
    assert plan(["U1", "U2"], availability, daily_cap=1, dm_counts_today={"U1": 1, "U2": 1}) == []


def test_never_more_than_top_n() -> None:
    availability = {u: PARIS for u in ("U1", "U2", "U3", "U4")}

    assert plan(["U1", "U2", "U3", "U4"], availability, top_n=3) == [("U1", NOW), ("U2", NOW), ("U3", NOW)]
    assert plan(["U1", "U2"], availability, top_n=0) == []
    assert plan([], availability) == []


def test_without_prefer_awake_rank_decides_and_sleepers_wait() -> None:
    availability = {"U1": TOKYO, "U2": PARIS, "U3": PARIS}

    planned = plan(["U1", "U2", "U3"], availability, prefer_awake=False)

    assert planned == [("U2", NOW), ("U1", datetime(2024, 3, 7, 0, 0, tzinfo=UTC))]


def test_users_without_known_hours_are_treated_as_available() -> None:
    assert plan(["U1"], {}) == [("U1", NOW)]


def test_duplicates_in_the_ranking_get_one_dm() -> None:
    assert plan(["U1", "U1", "U2"], {"U1": PARIS, "U2": PARIS}) == [("U1", NOW), ("U2", NOW)]


def test_planned_reasons_say_when_and_why() -> None:
    planned = plan_routing(
        [expert("U1"), expert("U2")],
        now=NOW,
        top_n=2,
        daily_cap=3,
        dm_counts_today={},
        availability_by_user={"U1": TOKYO, "U2": PARIS},
    )

    assert [dm.reason for dm in planned] == [
        "reason of U2; available now",
        "reason of U1; outside working hours, DM at Thu 09:00 Asia/Tokyo",
    ]


def test_plan_works_on_rank_experts_output() -> None:
    candidates = [Candidate("U1", frozenset({"postgres"})), Candidate("U2", frozenset({"postgres"}))]
    ranked = rank_experts(["postgres"], candidates, NOW, exclude={"U2"})

    planned = plan_routing(ranked, now=NOW, dm_counts_today={}, availability_by_user={"U1": PARIS})

    assert [(dm.user_id, dm.send_at, dm.reason) for dm in planned] == [("U1", NOW, "declared #postgres; available now")]
