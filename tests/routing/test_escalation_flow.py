"""Issue 3's escalation, end to end on SQLite and PostgreSQL: a question nobody answers is routed to the next
experts after the escalation period (4 h, or the workspace's own), then its thread gets a gentle bump; an
answer stops it, an accept cancels the DMs still waiting; it survives restarts, and two replicas ticking at
once send every DM and take every step exactly once."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest

from bot.messages.routing import ACTION_TAKE_QUESTION
from bot.playground.emulator.fake_api import TEAM_ID
from bot.routing import escalation
from bot.runtime.scheduler import default_ticks
from models.expert import ROUTE_CANCELLED, ROUTE_SCHEDULED, ROUTE_SENT
from models.workspace_settings import store_setting
from tests.route_helpers import (
    GENERAL,
    add_people,
    bot_maker,
    buttons,
    click_later,
    declare,
    question_of,
    requests_of,
    routing_dms,
    thread,
)
from tests.slack.fixtures import START

BERLIN, TOKYO = "Europe/Berlin", "Asia/Tokyo"
FOUR_HOURS, EIGHT_HOURS = START + timedelta(hours=4), START + timedelta(hours=8)
TOKYO_NINE_TUESDAY = datetime(2026, 11, 24, 0, 0, tzinfo=UTC)
# Four hours of a Berlin expert's working time (9:00-18:00) from FOUR_HOURS (15:00 Berlin): three on Monday, one on
# Tuesday from 9:00.
BUMP_AT = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)


@pytest.fixture
def make_bot(fake_slack, database_url, slack_clock):
    yield from bot_maker(fake_slack, database_url, slack_clock)


def experts(bot) -> None:
    """U_FIRST is the best for #postgres #ops questions; U_SECOND and U_THIRD come next."""
    world = bot.world
    add_people(world, U_ASKER=BERLIN, U_FIRST=BERLIN, U_SECOND=BERLIN, U_THIRD=BERLIN, U_PASSERBY=BERLIN)
    declare(world, "U_FIRST", "#postgres #ops")
    declare(world, "U_SECOND", "#postgres")
    declare(world, "U_THIRD", "#ops")


def bumps(world, question) -> list:
    return [m for m in thread(world, question) if "still waiting for an answer" in m.plain]


def test_an_unanswered_question_goes_to_the_next_expert_after_4_hours_then_gets_a_bump(make_bot):
    bot = make_bot(route_top_n=1)
    experts(bot)
    world = bot.world
    question = world.ask("U_ASKER", "How do I fail over a replica? #postgres #ops", GENERAL)
    stored = question_of(bot.store, question)
    assert list(requests_of(bot.store, stored.id)) == ["U_FIRST"]

    bot.tick(FOUR_HOURS - timedelta(seconds=1))
    assert list(requests_of(bot.store, stored.id)) == ["U_FIRST"]
    report = bot.tick(FOUR_HOURS)
    [step] = report.steps
    assert (step.level, len(step.asked)) == (escalation.LEVEL_ROUND_2, 1)
    [second] = step.asked
    assert second in ("U_SECOND", "U_THIRD")
    request = requests_of(bot.store, stored.id)[second]
    assert (request.round, request.status) == (2, ROUTE_SENT)
    assert len(routing_dms(world, second)) == 1 and len(routing_dms(world, "U_FIRST")) == 1
    assert question_of(bot.store, question).next_escalation_at == BUMP_AT  # not at 19:00 Berlin: after work

    bot.tick(BUMP_AT - timedelta(seconds=1))
    assert bumps(world, question) == []
    bot.tick(BUMP_AT)
    [bump] = bumps(world, question)
    assert "`#postgres` `#ops`" in bump.plain
    assert "<!" not in bump.plain and "<@" not in bump.plain and bump.raw.get("reply_broadcast") is not True
    assert question_of(bot.store, question).escalation_level == escalation.LEVEL_BUMPED
    assert question_of(bot.store, question).next_escalation_at is None

    for later in (timedelta(hours=12), timedelta(days=2)):
        assert bot.tick(START + later).steps == []
    assert len(bumps(world, question)) == 1
    assert len(requests_of(bot.store, stored.id)) == 2


