"""Mentoring's pure parts: reading the commands, the working-time overlap, choosing among mentors, the Home
section's block budget and the messages' limits."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from bot.mentoring import choose_mentor, weekly_overlap_hours
from bot.mentoring_text import (
    InvalidMentoring,
    ask_mentor_command,
    is_mentor_request,
    mentor_command,
    parse_offer,
    parse_request,
)
from bot.messages.mentoring import (
    MAX_HOME_PAIRINGS,
    MentoringHome,
    PairingLine,
    home_section,
    intro_message,
    mentors_line,
)
from bot.routing.planner import Availability
from bot.routing.ranker import ScoredExpert

ALIASES = {"pg": "postgres"}
MONDAY = datetime(2026, 11, 23, tzinfo=UTC)


def test_reading_the_commands():
    assert mentor_command("mentor #pg") == "#pg" and mentor_command("Mentor  #x up to 3") == "#x up to 3"
    assert mentor_command("mentoring is great #x") is None and mentor_command("How do I mentor? #x") is None
    assert ask_mentor_command("mentor #pg") == "#pg" and ask_mentor_command("mentor please") == "please"
    assert ask_mentor_command("mentor") == ""  # the usage, not an empty question
    assert ask_mentor_command("mentor programmes: who runs them? #hr") is None  # a question
    assert ask_mentor_command("mentor programmes for new managers and leads #hr") is None  # longer than a request
    assert parse_offer("#pg #ops up to 3 people", ALIASES) == parse_offer("#postgres #ops 3", ALIASES)
    assert parse_offer("#pg #ops up to 3 people", ALIASES).tags == ("postgres", "ops")
    assert parse_offer("#git", ALIASES).capacity == 2
    assert parse_offer("#git up to 1 person", ALIASES).capacity == 1
    for bad in ("", "up to 2", "#git lots", "#git up to 0 people", "#git up to 11 people"):
        with pytest.raises(InvalidMentoring):
            parse_offer(bad, ALIASES)
    assert parse_request("#PG", ALIASES) == "postgres"
    for bad in ("", "postgres", "#a #b", "#postgres please"):
        with pytest.raises(InvalidMentoring):
            parse_request(bad, ALIASES)
    assert is_mentor_request("mentor #pg", ALIASES) and not is_mentor_request("mentor me", ALIASES)


def test_working_time_overlap_in_each_zone():
    berlin = Availability("Europe/Berlin", 9, 18)
    london = Availability("Europe/London", 9, 18)
    tokyo = Availability("Asia/Tokyo", 9, 18)
    new_york = Availability("America/New_York", 9, 18)
    assert weekly_overlap_hours(berlin, london, MONDAY) == 40  # 9-17 London time, Monday to Friday
    assert weekly_overlap_hours(berlin, tokyo, MONDAY) == 5  # 09-10 Berlin = 17-18 Tokyo
    assert weekly_overlap_hours(tokyo, new_york, MONDAY) == 0
    sun_thu = Availability("Asia/Tokyo", 9, 18, frozenset({6, 0, 1, 2, 3}))
    assert weekly_overlap_hours(berlin, sun_thu, MONDAY) == 4  # no Friday in common
    assert weekly_overlap_hours(None, None, MONDAY) is None
    # Berlin and New York share 3 hours a day, 4 in the weeks New York is on summer time and Berlin not yet.
    assert weekly_overlap_hours(berlin, new_york, MONDAY) == 15
    assert weekly_overlap_hours(berlin, new_york, datetime(2027, 3, 15, tzinfo=UTC)) == 20
    night = Availability("UTC", 22, 6)  # a shift past midnight belongs to the day it starts on
    assert weekly_overlap_hours(night, Availability("UTC", 0, 24, frozenset(range(7))), MONDAY) == 40


def expert(user_id: str, score: float, reason: str = "declared #postgres") -> ScoredExpert:
    return ScoredExpert(user_id, score, reason, expertise=1.0, activity=0.0)


def test_choosing_weighs_expertise_overlap_and_load():
    hours = {
        "U_ANA": Availability("Europe/London", 9, 18),
        "U_BERLIN": Availability("Europe/Berlin", 9, 18),
        "U_TOKYO": Availability("Asia/Tokyo", 9, 18),
        "U_NY": Availability("America/New_York", 9, 18),
    }
    ranked = [expert("U_TOKYO", 1.2), expert("U_BERLIN", 1.0), expert("U_NY", 3.0)]
    capacity = {"U_TOKYO": 2, "U_BERLIN": 2, "U_NY": 2}
    choices = choose_mentor("postgres", ranked, hours, "U_ANA", {}, capacity, MONDAY)
    # New York's expertise wins (4 hours a day with London); Berlin shares London's whole day; Tokyo's working
    # day (00-09 UTC) never meets London's, so it comes last despite its score.
    assert [c.user_id for c in choices] == ["U_NY", "U_BERLIN", "U_TOKYO"]
    assert choices[1].reason == (
        "offered to mentor on #postgres; declared #postgres; 40 hours of working time a week in common; "
        "free to mentor up to 2"
    )
    # Load: a mentor with one place of two used falls behind an equal one with none.
    busy = choose_mentor("postgres", [expert("U_BERLIN", 1.0)], hours, "U_ANA", {"U_BERLIN": 1}, capacity, MONDAY)
    assert busy[0].reason.endswith("mentoring 1 of up to 2") and busy[0].score < choices[1].score
    # Full: never chosen.
    assert (
        choose_mentor("postgres", ranked, hours, "U_ANA", {"U_NY": 2, "U_BERLIN": 2}, capacity, MONDAY)[0].user_id
        == "U_TOKYO"
    )
    # No working time in common ranks last, whatever the expertise.
    far = {"U_ANA": Availability("Asia/Tokyo", 9, 18), "U_NY": hours["U_NY"], "U_BERLIN": hours["U_BERLIN"]}
    order = choose_mentor(
        "postgres", [expert("U_NY", 9.0), expert("U_BERLIN", 0.0)], far, "U_ANA", {}, capacity, MONDAY
    )
    assert [c.user_id for c in order] == ["U_BERLIN", "U_NY"]


def test_the_home_section_keeps_to_its_budget():
    lines = [
        PairingLine(i, f"U{i}", i % 2 == 0, "postgres", paused=i == 1, ends_at=MONDAY + timedelta(days=90))
        for i in range(1, 8)
    ]
    blocks = home_section(MentoringHome(lines, ["postgres"], 10, ["rust"]))
    assert len(blocks) == 2 + 2 * MAX_HOME_PAIRINGS == 8
    assert "and 4 more" in blocks[1]["text"]["text"]
    assert [e["text"]["text"] for e in blocks[3]["elements"]] == ["Resume", "End"]  # the paused one
    assert home_section(MentoringHome([], [], 0, [])) == [] and home_section(None) == []


def test_messages_stay_within_slack_limits_and_never_ping():
    reason = "declared #postgres @here <!channel> " + "x" * 5000
    message = intro_message(
        mentor_id="U1", mentee_id="U2", tag="postgres", reason=reason, check_in_days=14, ends_at=MONDAY
    )
    text = message.blocks[0]["text"]["text"]
    assert len(text) <= 3000 and text.endswith("….") and "<!channel>" not in text and "@here" not in text
    line = mentors_line([(f"U{i}", ["postgres"]) for i in range(15)])
    assert line is not None and line.count("<@") == 10 and "and 5 more" in line


def test_the_mentoring_tick_runs_every_minute_for_each_workspace():
    from bot import mentoring
    from bot.runtime.scheduler import default_ticks

    [registered] = [tick for tick in default_ticks() if tick.name == "mentoring"]
    assert registered.run is mentoring.tick and registered.every == timedelta(minutes=1) and registered.per_team_tokens
