"""What routing tells people is what happens (issue 18 items 6-8), end to end on SQLite and PostgreSQL: the
asker hears who is asked now and who later, and roughly when, in their own time zone; an asker who is the
only go-to person for a topic is told so and no false knowledge gap is recorded; routed DMs follow their
question when it is resolved and re-opened. Ana asks from London; Bruno (Berlin), Maya (New York) and Ken
(Tokyo) know #postgres. Time is frozen and moved by hand."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from bot.messages.routing import ACTION_DECLINE_QUESTION, ACTION_TAKE_QUESTION, ROUTE_TAKEN_NOTE
from bot.messages.routing_notes import NO_TAGS_NOTE
from bot.messages.suggestions import ACTION_SIMILAR_ANSWERS_IT, ACTION_SIMILAR_STILL_NEED_HELP
from bot.playground.emulator.fake_api import TEAM_ID
from models.expert import NOTIFY_DAILY, ROUTE_SCHEDULED, ROUTE_SENT, ensure_person
from tests.route_helpers import (
    GENERAL,
    SECRET,
    add_people,
    bot_maker,
    buttons,
    declare,
    double_click,
    gaps_of,
    plain,
    question_of,
    requests_of,
    routing_dms,
)
from tests.slack.conversations import answered_question

LONDON, BERLIN, NEW_YORK, TOKYO = "Europe/London", "Europe/Berlin", "America/New_York", "Asia/Tokyo"
MONDAY_NIGHT = datetime(2026, 11, 23, 23, 30, tzinfo=UTC)  # 23:30 in London, 00:30 in Berlin, 18:30 in New York
SATURDAY_NOON = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
BERLIN_NINE_TUESDAY = datetime(2026, 11, 24, 8, 0, tzinfo=UTC)
NEW_YORK_NINE_TUESDAY = datetime(2026, 11, 24, 14, 0, tzinfo=UTC)
STILL_NEED_HELP, ANSWERS_IT = ACTION_SIMILAR_STILL_NEED_HELP, ACTION_SIMILAR_ANSWERS_IT
TAKE, DECLINE = ACTION_TAKE_QUESTION, ACTION_DECLINE_QUESTION
ASKING_NOW = "asking people who know your topics now"


@pytest.fixture
def make_bot(fake_slack, database_url, slack_clock):
    yield from bot_maker(fake_slack, database_url, slack_clock)


@pytest.fixture
def bot(make_bot):
    bot = make_bot()
    add_people(bot.world, U_ANA=LONDON, U_BRUNO=BERLIN, U_MAYA=NEW_YORK, U_KEN=TOKYO, U_NICO=TOKYO, U_OLD=LONDON)
    return bot


def told(world, user: str = "U_ANA") -> list[str]:
    """The paragraphs of everything the bot said to `user` but the routing DMs: ephemerals, and DMs."""
    said = [*world.ephemerals(user), *(m.raw for m in world.messages(user) if "asked in" not in m.plain)]
    sections = [block["text"]["text"] for e in said for block in e.get("blocks") or [] if block["type"] == "section"]
    return [paragraph for text in sections for paragraph in text.split("\n\n")]


def routing_notes(world, user: str = "U_ANA") -> list[str]:
    return [text for text in told(world, user) if "pinged" in text or "I've asked" in text]


def answered_earlier(bot, text: str = "How do I vacuum a big table without locking it? #postgres") -> None:
    """An earlier question Bruno answered and its asker accepted: it will be suggested to Ana first."""
    answered_question(bot.world, text, "Use pg_repack: it rebuilds the table online.", GENERAL, helper="U_BRUNO")


def suggestions(world, user: str = "U_ANA") -> list[dict]:
    return [e for e in world.ephemerals(user) if any(a == STILL_NEED_HELP for a, _ in buttons(e))]


# --- item 6: who is asked, and when ---------------------------------------------------------------------------


def test_at_night_the_asker_hears_when_each_expert_starts_their_day(bot):
    world = bot.world
    declare(world, "U_BRUNO", "#postgres")
    declare(world, "U_MAYA", "#postgres")
    bot.clock.set(MONDAY_NIGHT)

    question = world.ask("U_ANA", "Why does my index scan read the heap? #postgres", GENERAL)

    requests = requests_of(bot.store, question_of(bot.store, question).id)
    assert {u: (r.status, r.send_at) for u, r in requests.items()} == {
        "U_BRUNO": (ROUTE_SCHEDULED, BERLIN_NINE_TUESDAY),
        "U_MAYA": (ROUTE_SCHEDULED, NEW_YORK_NINE_TUESDAY),
    }
    [note] = routing_notes(world)
    assert note == (
        ":crescent_moon: Nobody is pinged yet: <@U_BRUNO> starts their day in about 9 hours and <@U_MAYA> "
        "tomorrow afternoon. I'll ask each of them then."
    )
    assert all(ASKING_NOW not in text for text in told(world))
    # Ana's day is told in her time zone: Slack was asked where she is, once.
    assert len(world.fake.calls_to("users.info", user="U_ANA")) == 1

    bot.tick(BERLIN_NINE_TUESDAY)
    assert len(routing_dms(world, "U_BRUNO")) == 1 and routing_dms(world, "U_MAYA") == []
    bot.tick(NEW_YORK_NINE_TUESDAY)
    assert len(routing_dms(world, "U_MAYA")) == 1
    assert len(routing_notes(world)) == 1  # told once, when the plan was made


def test_in_working_hours_the_asker_hears_who_was_asked(bot):
    world = bot.world
    for expert in ("U_BRUNO", "U_MAYA", "U_KEN"):
        declare(world, expert, "#postgres")
    bot.clock.set(datetime(2026, 11, 23, 15, 0, tzinfo=UTC))  # 16:00 in Berlin, 10:00 in New York, 00:00 in Tokyo

    question = world.ask("U_ANA", "Is VACUUM FULL ever a good idea? #postgres", GENERAL)

    assert routing_notes(world) == [":mag: I've asked <@U_BRUNO> and <@U_MAYA>, who know your topics."]
    requests = requests_of(bot.store, question_of(bot.store, question).id)
    assert {u: r.status for u, r in requests.items()} == {"U_BRUNO": ROUTE_SENT, "U_MAYA": ROUTE_SENT}
    assert routing_dms(world, "U_KEN") == []  # two are asked; the two awake come first
    assert world.fake.calls_to("users.info", user="U_ANA") == []  # nothing waits: her time zone is not needed


def test_the_asker_hears_who_was_asked_now_and_who_later(bot):
    world = bot.world
    declare(world, "U_BRUNO", "#postgres")
    declare(world, "U_KEN", "#postgres")
    bot.clock.set(datetime(2026, 11, 23, 15, 0, tzinfo=UTC))

    world.ask("U_ANA", "How do I read EXPLAIN ANALYZE? #postgres", GENERAL)

    assert routing_notes(world) == [
        ":mag: I've asked <@U_BRUNO> now. <@U_KEN> starts their day in about 9 hours. I'll ask them then."
    ]
    assert len(routing_dms(world, "U_BRUNO")) == 1 and routing_dms(world, "U_KEN") == []


def test_on_a_saturday_after_the_grace_period_the_asker_hears_monday_in_their_terms(bot):
    world = bot.world
    bot.clock.set(SATURDAY_NOON - timedelta(hours=1))
    answered_earlier(bot)  # Bruno answered it: he knows #postgres
    declare(world, "U_MAYA", "#postgres")
    bot.clock.set(SATURDAY_NOON)

    world.ask("U_ANA", "Vacuuming our big table locks it, what can I do? #postgres", GENERAL)
    [shown] = suggestions(world)
    assert "I'll tell you who I ask, and when" in plain(shown)
    assert routing_notes(world) == []

    bot.tick(SATURDAY_NOON + timedelta(minutes=10))  # the grace period is over, nothing was clicked

    [note] = routing_notes(world)
    assert note == (
        ":crescent_moon: Nobody is pinged yet: <@U_BRUNO> starts their day on Monday morning and <@U_MAYA> "
        "on Monday afternoon. I'll ask each of them then."
    )
    assert routing_dms(world, "U_BRUNO") == [] and routing_dms(world, "U_MAYA") == []


def test_still_need_help_at_night_says_who_will_be_asked_in_the_askers_own_time_zone(bot):
    world = bot.world
    bot.clock.set(MONDAY_NIGHT - timedelta(hours=1))
    answered_earlier(bot)
    declare(world, "U_MAYA", "#postgres")
    bot.clock.set(MONDAY_NIGHT)  # 08:30 on Tuesday in Tokyo, where Nico asks from
    question = world.ask("U_NICO", "Vacuuming our big table locks it, any idea? #postgres", GENERAL)
    stored = question_of(bot.store, question)
    assert len(suggestions(world, "U_NICO")) == 1

    double_click(world, "U_NICO", STILL_NEED_HELP, str(stored.id))

    expected = (
        ":crescent_moon: Nobody is pinged yet: <@U_BRUNO> starts their day in about 9 hours and <@U_MAYA> "
        "tonight. I'll ask each of them then."
    )
    notes = routing_notes(world, "U_NICO")
    assert notes and set(notes) == {expected}, notes  # the second click says what the first one did
    assert all(ASKING_NOW not in text for text in told(world, "U_NICO"))
    assert suggestions(world, "U_NICO") == []  # the note took the suggestions' place
    assert expected in plain(world.ephemerals("U_NICO")[-1])
    assert {r.status for r in requests_of(bot.store, stored.id).values()} == {ROUTE_SCHEDULED}


def test_still_need_help_when_nobody_can_be_asked_says_so(bot):
    world = bot.world
    answered_earlier(bot)
    declare(world, "U_BRUNO", "pause 7d")
    question = world.ask("U_ANA", "Vacuuming our big table locks it, any idea? #postgres", GENERAL)

    world.click("U_ANA", STILL_NEED_HELP, str(question_of(bot.store, question).id))
    world.settle()

    last = plain(world.ephemerals("U_ANA")[-1])
    assert "I haven't pinged anyone yet" in last and "`#postgres`" in last and suggestions(world) == []
    assert all(ASKING_NOW not in text and "I've asked" not in text for text in told(world))
    assert requests_of(bot.store, question_of(bot.store, question).id) == {}


def test_a_question_without_tags_says_nobody_was_asked(bot):
    world = bot.world
    declare(world, "U_BRUNO", "#postgres")
    world.ask("U_ANA", "Where do we keep the staging credentials?", GENERAL)
    assert NO_TAGS_NOTE in told(world)
    assert routing_dms(world, "U_BRUNO") == []


# --- item 7: the asker is the only one who knows a topic -----------------------------------------------------


def test_the_only_go_to_person_for_a_topic_is_told_so_and_no_gap_is_recorded(bot):
    world = bot.world
    declare(world, "U_ANA", "#git")
    declare(world, "U_BRUNO", "#postgres")

    question = world.ask("U_ANA", "How do I split a commit in two during a rebase? #git #postgres", GENERAL)

    stored = question_of(bot.store, question)
    assert gaps_of(bot.store, stored.id) == []
    [alone] = [text for text in told(world) if "only go-to person" in text]
    assert alone.startswith(":seedling: You're the only go-to person for `#git` so far")
    assert "`/teach #git <what you found>`" in alone and "`/teach #git`" in alone and "#postgres" not in alone
    assert all("Nobody has declared" not in text for text in told(world))
    assert list(requests_of(bot.store, stored.id)) == ["U_BRUNO"]  # the other topic is still routed
    assert ":mag: I've asked <@U_BRUNO>, who knows your topics." in told(world)

    # A topic nobody at all knows is still a gap, said as before.
    other = world.ask("U_ANA", "Who knows about Haskell lenses? #haskell", GENERAL)
    assert gaps_of(bot.store, question_of(bot.store, other).id) == ["haskell"]
    assert len([text for text in told(world) if "Nobody has declared `#haskell` yet" in text]) == 1


def test_in_a_private_channel_the_only_member_who_knows_a_topic_is_told_why_nobody_is_asked(bot):
    world = bot.world
    add_people(world, channel=SECRET, private=True, U_ANA=LONDON, U_NICO=TOKYO)
    declare(world, "U_ANA", "#git")
    declare(world, "U_BRUNO", "#git")  # knows it too, but is not in the private channel

    question = world.ask("U_ANA", "Can I rewrite our release branch history? #git", SECRET)

    stored = question_of(bot.store, question)
    assert gaps_of(bot.store, stored.id) == [] and requests_of(bot.store, stored.id) == {}
    [note] = [text for text in told(world) if "#git" in text]
    assert note.startswith(":lock: You're the only go-to person for `#git` in this private channel")
    assert "aren't members" in note and "look again in 4 h" in note
    assert "<@U_BRUNO>" not in note and routing_dms(world, "U_BRUNO") == []
    assert all("paused" not in text for text in told(world))

    # Nico asks about a topic only Bruno knows: for him, its people are not in this channel (as said before).
    declare(world, "U_BRUNO", "#docker")
    world.ask("U_NICO", "Who can help me with docker layers? #docker", SECRET)
    [busy] = [text for text in told(world, "U_NICO") if "#docker" in text]
    assert "The go-to people for `#docker` are paused, not in this channel" in busy


# --- item 8: routed DMs follow their question -----------------------------------------------------------------


def dm_updates(world, since: int, *messages) -> dict[str, int]:
    """How many times each of these DMs was updated (chat.update) since `since`, by the DM's user."""
    return {
        m.channel: len(world.fake.calls_to("chat.update", since=since, channel=m.channel, ts=m.ts)) for m in messages
    }