def test_a_question_asked_on_friday_evening_escalates_in_the_experts_working_time_not_over_the_weekend(make_bot):
    bot = make_bot(route_top_n=1)
    experts(bot)  # all in Berlin, working 9:00-18:00, Monday to Friday (the workspace's default)
    world = bot.world
    friday_17 = datetime(2026, 11, 27, 16, 0, tzinfo=UTC)  # 17:00 in Berlin
    monday_noon = datetime(2026, 11, 30, 11, 0, tzinfo=UTC)  # one working hour on Friday, three on Monday
    bot.clock.set(friday_17)
    question = world.ask("U_ASKER", "How do I fail over a replica? #postgres #ops", GENERAL)
    stored = question_of(bot.store, question)
    assert requests_of(bot.store, stored.id)["U_FIRST"].status == ROUTE_SENT  # at work: asked at once
    assert stored.next_escalation_at == monday_noon

    for moment in (friday_17 + timedelta(hours=4), friday_17 + timedelta(days=1), monday_noon - timedelta(seconds=1)):
        assert bot.tick(moment).steps == []  # Friday night, Saturday, Monday morning: U_FIRST's time to answer
    assert list(requests_of(bot.store, stored.id)) == ["U_FIRST"] and bumps(world, question) == []

    [step] = bot.tick(monday_noon).steps
    [second] = step.asked
    assert (step.level, requests_of(bot.store, stored.id)[second].status) == (escalation.LEVEL_ROUND_2, ROUTE_SENT)
    assert question_of(bot.store, question).next_escalation_at == monday_noon + timedelta(hours=4)  # all at work
    bot.tick(monday_noon + timedelta(hours=4))
    assert len(bumps(world, question)) == 1


def test_an_answer_stops_the_escalation(make_bot):
    bot = make_bot(route_top_n=1)
    experts(bot)
    world = bot.world
    question = world.ask("U_ASKER", "Why is my replica lagging? #postgres #ops", GENERAL)
    bot.clock.set(START + timedelta(hours=1))
    world.reply("U_PASSERBY", question, "Check the network between the two, and wal_sender_timeout.")
    world.settle()
    assert question_of(bot.store, question).next_escalation_at is None

    assert bot.tick(FOUR_HOURS).steps == []
    assert bot.tick(EIGHT_HOURS).steps == []
    assert list(requests_of(bot.store, question_of(bot.store, question).id)) == ["U_FIRST"]
    assert bumps(world, question) == []


def test_an_accept_cancels_the_dms_still_waiting_to_be_sent(make_bot):
    bot = make_bot()
    world = bot.world
    add_people(world, U_ASKER=BERLIN, U_AWAKE=BERLIN, U_ASLEEP=TOKYO)
    declare(world, "U_AWAKE", "#postgres")
    declare(world, "U_ASLEEP", "#postgres")
    question = world.ask("U_ASKER", "What does HOT update mean? #postgres", GENERAL)
    stored = question_of(bot.store, question)
    assert requests_of(bot.store, stored.id)["U_ASLEEP"].status == ROUTE_SCHEDULED

    [dm] = routing_dms(world, "U_AWAKE")
    take_on_an_old_screen = click_later(world, "U_AWAKE", ACTION_TAKE_QUESTION, str(stored.id))
    answer = world.reply("U_AWAKE", question, "Heap-only tuple: an update that needs no index change.")
    world.react("U_ASKER", "white_check_mark", GENERAL, answer)
    world.settle()

    assert requests_of(bot.store, stored.id)["U_ASLEEP"].status == ROUTE_CANCELLED
    assert bot.tick(TOKYO_NINE_TUESDAY).dms_sent == 0
    assert routing_dms(world, "U_ASLEEP") == []
    take_on_an_old_screen()  # too late to take it: nothing is recorded and the DM says how it was resolved
    assert requests_of(bot.store, stored.id)["U_AWAKE"].status == ROUTE_SENT
    [dm] = routing_dms(world, "U_AWAKE")
    assert "*Resolved* — answer by <@U_AWAKE>" in dm.plain and buttons(dm) == []


def test_escalation_survives_restarts(make_bot):
    bot = make_bot(route_top_n=1)
    experts(bot)
    question = bot.world.ask("U_ASKER", "How do I resize a volume online? #postgres #ops", GENERAL)
    stored = question_of(bot.store, question)

    bot.restart()
    [step] = bot.tick(FOUR_HOURS).steps
    assert step.level == escalation.LEVEL_ROUND_2 and len(requests_of(bot.store, stored.id)) == 2
    bot.restart()
    assert bot.tick(FOUR_HOURS + timedelta(minutes=1)).steps == []  # the same step is not taken twice
    bot.restart()
    bot.tick(BUMP_AT)
    assert len(bumps(bot.world, question)) == 1


