"""Issue 3's similar questions, end to end on SQLite and PostgreSQL: before anyone is pinged, the asker sees
up to three similar answered questions and lessons (never from a private channel they asked outside of);
"This answers it" resolves the question and pings nobody, "Still need help" routes it at once, and without
a click routing waits for the grace period, across restarts."""

from __future__ import annotations

from datetime import timedelta

import pytest

from bot.messages.suggestions import ACTION_SIMILAR_ANSWERS_IT, ACTION_SIMILAR_STILL_NEED_HELP
from bot.playground.emulator.fake_api import TEAM_ID
from bot.routing.buttons import CLOSED, NOT_ASKER, parse_earlier, resolve_with_earlier
from models.question import RESOLUTION_SIMILAR, STATUS_OPEN, STATUS_RESOLVED
from tests.route_helpers import (
    GENERAL,
    SECRET,
    add_people,
    bot_maker,
    buttons,
    declare,
    double_click,
    plain,
    question_of,
    requests_of,
    routing_dms,
)
from tests.slack.conversations import answered_question
from tests.slack.fixtures import START

BERLIN = "Europe/Berlin"
ANSWERS_IT, STILL_NEED_HELP = ACTION_SIMILAR_ANSWERS_IT, ACTION_SIMILAR_STILL_NEED_HELP
EARLIER = "How do I vacuum a big table without locking it? #postgres"
ANSWER = "Use pg_repack: it rebuilds the table online, with only a short lock at the end."
NEW = "Vacuuming our big table locks it for minutes, what can I do? #postgres"


@pytest.fixture
def make_bot(fake_slack, database_url, slack_clock):
    yield from bot_maker(fake_slack, database_url, slack_clock)


@pytest.fixture
def bot(make_bot):
    bot = make_bot()
    add_people(bot.world, U_OLD=BERLIN, U_HELPER=BERLIN, U_ASKER=BERLIN, U_PG=BERLIN)
    return bot


def suggestions(world, user: str = "U_ASKER") -> list[dict]:
    return [e for e in world.ephemerals(user) if any(a == STILL_NEED_HELP for a, _ in buttons(e))]


def test_similar_answers_come_first_and_this_answers_it_resolves_without_pinging_anyone(bot):
    world = bot.world
    earlier, _ = answered_question(world, EARLIER, ANSWER, GENERAL)
    declare(world, "U_PG", "#postgres")  # an expert who would be asked

    question = world.ask("U_ASKER", NEW, GENERAL)
    stored = question_of(bot.store, question)

    [shown] = suggestions(world)
    text = plain(shown)
    assert "How do I vacuum a big table without locking it?" in text
    assert "Accepted answer by <@U_HELPER>" in text and "Use pg_repack" in text and "<@U_OLD>" in text
    assert f"archives/{GENERAL}/p{earlier.ts.replace('.', '')}" in text
    earlier_id = question_of(bot.store, earlier).id
    assert buttons(shown) == [
        (ANSWERS_IT, f"{stored.id}:question:{earlier_id}"),
        (STILL_NEED_HELP, str(stored.id)),
    ]
    assert routing_dms(world, "U_PG") == []  # nobody pinged while the asker reads

    world.click("U_ASKER", ANSWERS_IT, f"{stored.id}:question:{earlier_id}")
    world.settle()

    resolved = question_of(bot.store, question)
    assert (resolved.status, resolved.resolution, resolved.resolution_ref) == (
        STATUS_RESOLVED,
        RESOLUTION_SIMILAR,
        f"question:{earlier_id}",
    )
    assert (resolved.resolved_at, resolved.next_escalation_at, resolved.accepted_answer_id) == (START, None, None)
    assert "Glad that helped" in plain(world.ephemerals("U_ASKER")[-1])
    [message] = [m for m in world.messages(GENERAL) if m.ts == question.ts]
    assert "*Resolved* — answered by an earlier question" in message.plain
    assert f"p{earlier.ts.replace('.', '')}" in message.plain
    for later in (timedelta(minutes=11), timedelta(hours=5), timedelta(hours=9)):
        bot.tick(START + later)
    assert routing_dms(world, "U_PG") == [] and requests_of(bot.store, stored.id) == {}


def test_still_need_help_routes_at_once_and_only_once(bot):
    world = bot.world
    answered_question(world, EARLIER, ANSWER, GENERAL)
    declare(world, "U_PG", "#postgres")
    question = world.ask("U_ASKER", NEW, GENERAL)
    stored = question_of(bot.store, question)
    assert routing_dms(world, "U_PG") == []

    double_click(world, "U_ASKER", STILL_NEED_HELP, str(stored.id))

    [dm] = routing_dms(world, "U_PG")
    assert "Vacuuming our big table locks it" in dm.plain
    assert sorted(requests_of(bot.store, stored.id)) == ["U_HELPER", "U_PG"]  # declared, and answered before
    assert len(routing_dms(world, "U_HELPER")) == 1
    # Both clicks say who was asked, from what was recorded (the second one's routing found it done).
    said = plain(world.ephemerals("U_ASKER")[-1])
    assert "I've asked" in said and "<@U_PG>" in said and "<@U_HELPER>" in said
    bot.tick(START + timedelta(minutes=11))  # the grace period ends: nothing more happens
    assert len(routing_dms(world, "U_PG")) == 1
    assert question_of(bot.store, question).status == STATUS_OPEN


