"""Each person's working days, end to end on SQLite and PostgreSQL: an expert who works Sunday to Thursday (ticked
in their App Home) gets no DM on a Friday, theirs waits for Sunday morning, and a question on a Sunday reaches
them at once. Slack is the emulator, time is frozen (Monday 2026-11-23 10:00 UTC, then moved by hand)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from bot.messages.home import HOME_WORK_DAYS
from bot.playground.emulator.fake_api import TEAM_ID
from models.expert import ROUTE_SCHEDULED, ROUTE_SENT, Person
from tests.route_helpers import (
    GENERAL,
    add_people,
    bot_maker,
    declare,
    plain,
    question_of,
    requests_of,
    routing_dms,
)

BERLIN, JERUSALEM = "Europe/Berlin", "Asia/Jerusalem"  # UTC+1 and UTC+2 in November
FRIDAY_NOON = datetime(2026, 11, 27, 10, 0, tzinfo=UTC)  # 12:00 in Jerusalem
SATURDAY_NOON = datetime(2026, 11, 28, 10, 0, tzinfo=UTC)
SUNDAY_NINE = datetime(2026, 11, 29, 7, 0, tzinfo=UTC)  # 09:00 in Jerusalem
SUNDAY_AFTERNOON = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)


@pytest.fixture
def make_bot(fake_slack, database_url, slack_clock):
    yield from bot_maker(fake_slack, database_url, slack_clock)


def tick_days(world, user: str, days: list[str]) -> None:
    """`user` opens their App Home and leaves exactly `days` ticked (date.weekday() numbers)."""
    since = world.fake.mark()
    world.open_home(user)
    world.fake.wait_for("views.publish", since=since, user_id=user)
    since = world.fake.mark()
    response = world.click(user, HOME_WORK_DAYS, days, view_id=world.fake.home_view(user)["id"])
    assert response.status == 200, response.body
    world.fake.wait_for("views.publish", since=since, user_id=user)


def test_an_expert_who_works_sunday_to_thursday_is_asked_on_sunday_and_not_on_friday(make_bot):
    bot = make_bot()
    world = bot.world
    add_people(world, U_ASKER=BERLIN, U_DANA=JERUSALEM)
    declare(world, "U_DANA", "#postgres")
    tick_days(world, "U_DANA", ["0", "1", "2", "3", "6"])  # Sunday to Thursday
    with bot.store.session() as s:
        assert s.get(Person, (TEAM_ID, "U_DANA")).work_days == "01236"

    # Friday noon in Jerusalem: within her hours, but not one of her days.
    bot.clock.set(FRIDAY_NOON)
    since = world.fake.mark()
    question = world.ask("U_ASKER", "Why does my index bloat so fast? #postgres", GENERAL)
    stored = question_of(bot.store, question)
    assert routing_dms(world, "U_DANA") == []
    request = requests_of(bot.store, stored.id)["U_DANA"]
    assert (request.status, request.send_at) == (ROUTE_SCHEDULED, SUNDAY_NINE)
    [note] = [e for e in world.fake.calls_to("chat.postEphemeral", since=since) if e.args["user"] == "U_ASKER"]
    assert "<@U_DANA>" in plain(note.args) and "on Sunday morning" in plain(note.args)  # in Berlin's time

    bot.tick(SATURDAY_NOON)
    bot.tick(SUNDAY_NINE - timedelta(minutes=1))
    assert routing_dms(world, "U_DANA") == []
    assert bot.tick(SUNDAY_NINE).dms_sent == 1
    [dm] = routing_dms(world, "U_DANA")
    assert "Why does my index bloat so fast?" in dm.plain
    assert requests_of(bot.store, stored.id)["U_DANA"].status == ROUTE_SENT

    # On a Sunday afternoon she is at work: a new question reaches her at once.
    bot.clock.set(SUNDAY_AFTERNOON)
    question = world.ask("U_ASKER", "Is REINDEX CONCURRENTLY safe on a replica? #postgres", GENERAL)
    request = requests_of(bot.store, question_of(bot.store, question).id)["U_DANA"]
    assert (request.status, request.sent_at) == (ROUTE_SENT, SUNDAY_AFTERNOON)
    assert len(routing_dms(world, "U_DANA")) == 2


def test_a_colleague_on_the_default_days_is_asked_on_friday_instead(make_bot):
    bot = make_bot(route_top_n=1)
    world = bot.world
    add_people(world, U_ASKER=BERLIN, U_DANA=JERUSALEM, U_MARK=JERUSALEM)
    declare(world, "U_DANA", "#postgres #ops")  # the better match
    declare(world, "U_MARK", "#postgres")
    tick_days(world, "U_DANA", ["0", "1", "2", "3", "6"])

    bot.clock.set(FRIDAY_NOON)
    question = world.ask("U_ASKER", "How do I fail over without losing writes? #postgres #ops", GENERAL)
    # One expert is asked: the one at work now (Monday to Friday, the workspace's default), not the one off today.
    assert list(requests_of(bot.store, question_of(bot.store, question).id)) == ["U_MARK"]
    assert len(routing_dms(world, "U_MARK")) == 1 and routing_dms(world, "U_DANA") == []