def accept_event(answer_ts: str) -> dict:
    return {
        "type": "reaction_added",
        "user": "U_ANA",
        "reaction": "white_check_mark",
        "item_user": "U_BRUNO",
        "item": {"type": "message", "channel": GENERAL, "ts": answer_ts},
    }


def test_an_accepted_answer_turns_every_routed_dm_into_who_resolved_it_and_reopening_brings_them_back(make_bot):
    bot = make_bot(route_top_n=3)
    world = bot.world
    add_people(world, U_ANA=LONDON, U_BRUNO=BERLIN, U_MAYA=NEW_YORK, U_KEN=TOKYO)
    for expert in ("U_BRUNO", "U_MAYA", "U_KEN"):
        declare(world, expert, "#postgres")
    bot.clock.set(datetime(2026, 11, 23, 15, 0, tzinfo=UTC))  # Ken, asleep in Tokyo, waits for his morning
    question = world.ask("U_ANA", "How do I find what blocks my ALTER TABLE? #postgres", GENERAL)
    stored = question_of(bot.store, question)
    [bruno], [maya] = routing_dms(world, "U_BRUNO"), routing_dms(world, "U_MAYA")
    world.click("U_BRUNO", TAKE, str(stored.id), channel=bruno.channel)
    world.settle()
    answer = world.reply("U_BRUNO", question, "Look at pg_locks joined with pg_stat_activity.")
    world.settle()

    since = world.fake.mark()
    accepted = world.send_event(accept_event(answer))
    world.fake.add_reaction(world.fake.message(GENERAL, answer), "white_check_mark", "U_ANA")
    world.send_event(accept_event(answer), event_id=accepted.meta["event_id"], retry_num=1)  # Slack retries it
    world.settle()

    link = f"https://peerlearn-test.slack.com/archives/{GENERAL}/p{answer.replace('.', '')}?thread_ts={question.ts}"
    resolved = f":white_check_mark: *Resolved* — answer by <@U_BRUNO> · <{link}&cid={GENERAL}|see the accepted answer>"
    for user in ("U_BRUNO", "U_MAYA"):
        [dm] = routing_dms(world, user)
        assert resolved in dm.plain and buttons(dm) == [], user
        assert "How do I find what blocks my ALTER TABLE?" in dm.plain
    assert dm_updates(world, since, bruno, maya) == {bruno.channel: 1, maya.channel: 1}  # once each, not per retry
    assert world.fake.calls_to("chat.update", since=since, where=lambda c: c.args["channel"].startswith("D_KEN")) == []
    assert routing_dms(world, "U_KEN") == []  # never sent, so nothing to update; and now never sent
    bot.tick(datetime(2026, 11, 24, 0, 0, tzinfo=UTC))
    assert routing_dms(world, "U_KEN") == []

    since = world.fake.mark()
    world.unreact("U_ANA", "white_check_mark", GENERAL, answer)  # Ana takes her ✅ back: the question is open again
    world.settle()

    [bruno_now], [maya_now] = routing_dms(world, "U_BRUNO"), routing_dms(world, "U_MAYA")
    assert "Resolved" not in bruno_now.plain and ROUTE_TAKEN_NOTE in bruno_now.plain
    assert "Resolved" not in maya_now.plain and buttons(maya_now) == [(TAKE, str(stored.id)), (DECLINE, str(stored.id))]
    assert dm_updates(world, since, bruno, maya) == {bruno.channel: 1, maya.channel: 1}


