"""The weekly digest as pure functions: schedules, `/ask digest …` parsing, building Block Kit from plain
data, and the retry rules of a run. No database, no Slack."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from bot.digest import content, posting
from bot.digest.content import build_digest
from bot.digest.schedule import (
    Schedule,
    ScheduleChange,
    ScheduleError,
    last_slot,
    next_slot,
    parse_schedule,
    schedule_of,
    week_key,
    zone,
)
from bot.messages.blocks import HEADER_LIMIT, MAX_MESSAGE_BLOCKS, SECTION_LIMIT
from handlers.digest import DigestCommand, parse_digest_command
from models.digest import (
    DIGEST_CLAIMED,
    DIGEST_FAILED,
    DIGEST_POSTED,
    DIGEST_POSTING,
    AnsweredQuestion,
    DigestData,
    DigestRun,
    EarlierItem,
    Gap,
    Helper,
    Listing,
    NewExpert,
    OpenQuestion,
    SharedLesson,
)
from tests.route_helpers import block_texts

UNTIL = datetime(2026, 11, 30, 8, 0, tzinfo=UTC)  # Monday 09:00 in Berlin
SINCE = UNTIL - timedelta(days=7)
BERLIN = zone("Europe/Berlin")
BASE = "https://acme.slack.com/"


def texts(message) -> str:
    """Every text in the message's blocks, one per line."""
    return "\n".join(block_texts(message.blocks))


def week(**parts) -> DigestData:
    fields = {
        "team_id": "T1",
        "channel_id": "C1",
        "since": SINCE,
        "until": UNTIL,
        "asked": 0,
        "answered": Listing(),
        "open": Listing(),
        "lessons": Listing(),
        "helpers": Listing(),
        "new_experts": Listing(),
        "gaps": Listing(),
    }
    fields.update(parts)
    return DigestData(**fields)


def answered(n: int, text: str = "How do I vacuum a big table?") -> AnsweredQuestion:
    return AnsweredQuestion(n, text, ("postgres",), f"100.{n:06d}", f"U_EXPERT{n}", f"200.{n:06d}", UNTIL)


def answered_by_earlier(n: int, earlier: EarlierItem, text: str = "Vacuum locks our big table?") -> AnsweredQuestion:
    """A question the asker said an earlier question or lesson answers ("This answers it")."""
    return AnsweredQuestion(n, text, ("postgres",), f"100.{n:06d}", None, None, UNTIL, earlier)


def still_open(n: int, days_old: int = 2, replies: int = 0) -> OpenQuestion:
    return OpenQuestion(n, f"Open question {n}?", ("kafka",), f"300.{n:06d}", UNTIL - timedelta(days=days_old), replies)


# --- schedules -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("fri 16:00 Europe/Berlin", ScheduleChange(4, 16, 0, "Europe/Berlin")),
        ("Monday 9:30am", ScheduleChange(0, 9, 30, None)),
        ("4 pm thursdays", ScheduleChange(3, 16, 0, None)),
        ("12am sun", ScheduleChange(6, 0, 0, None)),
        ("16:45", ScheduleChange(None, 16, 45, None)),
        ("tue", ScheduleChange(1, None, None, None)),
        ("america/new_york", ScheduleChange(None, None, None, "America/New_York")),
        ("UTC wed 07:05", ScheduleChange(2, 7, 5, "UTC")),
    ],
)
def test_the_at_command_reads_day_time_and_zone_in_any_order(text, expected):
    assert parse_schedule(text) == expected


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("", "Tell me when"),
        ("fryday 16:00", "couldn't read `fryday`"),
        ("fri 25:00", "`25:00` isn't a time of day"),
        ("fri 13pm", "from 1 to 12"),
        ("fri 16:00 Europe/Berln", "Did you mean `Europe/Berlin`?"),
        ("fri 16:00 Mars/Olympus", "I don't know the time zone `Mars/Olympus`"),
        ("mon fri", "One day per week"),
        ("9:00 10:00", "One time"),
        ("<!channel>", "`&lt;!channel&gt;`"),  # what it quotes back shows as typed, inert
        ("@channel", "`@\u200bchannel`"),
    ],
)
def test_a_schedule_it_cannot_read_gets_a_friendly_answer(text, says):
    with pytest.raises(ScheduleError) as problem:
        parse_schedule(text)
    assert says in str(problem.value)
    assert "<!channel>" not in str(problem.value) and "@channel" not in str(problem.value)