def test_without_a_click_routing_waits_for_the_grace_period_even_across_a_restart(bot):
    world = bot.world
    answered_question(world, EARLIER, ANSWER, GENERAL)
    declare(world, "U_PG", "#postgres")
    question = world.ask("U_ASKER", NEW, GENERAL)
    assert len(suggestions(world)) == 1

    bot.restart()
    bot.tick(START + timedelta(minutes=9, seconds=59))
    assert routing_dms(bot.world, "U_PG") == []
    bot.tick(START + timedelta(minutes=10))
    assert len(routing_dms(bot.world, "U_PG")) == 1
    # Clicking "Still need help" afterwards asks nobody twice.
    bot.world.click("U_ASKER", STILL_NEED_HELP, str(question_of(bot.store, question).id))
    bot.world.settle()
    said = plain(bot.world.ephemerals("U_ASKER")[-1])
    assert "I've asked" in said and "<@U_PG>" in said
    assert len(routing_dms(bot.world, "U_PG")) == 1


def test_with_nothing_similar_the_question_is_routed_at_once(bot):
    world = bot.world
    declare(world, "U_PG", "#postgres")
    world.ask("U_ASKER", NEW, GENERAL)
    assert suggestions(world) == []
    assert len(routing_dms(world, "U_PG")) == 1


def test_a_private_channels_answer_is_never_suggested_in_another_channel(bot):
    world = bot.world
    add_people(world, channel=SECRET, private=True, U_OLD=BERLIN, U_HELPER=BERLIN, U_ASKER=BERLIN)
    answered_question(world, "How do I vacuum the payroll table without locking it? #postgres", ANSWER, SECRET)

    world.ask("U_ASKER", "Vacuuming the payroll table locks it, what can I do? #postgres", GENERAL)
    assert suggestions(world) == []
    assert all("payroll table without locking" not in plain(e) for e in world.ephemerals("U_ASKER"))

    world.ask("U_ASKER", "Vacuuming the payroll table locks it, any idea? #postgres", SECRET)
    [shown] = suggestions(world)
    assert "payroll table without locking" in plain(shown) and "Use pg_repack" in plain(shown)


def test_a_lesson_can_answer_it(bot):
    world = bot.world
    response = world.command("U_PG", "/teach", "#postgres Use pg_repack to rebuild a bloated table online", GENERAL)
    assert response.status == 200
    world.settle()

    question = world.ask("U_ASKER", "How can I rebuild a bloated table online? #postgres", GENERAL)
    stored = question_of(bot.store, question)
    [shown] = suggestions(world)
    assert "Lesson by <@U_PG>" in plain(shown)
    [(_, value)] = [b for b in buttons(shown) if b[0] == ANSWERS_IT]
    assert value.startswith(f"{stored.id}:lesson:")

    world.click("U_ASKER", ANSWERS_IT, value)
    world.settle()

    assert question_of(bot.store, question).resolution_ref == value.split(":", 1)[1]
    [message] = [m for m in world.messages(GENERAL) if m.ts == question.ts]
    assert "answered by a lesson" in message.plain
    assert routing_dms(world, "U_PG") == []


def test_only_the_asker_resolves_and_a_private_item_cannot_be_named_from_elsewhere(bot):
    world = bot.world
    add_people(world, channel=SECRET, private=True, U_OLD=BERLIN, U_HELPER=BERLIN)
    secret = question_of(bot.store, answered_question(world, "Payroll vacuum question #postgres", ANSWER, SECRET)[0])
    public = question_of(bot.store, answered_question(world, EARLIER, ANSWER, GENERAL)[0])
    asked = world.ask("U_ASKER", NEW, GENERAL)
    question = question_of(bot.store, asked)

    with bot.store.session() as s:
        by_someone_else = resolve_with_earlier(s, TEAM_ID, question.id, "U_PG", "question", public.id, START)
        forged = resolve_with_earlier(s, TEAM_ID, question.id, "U_ASKER", "question", secret.id, START)
        other_team = resolve_with_earlier(s, "T_OTHER", question.id, "U_ASKER", "question", public.id, START)
    assert (by_someone_else.result, forged.result, other_team.result) == (
        NOT_ASKER,
        CLOSED,
        CLOSED,
    )
    assert question_of(bot.store, asked).status == STATUS_OPEN
    assert parse_earlier("12:question:3") == (12, "question", 3)
    assert [parse_earlier(v) for v in ("12", "12:answer:3", "x:question:3", "")] == [None] * 4