def test_this_answers_it_marks_the_routed_dms_answered_by_the_earlier_question(bot):
    world = bot.world
    bot.clock.set(datetime(2026, 11, 23, 14, 0, tzinfo=UTC))
    answered_earlier(bot)
    declare(world, "U_MAYA", "#postgres")
    bot.clock.set(datetime(2026, 11, 23, 15, 0, tzinfo=UTC))
    question = world.ask("U_ANA", "Vacuuming our big table locks it, what can I do? #postgres", GENERAL)
    bot.tick(datetime(2026, 11, 23, 15, 10, tzinfo=UTC))  # nothing clicked: Bruno and Maya are asked
    [bruno], [maya] = routing_dms(world, "U_BRUNO"), routing_dms(world, "U_MAYA")
    [(_, value)] = [b for b in buttons(suggestions(world)[0]) if b[0] == ANSWERS_IT]

    since = world.fake.mark()
    double_click(world, "U_ANA", ANSWERS_IT, value)  # "This answers it", after all

    assert question_of(bot.store, question).status == "resolved"
    [earlier] = [m for m in world.messages(GENERAL) if "without locking it" in m.plain]
    for dm in routing_dms(world, "U_BRUNO") + routing_dms(world, "U_MAYA"):
        assert "*Resolved* — answered by an earlier question" in dm.plain and buttons(dm) == []
        assert f"p{earlier.ts.replace('.', '')}|see it>" in dm.plain
    assert dm_updates(world, since, bruno, maya) == {bruno.channel: 1, maya.channel: 1}
    # The earlier question's link was asked of Slack once for the channel message and both DMs.
    assert len(world.fake.calls_to("chat.getPermalink", since=since, message_ts=earlier.ts)) == 1