def test_the_last_slot_is_the_latest_scheduled_moment_in_the_channels_zone():
    monday_9_berlin = Schedule(0, 9, 0, "Europe/Berlin")
    # Monday 08:30 UTC is 09:30 in Berlin: this morning's slot (08:00 UTC) has passed.
    assert last_slot(monday_9_berlin, datetime(2026, 11, 30, 8, 30, tzinfo=UTC)) == UNTIL
    # Exactly at the slot counts; a minute before does not (that is last week's).
    assert last_slot(monday_9_berlin, UNTIL) == UNTIL
    assert last_slot(monday_9_berlin, UNTIL - timedelta(minutes=1)) == UNTIL - timedelta(days=7)
    assert next_slot(monday_9_berlin, UNTIL) == UNTIL + timedelta(days=7)
    # In Tokyo, Monday 09:00 is still Sunday in UTC.
    tokyo = Schedule(0, 9, 0, "Asia/Tokyo")
    assert last_slot(tokyo, UNTIL) == datetime(2026, 11, 30, 0, 0, tzinfo=UTC)


def test_slots_follow_daylight_saving_time():
    berlin_9 = Schedule(0, 9, 0, "Europe/Berlin")
    # Summer time started on Sunday 2026-03-29: Monday 09:00 is 08:00 UTC before, 07:00 UTC after.
    assert last_slot(berlin_9, datetime(2026, 3, 28, 12, tzinfo=UTC)) == datetime(2026, 3, 23, 8, tzinfo=UTC)
    assert last_slot(berlin_9, datetime(2026, 3, 31, 12, tzinfo=UTC)) == datetime(2026, 3, 30, 7, tzinfo=UTC)
    # 02:30 does not exist that Sunday; the slot still happens once, right after the gap.
    skipped = Schedule(6, 2, 30, "Europe/Berlin")
    slot = last_slot(skipped, datetime(2026, 3, 29, 12, tzinfo=UTC))
    assert datetime(2026, 3, 29, 0, tzinfo=UTC) < slot < datetime(2026, 3, 29, 2, tzinfo=UTC)


def test_one_week_key_per_iso_week_in_the_channels_zone():
    schedule = Schedule(0, 9, 0, "Europe/Berlin")
    assert week_key(UNTIL, schedule) == "2026-W49"
    # 2026 has 53 ISO weeks; New Year's Day 2027 still belongs to 2026-W53.
    assert week_key(datetime(2027, 1, 1, 12, tzinfo=UTC), schedule) == "2026-W53"
    # Sunday 23:30 UTC is already Monday in Berlin: the next week.
    assert week_key(datetime(2026, 11, 29, 23, 30, tzinfo=UTC), schedule) == "2026-W49"
    assert week_key(datetime(2026, 11, 29, 22, 30, tzinfo=UTC), schedule) == "2026-W48"


def test_an_unknown_or_missing_zone_falls_back_to_the_workspace_then_utc():
    assert schedule_of(None, "Asia/Tokyo") == Schedule(0, 9, 0, "Asia/Tokyo")
    assert schedule_of(None, None) == Schedule(0, 9, 0, "UTC")
    assert schedule_of(None, "Not/AZone") == Schedule(0, 9, 0, "UTC")
    assert Schedule(4, 16, 0, "Europe/Berlin").describe() == "every Friday at 16:00 (Europe/Berlin)"


# --- /ask digest … --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("digest", DigestCommand("status")),
        ("digest on", DigestCommand("on")),
        ("Digest OFF", DigestCommand("off")),
        ("digest preview", DigestCommand("preview")),
        ("digest help", DigestCommand("help")),
        ("digest at fri 16:00 Europe/Berlin", DigestCommand("at", "fri 16:00 Europe/Berlin")),
        ("digest at", DigestCommand("at", "")),
        ("digest empty skip", DigestCommand("empty", "skip")),
        ("\u200bdigest on", DigestCommand("on")),
        # Questions that happen to start with "digest" stay questions.
        ("digest on a kafka topic: how do I replay it? #kafka", None),
        ("digest authentication in nginx? #nginx", None),
        ("How do I digest this? #books", None),
    ],
)
def test_digest_settings_commands_are_told_apart_from_questions(text, expected):
    assert parse_digest_command(text) == expected


