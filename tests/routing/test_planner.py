"""bot.routing.planner: working hours in each person's time zone, and planning the DMs. Pure and fast."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from bot.config import Settings
from bot.routing.evidence import PersonFacts
from bot.routing.planner import (
    Availability,
    availability_of,
    is_within_working_hours,
    next_summary_time,
    next_working_start,
    plan_routing,
    resolve_timezone,
    working_deadline,
)
from bot.routing.ranker import Candidate, ScoredExpert, rank_experts
from bot.workdays import MONDAY_TO_FRIDAY, days_as_text, days_from_text

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


# --- working days -----------------------------------------------------------------------------------

SUNDAY_TO_THURSDAY = frozenset({6, 0, 1, 2, 3})  # date.weekday(): Monday 0 … Sunday 6
JERUSALEM = "Asia/Jerusalem"  # UTC+2 until 29 March 2024


@pytest.mark.parametrize(
    ("utc_time", "expected"),
    [
        (datetime(2024, 3, 10, 7, 0, tzinfo=UTC), True),  # Sunday 09:00 in Jerusalem
        (datetime(2024, 3, 10, 6, 59, tzinfo=UTC), False),  # Sunday 08:59
        (datetime(2024, 3, 7, 14, 59, tzinfo=UTC), True),  # Thursday 16:59
        (datetime(2024, 3, 8, 8, 0, tzinfo=UTC), False),  # Friday 10:00
        (datetime(2024, 3, 9, 8, 0, tzinfo=UTC), False),  # Saturday 10:00
        (datetime(2024, 3, 11, 8, 0, tzinfo=UTC), True),  # Monday 10:00
    ],
)
def test_working_days_sunday_to_thursday(utc_time: datetime, expected: bool) -> None:
    assert is_within_working_hours(utc_time, JERUSALEM, 9, 17, SUNDAY_TO_THURSDAY) is expected


def test_next_start_after_a_thursday_is_sunday_for_a_sunday_to_thursday_week() -> None:
    thursday_evening = datetime(2024, 3, 7, 16, 0, tzinfo=UTC)  # 18:00 in Jerusalem
    sunday_nine = datetime(2024, 3, 10, 7, 0, tzinfo=UTC)

    assert next_working_start(thursday_evening, JERUSALEM, 9, 17, SUNDAY_TO_THURSDAY) == sunday_nine
    assert next_working_start(datetime(2024, 3, 8, 8, 0, tzinfo=UTC), JERUSALEM, 9, 17, SUNDAY_TO_THURSDAY) == (
        sunday_nine
    )
    # The same Thursday evening, Monday to Friday: Friday morning.
    assert next_working_start(thursday_evening, JERUSALEM, 9, 17) == datetime(2024, 3, 8, 7, 0, tzinfo=UTC)


def test_a_shift_past_midnight_belongs_to_the_working_day_it_starts_on() -> None:
    def at(day: int, hour: int) -> datetime:
        return datetime(2024, 3, day, hour, 0, tzinfo=UTC)  # 7 March 2024 is a Thursday

    night = (22, 6)
    assert is_within_working_hours(at(7, 23), "UTC", *night, SUNDAY_TO_THURSDAY)  # Thursday night
    assert is_within_working_hours(at(8, 5), "UTC", *night, SUNDAY_TO_THURSDAY)  # ...into Friday morning
    assert not is_within_working_hours(at(8, 6), "UTC", *night, SUNDAY_TO_THURSDAY)
    assert not is_within_working_hours(at(8, 23), "UTC", *night, SUNDAY_TO_THURSDAY)  # no shift starts on Friday
    assert not is_within_working_hours(at(10, 3), "UTC", *night, SUNDAY_TO_THURSDAY)  # Saturday's: none either
    assert is_within_working_hours(at(10, 23), "UTC", *night, SUNDAY_TO_THURSDAY)  # Sunday night
    assert next_working_start(at(8, 6), "UTC", *night, SUNDAY_TO_THURSDAY) == at(10, 22)
    # Saturday only: the shift runs into Sunday, and the next one is a week later.
    saturday = frozenset({5})
    assert is_within_working_hours(at(10, 5), "UTC", *night, saturday)
    assert next_working_start(at(10, 6), "UTC", *night, saturday) == at(16, 22)


def test_the_local_day_decides_not_utcs() -> None:
    sunday_1am_utc = datetime(2024, 3, 10, 1, 0, tzinfo=UTC)  # Sunday 10:00 in Tokyo, Saturday 17:00 in Los Angeles
    assert is_within_working_hours(sunday_1am_utc, "Asia/Tokyo", 9, 17, SUNDAY_TO_THURSDAY)
    assert not is_within_working_hours(sunday_1am_utc, "America/Los_Angeles", 9, 18, SUNDAY_TO_THURSDAY)
    assert is_within_working_hours(sunday_1am_utc, "America/Los_Angeles", 9, 18, frozenset({5}))  # Saturday there
    # Monday to Friday in Tokyo: Monday 09:00 there is still Sunday in UTC.
    saturday_noon = datetime(2024, 3, 9, 12, 0, tzinfo=UTC)
    assert next_working_start(saturday_noon, "Asia/Tokyo", 9, 17) == datetime(2024, 3, 11, 0, 0, tzinfo=UTC)
    # Kolkata (UTC+05:30), Sunday to Thursday: Sunday 09:00 is Sunday 03:30 UTC.
    assert next_working_start(saturday_noon, "Asia/Kolkata", 9, 17, SUNDAY_TO_THURSDAY) == datetime(
        2024, 3, 10, 3, 30, tzinfo=UTC
    )


def test_one_working_day_a_week() -> None:
    wednesday_evening = datetime(2024, 3, 6, 18, 0, tzinfo=UTC)
    wednesdays = frozenset({2})
    assert next_working_start(wednesday_evening, "Europe/Paris", 9, 17, wednesdays) == datetime(
        2024, 3, 13, 8, 0, tzinfo=UTC
    )
    assert next_working_start(datetime(2024, 3, 7, 8, 0, tzinfo=UTC), "UTC", 9, 17, frozenset({3})) == datetime(
        2024, 3, 7, 9, 0, tzinfo=UTC
    )


@pytest.mark.parametrize("days", [frozenset(), frozenset({7}), frozenset({-1, 2})])
def test_impossible_working_days_are_refused(days: frozenset[int]) -> None:
    with pytest.raises(ValueError, match="working days"):
        is_within_working_hours(NOW, "UTC", 9, 17, days)
    with pytest.raises(ValueError, match="working days"):
        next_working_start(NOW, "UTC", 9, 17, days)


def test_a_daily_summary_waits_for_the_next_working_day() -> None:
    thursday_noon = datetime(2024, 3, 7, 10, 0, tzinfo=UTC)
    hours = Availability(JERUSALEM, 9, 17, SUNDAY_TO_THURSDAY)
    assert next_summary_time(thursday_noon, hours) == datetime(2024, 3, 10, 7, 0, tzinfo=UTC)  # Sunday 09:00
    assert next_summary_time(thursday_noon, Availability(JERUSALEM, 9, 17)) == datetime(2024, 3, 8, 7, 0, tzinfo=UTC)


def test_a_persons_own_days_win_over_the_workspace_default() -> None:
    settings = Settings(work_start_hour=9, work_end_hour=18)
    assert availability_of(PersonFacts("U", tz=JERUSALEM), settings) == Availability(JERUSALEM, 9, 18, MONDAY_TO_FRIDAY)
    own = PersonFacts("U", tz=JERUSALEM, work_days="01236")
    assert availability_of(own, settings) == Availability(JERUSALEM, 9, 18, SUNDAY_TO_THURSDAY)
    both = PersonFacts("U", tz=JERUSALEM, work_start_hour=22, work_end_hour=6, work_days="5")
    assert availability_of(both, settings) == Availability(JERUSALEM, 22, 6, frozenset({5}))
    # Days of their own and no known zone: their days, in UTC (they are not "available at any time").
    assert availability_of(PersonFacts("U", work_days="6"), settings) == Availability("UTC", 9, 18, frozenset({6}))
    assert availability_of(PersonFacts("U", tz=JERUSALEM, work_days="9x"), settings) == Availability(JERUSALEM, 9, 18)
    weekend = Settings(work_days=frozenset({5, 6}))  # the workspace default, when the person chose none
    assert availability_of(PersonFacts("U", tz=JERUSALEM), weekend) == Availability(JERUSALEM, 9, 18, frozenset({5, 6}))


def test_working_days_are_stored_as_weekday_digits() -> None:
    assert days_as_text(SUNDAY_TO_THURSDAY) == "01236" and days_from_text("01236") == SUNDAY_TO_THURSDAY
    assert days_as_text([4, 0, 4]) == "04"
    assert days_from_text("01234") == MONDAY_TO_FRIDAY
    for stored in (None, "", "7", "0,1", "-1", "１"):
        assert days_from_text(stored) is None
    for days in ([], [7], [-1]):
        with pytest.raises(ValueError, match="working days"):
            days_as_text(days)


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


def test_an_expert_off_on_friday_is_scheduled_for_their_sunday() -> None:
    friday_noon = datetime(2024, 3, 8, 10, 0, tzinfo=UTC)
    availability = {
        "U_SUN": Availability(JERUSALEM, 9, 17, SUNDAY_TO_THURSDAY),
        "U_MON": Availability(JERUSALEM, 9, 17),
    }

    planned = plan_routing(
        [expert("U_SUN"), expert("U_MON")], now=friday_noon, dm_counts_today={}, availability_by_user=availability
    )

    assert [(dm.user_id, dm.send_at) for dm in planned] == [
        ("U_MON", friday_noon),
        ("U_SUN", datetime(2024, 3, 10, 7, 0, tzinfo=UTC)),
    ]
    assert planned[1].reason == "reason of U_SUN; outside working hours, DM at Sun 09:00 Asia/Jerusalem"


def test_plan_works_on_rank_experts_output() -> None:
    candidates = [Candidate("U1", frozenset({"postgres"})), Candidate("U2", frozenset({"postgres"}))]
    ranked = rank_experts(["postgres"], candidates, NOW, exclude={"U2"})

    planned = plan_routing(ranked, now=NOW, dm_counts_today={}, availability_by_user={"U1": PARIS})

    assert [(dm.user_id, dm.send_at, dm.reason) for dm in planned] == [("U1", NOW, "declared #postgres; available now")]


# --- the escalation period in working time ---------------------------------------------------------------------

BERLIN_HOURS = Availability(tz_name="Europe/Berlin")  # 9-18, Monday to Friday
TOKYO_HOURS = Availability(tz_name="Asia/Tokyo")
FRIDAY_17_BERLIN = datetime(2026, 11, 27, 16, 0, tzinfo=UTC)
FOUR_HOURS = timedelta(hours=4)


def test_a_friday_evening_question_waits_for_the_experts_monday():
    # One working hour on Friday (17:00-18:00), three on Monday from 9:00: 12:00 Berlin, 11:00 UTC.
    assert working_deadline(FRIDAY_17_BERLIN, FOUR_HOURS, [(FRIDAY_17_BERLIN, BERLIN_HOURS)]) == datetime(
        2026, 11, 30, 11, 0, tzinfo=UTC
    )


def test_within_working_hours_the_period_is_plain_time():
    monday_10 = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
    assert working_deadline(monday_10, FOUR_HOURS, [(monday_10, BERLIN_HOURS)]) == monday_10 + FOUR_HOURS


def test_with_nobody_asked_or_someone_of_unknown_hours_the_period_is_plain_time():
    assert working_deadline(FRIDAY_17_BERLIN, FOUR_HOURS, []) == FRIDAY_17_BERLIN + FOUR_HOURS
    anyone = [(FRIDAY_17_BERLIN, BERLIN_HOURS), (FRIDAY_17_BERLIN, None)]
    assert working_deadline(FRIDAY_17_BERLIN, FOUR_HOURS, anyone) == FRIDAY_17_BERLIN + FOUR_HOURS


def test_time_counts_while_any_asked_expert_is_at_work_and_overlaps_count_once():
    monday_10_berlin = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
    both = [(monday_10_berlin, BERLIN_HOURS), (monday_10_berlin, TOKYO_HOURS)]
    # Berlin until 17:00 UTC (8 h), Tokyo's Tuesday 00:00-09:00 UTC then Berlin's from 08:00: one stretch.
    assert working_deadline(monday_10_berlin, timedelta(hours=8), both) == datetime(2026, 11, 23, 17, 0, tzinfo=UTC)
    assert working_deadline(monday_10_berlin, timedelta(hours=20), both) == datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


def test_an_expert_counts_from_when_their_dm_goes_out():
    monday_10 = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
    tuesday_morning = datetime(2026, 11, 24, 8, 0, tzinfo=UTC)  # a daily summary, or the daily cap reached
    assert working_deadline(monday_10, FOUR_HOURS, [(tuesday_morning, BERLIN_HOURS)]) == tuesday_morning + FOUR_HOURS


def test_overnight_shifts_and_one_working_day_a_week():
    nights = Availability(tz_name="UTC", start_hour=22, end_hour=6)
    monday_noon = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
    assert working_deadline(monday_noon, timedelta(hours=10), [(monday_noon, nights)]) == datetime(
        2026, 11, 25, 0, 0, tzinfo=UTC
    )  # Monday 22:00-06:00 (8 h), then from Tuesday 22:00 for 2 more
    wednesdays = Availability(tz_name="UTC", work_days=frozenset({2}))
    assert working_deadline(monday_noon, timedelta(hours=18), [(monday_noon, wednesdays)]) == datetime(
        2026, 12, 2, 18, 0, tzinfo=UTC
    )  # two Wednesdays of 9 h