def test_a_daily_summary_shows_the_resolved_question_and_keeps_the_open_ones_buttons(bot):
    world = bot.world
    declare(world, "U_BRUNO", "#postgres")
    declare(world, "U_MAYA", "#postgres")
    declare(world, "U_BRUNO", "pause 7d")
    with bot.store.session() as s:
        ensure_person(s, TEAM_ID, "U_MAYA").notify_mode = NOTIFY_DAILY  # one DM a day, in her morning
    first = world.ask("U_ANA", "First question of the day #postgres", GENERAL)
    world.ask("U_ANA", "Second question of the day #postgres", GENERAL)
    bot.tick(NEW_YORK_NINE_TUESDAY)
    [summary] = routing_dms(world, "U_MAYA")
    assert "2 questions you may know the answer to" in summary.plain

    answer = world.reply("U_OLD", first, "Try this.")
    since = world.fake.mark()
    world.react("U_ANA", "white_check_mark", GENERAL, answer)
    world.settle()

    [summary] = routing_dms(world, "U_MAYA")
    assert "*Resolved* — answer by <@U_OLD>" in summary.plain
    second_id = question_of(bot.store, world.messages(GENERAL)[-1]).id
    assert buttons(summary) == [(TAKE, str(second_id)), (DECLINE, str(second_id))]
    assert len(world.fake.calls_to("chat.update", since=since, channel=summary.channel)) == 1