# --- building --------------------------------------------------------------------------------------------


def test_an_empty_week_is_a_short_note_or_nothing_never_an_error():
    quiet = week()
    assert quiet.is_empty
    assert build_digest(quiet, tz=BERLIN, base_url=BASE, post_when_empty=False) is None
    message = build_digest(quiet, tz=BERLIN, base_url=BASE, post_when_empty=True)
    assert message is not None
    assert "quiet week in <#C1>" in texts(message)
    assert "/ask" in texts(message)
    assert len(message.blocks) <= 4
    assert message.text == "A quiet week in <#C1>"


def test_a_full_week_shows_every_part_with_links_to_the_messages():
    data = week(
        asked=3,
        answered=Listing((answered(1),), 1),
        open=Listing((still_open(2, days_old=5, replies=2), still_open(3, days_old=1)), 2),
        lessons=Listing((SharedLesson(7, "Use git bisect", ("git",), "U_TEACHER", "400.000001", 3),), 1),
        helpers=Listing((Helper("U_EXPERT1", 2, 1), Helper("U_FAN", 0, 4)), 2),
        new_experts=Listing((NewExpert("U_NEW", ("postgres", "ops")),), 1),
        gaps=Listing((Gap("kafka", 2),), 1),
    )
    message = build_digest(data, tz=BERLIN, base_url=BASE)
    shown = texts(message)
    assert message.blocks[0] == {
        "type": "header",
        "text": {"type": "plain_text", "text": "Weekly digest", "emoji": True},
    }
    assert "<#C1> · Nov 23 – Nov 30" in shown
    assert "*3 questions* asked · *1* answered · *2* still open · *1 lesson* shared" in shown
    # Answered: the question, its tags, the accepted answer's author and a link to that answer in its thread.
    answer_link = "https://acme.slack.com/archives/C1/p200000001?thread_ts=100.000001&cid=C1"
    assert (
        f"• How do I vacuum a big table? `#postgres` — answered by <@U_EXPERT1> · <{answer_link}|see the answer>"
        in shown
    )
    # Open questions: oldest first, as given, with a call to action.
    assert "can you help? (2)" in shown
    assert shown.index("Open question 2?") < shown.index("Open question 3?")
    assert "asked 5 days ago, 2 replies · <https://acme.slack.com/archives/C1/p300000002|answer in the thread>" in shown
    assert "asked yesterday, no replies yet" in shown
    assert "• Use git bisect `#git` — by <@U_TEACHER> · 3 helpful votes" in shown
    assert "1. <@U_EXPERT1> — 2 accepted answers, 1 helpful answer" in shown
    assert "2. <@U_FAN> — 4 helpful answers" in shown
    assert "<@U_NEW> is now a go-to person for `#postgres` `#ops`" in shown
    assert "`#kafka` — 2 questions, nobody has declared it yet" in shown
    assert "`/teach #kafka`" in shown
    assert "/ask digest off" in shown
    assert message.text == "Weekly digest for <#C1>: 1 answered, 2 still open, 1 lesson"


def test_without_the_workspace_url_items_have_no_links():
    message = build_digest(week(asked=1, answered=Listing((answered(1),), 1)), tz=BERLIN, base_url=None)
    assert "answered by <@U_EXPERT1>" in texts(message)
    assert "http" not in texts(message)


def test_permalinks_match_slacks_format():
    assert content.permalink(BASE, "C1", "1700000000.000100") == "https://acme.slack.com/archives/C1/p1700000000000100"
    assert (
        content.permalink("https://acme.slack.com", "C1", "1700000001.000200", thread_ts="1700000000.000100")
        == "https://acme.slack.com/archives/C1/p1700000001000200?thread_ts=1700000000.000100&cid=C1"
    )


def test_more_items_than_shown_say_and_n_more():
    data = week(
        asked=40,
        answered=Listing(tuple(answered(i) for i in range(10)), 25),
        open=Listing(tuple(still_open(i) for i in range(10)), 15),
        gaps=Listing((Gap("kafka", 9),), 4),
    )
    shown = texts(build_digest(data, tz=BERLIN, base_url=BASE))
    assert "Answered (25)" in shown
    assert "_…and 15 more_" in shown
    assert "_…and 5 more_" in shown
    assert "_…and 3 more_" in shown