def test_a_workspace_can_escalate_sooner(make_bot):
    bot = make_bot(route_top_n=1)
    experts(bot)
    with bot.store.session() as s:  # as an admin saved it in App Home (tests/test_settings_flow.py)
        store_setting(s, TEAM_ID, "escalation_hours", "1", START)
    question = bot.world.ask("U_ASKER", "Is pg_upgrade safe in place? #postgres #ops", GENERAL)
    assert question_of(bot.store, question).next_escalation_at == START + timedelta(hours=1)
    [step] = bot.tick(START + timedelta(hours=1)).steps
    assert step.level == escalation.LEVEL_ROUND_2


def test_two_replicas_ticking_at_once_send_every_dm_and_take_every_step_once(make_bot):
    replicas = [make_bot(), make_bot()]  # two processes on one database
    world = replicas[0].world
    tokyo = ("U_TOKYO1", "U_TOKYO2", "U_TOKYO3")
    add_people(world, U_ASKER=BERLIN, U_BERLIN1=BERLIN, U_BERLIN2=BERLIN, **dict.fromkeys(tokyo, TOKYO))
    for user in ("U_BERLIN1", "U_BERLIN2", *tokyo):
        declare(world, user, "#postgres")
    asked = []
    for number in range(3):
        asked.append(question_of(replicas[0].store, world.ask("U_ASKER", f"Replica race {number} #postgres", GENERAL)))
        replicas[0].clock.advance(timedelta(minutes=1))
    # Round 1 went to the two experts awake in Berlin (top 2, awake first).
    for question in asked:
        assert sorted(requests_of(replicas[0].store, question.id)) == ["U_BERLIN1", "U_BERLIN2"]

    # Tokyo's morning, long after 4 hours: every question's round 2 is due, for the Tokyo experts now awake.
    replicas[0].clock.set(TOKYO_NINE_TUESDAY)
    start = threading.Barrier(len(replicas))

    def tick(bot):
        start.wait(timeout=10)
        return escalation.tick(bot.runtime.services, bot.runtime.bolt_app.client, TOKYO_NINE_TUESDAY)

    with ThreadPoolExecutor(len(replicas)) as pool:
        reports = list(pool.map(tick, replicas))
    world.settle()

    steps = sorted(step.question_id for report in reports for step in report.steps)
    assert steps == [q.id for q in asked]  # each question's round 2 taken by exactly one replica
    for question in asked:
        requests = requests_of(replicas[0].store, question.id)
        round_2 = {u: r for u, r in requests.items() if r.round == 2}
        assert len(round_2) == 2 and set(round_2) <= set(tokyo)
        assert all(r.status == ROUTE_SENT for r in round_2.values())
    posted = [
        (call.response["channel"], call.args["text"])
        for call in world.fake.calls_to("chat.postMessage")
        if call.ok and call.response["channel"].startswith("D_TOKYO")
    ]
    assert len(posted) == 6 and len(set(posted)) == 6  # six DMs, none twice
    assert sorted(len(routing_dms(world, user)) for user in tokyo) == [2, 2, 2]  # equal experts take turns


def test_the_routing_tick_runs_every_minute_with_each_workspaces_token(make_bot):
    [registered] = [tick for tick in default_ticks() if tick.name == "routing"]
    assert registered.run is escalation.tick and registered.every == timedelta(minutes=1) and registered.per_team_tokens

    bot = make_bot()
    world = bot.world
    add_people(world, U_ASKER=BERLIN, U_ASLEEP=TOKYO)
    declare(world, "U_ASLEEP", "#postgres")
    world.ask("U_ASKER", "A question for the morning #postgres", GENERAL)
    world.fake.tokens.add("xoxb-installation-token")  # this workspace's own ("Add to Slack") token
    since = world.fake.mark()
    bot.clock.set(TOKYO_NINE_TUESDAY)
    report = escalation.tick(
        bot.runtime.services,
        bot.runtime.bolt_app.client,
        TOKYO_NINE_TUESDAY,
        token_for={TEAM_ID: "xoxb-installation-token"}.get,
    )
    world.settle()
    assert report.dms_sent == 1 and len(routing_dms(world, "U_ASLEEP")) == 1
    calls = world.fake.calls[since:]
    assert calls and {call.token for call in calls} == {"xoxb-installation-token"}