def test_questions_the_knowledge_base_answered_say_what_answered_them_and_how_many_there_were():
    data = week(
        asked=4,
        answered=Listing(
            (
                answered(1),
                answered_by_earlier(2, EarlierItem("question", "C_OPS", "500.000001", "U_OLDHAND", "500.000002")),
                answered_by_earlier(3, EarlierItem("lesson", "C1", "600.000001", "U_TEACHER")),
                answered_by_earlier(4, EarlierItem("question", "C1", "700.000001")),  # itself answered by an earlier
                answered_by_earlier(5, EarlierItem("lesson")),  # in a private channel elsewhere, or gone
            ),
            6,
        ),
        answered_by_earlier=5,
    )
    message = build_digest(data, tz=BERLIN, base_url=BASE)
    shown = texts(message)
    # Counted as answered, every one, on top of the accepted answers.
    assert "*4 questions* asked · *6* answered" in shown and "Answered (6)" in shown
    assert "How do I vacuum a big table? `#postgres` — answered by <@U_EXPERT1> · <" in shown
    # What answered each: the earlier question's accepted answer in its thread (another public channel's), who
    # wrote it; the lesson and its author; an earlier question without an accepted answer; a private item unnamed.
    earlier_answer = "https://acme.slack.com/archives/C_OPS/p500000002?thread_ts=500.000001&cid=C_OPS"
    assert (
        "• Vacuum locks our big table? `#postgres` — answered by an earlier question (answer by <@U_OLDHAND>)"
        f" · <{earlier_answer}|see the answer>" in shown
    )
    lesson = "https://acme.slack.com/archives/C1/p600000001"
    assert f"— answered by a lesson by <@U_TEACHER> · <{lesson}|read it>" in shown
    assert "— answered by an earlier question · <https://acme.slack.com/archives/C1/p700000001|see it>" in shown
    [answered_section] = [b["text"]["text"] for b in message.blocks if "Answered (6)" in str(b)]
    assert answered_section.endswith("— answered by a lesson\n_…and 1 more_\n" + KNOWLEDGE_BASE_5)

    one = week(asked=1, answered=Listing((answered_by_earlier(1, EarlierItem("lesson")),), 1), answered_by_earlier=1)
    assert (
        ":books: The knowledge base answered 1 question by itself this week: its asker found the answer in an "
        "earlier question or lesson, and nobody had to be asked." in texts(build_digest(one, tz=BERLIN))
    )
    # None answered by the knowledge base: no such line.
    none = week(asked=1, answered=Listing((answered(1),), 1))
    assert "knowledge base" not in texts(build_digest(none, tz=BERLIN, base_url=BASE))


KNOWLEDGE_BASE_5 = (
    ":books: The knowledge base answered 5 questions by itself this week: their askers found the answer in an "
    "earlier question or lesson, and nobody had to be asked."
)


def test_a_long_answered_list_keeps_the_knowledge_base_line_within_slacks_limit():
    earlier = EarlierItem("question", "C_OPS", "500.000001", "U_OLDHAND", "500.000002")
    long = "<!here> " + "very long words " * 400
    data = week(
        asked=10,
        answered=Listing(tuple(answered_by_earlier(i, earlier, long) for i in range(10)), 250),
        answered_by_earlier=250,
    )
    message = build_digest(data, tz=BERLIN, base_url=BASE)
    [section] = [b["text"]["text"] for b in message.blocks if "Answered (250)" in str(b)]
    assert len(section) <= SECTION_LIMIT
    assert "_…and " in section and section.endswith(
        "The knowledge base answered 250 questions by itself this week: "
        "their askers found the answer in an earlier question or lesson, "
        "and nobody had to be asked."
    )
    assert "<!here>" not in section


def test_huge_and_hostile_text_stays_within_slacks_limits_and_pings_nobody():
    hostile = "<!channel> <!here> <!subteam^S123> @everyone " + "very long words " * 400
    data = week(
        asked=10,
        answered=Listing(tuple(answered(i, hostile) for i in range(10)), 10),
        open=Listing(tuple(OpenQuestion(i, hostile, ("a",) * 10, "1.1", SINCE, 0) for i in range(10)), 10),
        lessons=Listing(tuple(SharedLesson(i, hostile, ("t",), "U1", "1.2", 0) for i in range(10)), 10),
        helpers=Listing(tuple(Helper(f"U{i}", i, i) for i in range(10)), 10),
        new_experts=Listing(tuple(NewExpert(f"U{i}", ("x" * 40,) * 10) for i in range(10)), 10),
        gaps=Listing(tuple(Gap("y" * 40, 3) for _ in range(10)), 10),
    )
    message = build_digest(data, tz=BERLIN, base_url=BASE)
    assert len(message.blocks) <= MAX_MESSAGE_BLOCKS
    for block in message.blocks:
        if block["type"] == "section":
            assert len(block["text"]["text"]) <= SECTION_LIMIT
        if block["type"] == "header":
            assert len(block["text"]["text"]) <= HEADER_LIMIT
    shown = texts(message)
    assert "<!" not in shown and "<!" not in message.text
    assert "@everyone" not in shown  # made inert with a zero-width space
    assert "…" in shown  # item text is cut visibly


def test_a_section_with_lines_too_long_to_fit_ends_with_and_n_more():
    lines = [f"• {'x' * 500} {i}" for i in range(10)]
    block = content.listing_section("Title", lines, hidden=3)
    text = block["text"]["text"]
    assert len(text) <= SECTION_LIMIT
    shown = text.count("• ")
    assert 0 < shown < 10
    assert text.endswith(f"_…and {10 - shown + 3} more_")


def test_the_preview_says_only_you_see_it_and_when_the_real_one_goes_out():
    message = build_digest(week(asked=1, open=Listing((still_open(1),), 1)), tz=BERLIN, base_url=BASE)
    shown = content.as_preview(message, Schedule(4, 16, 0, "Europe/Berlin"))
    assert shown.blocks[1:] == message.blocks
    assert "only you can see this" in texts(shown)
    assert "every Friday at 16:00 (Europe/Berlin)" in texts(shown)
    assert "`/ask digest on`" in texts(content.as_preview(message, None))


def test_the_text_rendering_reads_like_the_message():
    message = build_digest(week(asked=1, open=Listing((still_open(1),), 1)), tz=BERLIN, base_url=None)
    rendered = content.render_text(message)
    assert rendered.startswith("== Weekly digest ==\n<#C1> · Nov 23 – Nov 30")
    assert "Open question 1?" in rendered
    assert "-" * 40 in rendered


# --- retry rules ----------------------------------------------------------------------------------------


def run(status: str, error: str | None = None, attempts: int = 1, minutes_ago: int = 30) -> DigestRun:
    at = UNTIL - timedelta(minutes=minutes_ago)
    return DigestRun(
        team_id="T1",
        channel_id="C1",
        week_key="2026-W49",
        status=status,
        claimed_by="test",
        claimed_at=at,
        finished_at=at if status not in (DIGEST_CLAIMED, DIGEST_POSTING) else None,
        attempts=attempts,
        error=error,
    )


@pytest.mark.parametrize(
    ("row", "retake"),
    [
        (run(DIGEST_FAILED, "ratelimited"), True),
        (run(DIGEST_FAILED, "internal_error"), True),
        (run(DIGEST_FAILED, "build_failed: OperationalError"), True),
        (run(DIGEST_FAILED, "ratelimited", minutes_ago=5), False),  # too soon: wait RETRY_AFTER
        (run(DIGEST_FAILED, "ratelimited", attempts=3), False),  # MAX_ATTEMPTS used up
        (run(DIGEST_FAILED, "is_archived"), False),
        (run(DIGEST_FAILED, "not_in_channel"), False),
        (run(DIGEST_FAILED, "channel_not_found"), False),
        (run(DIGEST_FAILED, "token_revoked"), False),
        (run(DIGEST_FAILED, "post_outcome_unknown: ReadTimeout"), False),  # it may have gone out
        (run(DIGEST_CLAIMED, minutes_ago=11), True),  # its owner died while building
        (run(DIGEST_CLAIMED, minutes_ago=2), False),  # still being built
        (run(DIGEST_POSTING, minutes_ago=600), False),  # died mid-post: never twice
        (run(DIGEST_POSTED), False),
    ],
)
def test_which_runs_a_later_tick_may_take_over(row, retake):
    assert posting.can_retake(row, UNTIL) is retake
