"""Issue 3's routing, end to end on SQLite and PostgreSQL: a question reaches the right experts by DM, within
their working hours and daily cap; "I'll take it" and "Not me" from a DM and from the App Home; nobody to
ask is said plainly and recorded. Slack is the emulator, time is frozen (Monday 2026-11-23 10:00 UTC)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import event

from bot.config import Settings
from bot.messages.blocks import actions, button
from bot.messages.routing import ACTION_DECLINE_QUESTION, ACTION_TAKE_QUESTION, ROUTE_DECLINED_NOTE, ROUTE_TAKEN_NOTE
from bot.playground.emulator.fake_api import TEAM_ID
from bot.routing import escalation, planner
from bot.routing.buttons import OWN, take_question
from bot.routing.evidence import DMLoad, Evidence, PersonFacts, load_dm_load, load_evidence
from bot.routing.planner import Availability
from bot.routing.ranker import ScoredExpert
from bot.routing.upkeep import rebuild
from models.expert import (
    NOTIFY_DAILY,
    NOTIFY_OFF,
    ROUTE_CANCELLED,
    ROUTE_DECLINED,
    ROUTE_SCHEDULED,
    ROUTE_SENT,
    ROUTE_TAKEN,
    Expertise,
    Person,
    ensure_person,
)
from models.question import Answer, Question, QuestionTag, Vote
from models.session import Store
from models.tag_stats import count_question
from models.workspace import Workspace, ensure_workspace
from tests.route_helpers import (
    GENERAL,
    SECRET,
    add_people,
    bot_maker,
    buttons,
    declare,
    dms,
    double_click,
    gaps_of,
    plain,
    question_of,
    requests_of,
    routing_dms,
    thread,
)
from tests.slack.fixtures import START

BERLIN, TOKYO = "Europe/Berlin", "Asia/Tokyo"
TOKYO_NINE_TUESDAY = datetime(2026, 11, 24, 0, 0, tzinfo=UTC)  # 09:00 in Tokyo
TAKE, DECLINE = ACTION_TAKE_QUESTION, ACTION_DECLINE_QUESTION


@pytest.fixture
def make_bot(fake_slack, database_url, slack_clock):
    yield from bot_maker(fake_slack, database_url, slack_clock)


@pytest.fixture
def bot(make_bot):
    return make_bot()


def test_a_question_reaches_the_declared_experts_by_dm_with_why_and_a_link(bot):
    world = bot.world
    add_people(world, U_ASKER=BERLIN, U_PG=BERLIN, U_OPS=BERLIN, U_OTHER=BERLIN)
    declare(world, "U_PG", "#postgres")
    declare(world, "U_OPS", "#ops #postgres")
    declare(world, "U_OTHER", "#golang")

    question = world.ask("U_ASKER", "How do I vacuum a big table without locking it? #postgres", GENERAL)

    for expert in ("U_PG", "U_OPS"):
        [dm] = routing_dms(world, expert)
        assert "How do I vacuum a big table without locking it?" in dm.plain
        assert "<@U_ASKER> asked in <#C_GENERAL>" in dm.plain
        assert "`#postgres`" in dm.plain and "Why you: declared #postgres" in dm.plain
        assert f"https://peerlearn-test.slack.com/archives/{GENERAL}/p{question.ts.replace('.', '')}" in dm.plain
        stored = question_of(bot.store, question)
        assert buttons(dm) == [(TAKE, str(stored.id)), (DECLINE, str(stored.id))]
    assert routing_dms(world, "U_OTHER") == [] and routing_dms(world, "U_ASKER") == []
    stored = question_of(bot.store, question)
    assert {u: (r.status, r.round) for u, r in requests_of(bot.store, stored.id).items()} == {
        "U_PG": (ROUTE_SENT, 1),
        "U_OPS": (ROUTE_SENT, 1),
    }
    assert stored.escalation_level == escalation.LEVEL_ROUND_1
    assert stored.next_escalation_at == START + timedelta(hours=4)
    # Profiles were asked once each and cached: time zone, not a bot, not deactivated.
    with bot.store.session() as s:
        person = s.get(Person, (TEAM_ID, "U_PG"))
        assert (person.tz, person.is_bot, person.deleted, person.profile_fetched_at) == (BERLIN, False, False, START)
    asked_about = [call.args["user"] for call in world.fake.calls_to("users.info")]
    assert sorted(asked_about) == ["U_OPS", "U_PG"]
    world.ask("U_ASKER", "And how do I reindex concurrently? #postgres", GENERAL)
    assert sorted(call.args["user"] for call in world.fake.calls_to("users.info")) == ["U_OPS", "U_PG"]


def test_an_expert_asleep_in_tokyo_gets_the_dm_at_their_nine_and_the_awake_one_at_once(bot):
    world = bot.world
    add_people(world, U_ASKER=BERLIN, U_BERLIN=BERLIN, U_TOKYO=TOKYO)  # 11:00 in Berlin, 19:00 in Tokyo
    declare(world, "U_BERLIN", "#postgres")
    declare(world, "U_TOKYO", "#postgres")

    question = world.ask("U_ASKER", "Why is autovacuum so slow? #postgres", GENERAL)
    stored = question_of(bot.store, question)

    assert len(routing_dms(world, "U_BERLIN")) == 1
    assert routing_dms(world, "U_TOKYO") == []
    tokyo = requests_of(bot.store, stored.id)["U_TOKYO"]
    assert (tokyo.status, tokyo.send_at) == (ROUTE_SCHEDULED, TOKYO_NINE_TUESDAY)

    bot.tick(TOKYO_NINE_TUESDAY - timedelta(minutes=1))
    assert routing_dms(world, "U_TOKYO") == []
    report = bot.tick(TOKYO_NINE_TUESDAY)
    assert report.dms_sent == 1
    [dm] = routing_dms(world, "U_TOKYO")
    assert "Why is autovacuum so slow?" in dm.plain
    assert requests_of(bot.store, stored.id)["U_TOKYO"].status == ROUTE_SENT
    bot.tick(TOKYO_NINE_TUESDAY + timedelta(minutes=1))
    assert len(routing_dms(world, "U_TOKYO")) == 1  # sent once


def test_the_daily_cap_sends_the_fourth_question_of_the_day_to_someone_else(make_bot):
    bot = make_bot(route_top_n=1)
    world = bot.world
    add_people(world, U_ASKER=BERLIN, U_BEST=BERLIN, U_NEXT=BERLIN)
    declare(world, "U_BEST", "#postgres #ops")  # both of the questions' tags: ranked first
    declare(world, "U_NEXT", "#postgres")

    for number in range(1, 5):
        world.ask("U_ASKER", f"Question number {number} about replicas #postgres #ops", GENERAL)
        bot.clock.advance(timedelta(minutes=5))

    best = routing_dms(world, "U_BEST")
    assert [f"Question number {n} " in m.plain for n, m in enumerate(best, start=1)] == [True, True, True]
    [fourth] = routing_dms(world, "U_NEXT")
    assert "Question number 4" in fourth.plain
    # A new day in their time zone: the cap starts again.
    bot.clock.set(datetime(2026, 11, 24, 8, 0, tzinfo=UTC))  # 09:00 in Berlin
    world.ask("U_ASKER", "Question number 5 about replicas #postgres #ops", GENERAL)
    assert "Question number 5" in routing_dms(world, "U_BEST")[-1].plain


def test_equal_experts_take_turns(make_bot):
    bot = make_bot(route_top_n=1)
    world = bot.world
    add_people(world, U_ASKER=BERLIN, U_ANNA=BERLIN, U_BORIS=BERLIN)
    declare(world, "U_ANNA", "#postgres")
    declare(world, "U_BORIS", "#postgres")

    for number in range(1, 5):
        world.ask("U_ASKER", f"Equal question {number} #postgres", GENERAL)
        bot.clock.advance(timedelta(minutes=5))

    assert len(routing_dms(world, "U_ANNA")) == 2
    assert len(routing_dms(world, "U_BORIS")) == 2


def test_paused_bots_deactivated_people_no_dm_people_and_the_asker_are_never_dmed(bot):
    world = bot.world
    add_people(
        world,
        U_ASKER=BERLIN,
        U_GOOD=BERLIN,
        U_PAUSED=BERLIN,
        U_ROBOT=BERLIN,
        U_GONE=BERLIN,
        U_QUIET=BERLIN,
    )
    for user in ("U_ASKER", "U_GOOD", "U_PAUSED", "U_ROBOT", "U_GONE", "U_QUIET"):
        declare(world, user, "#postgres")
    declare(world, "U_PAUSED", "pause 7d")
    world.fake.users["U_ROBOT"].is_bot = True
    world.fake.users["U_GONE"].deleted = True
    with bot.store.session() as s:
        s.add(Person(team_id=TEAM_ID, user_id="U_QUIET", notify_mode=NOTIFY_OFF))

    question = world.ask("U_ASKER", "Who knows pg_repack? #postgres", GENERAL)

    assert set(requests_of(bot.store, question_of(bot.store, question).id)) == {"U_GOOD"}
    for user in ("U_ASKER", "U_PAUSED", "U_ROBOT", "U_GONE", "U_QUIET"):
        assert routing_dms(world, user) == [], user
    assert len(routing_dms(world, "U_GOOD")) == 1
    with bot.store.session() as s:
        assert s.get(Person, (TEAM_ID, "U_ROBOT")).is_bot
        assert s.get(Person, (TEAM_ID, "U_GONE")).deleted
    # Back from the pause, they are asked again.
    declare(world, "U_PAUSED", "resume")
    later = world.ask("U_ASKER", "Who knows pg_squeeze? #postgres", GENERAL)
    assert "U_PAUSED" in requests_of(bot.store, question_of(bot.store, later).id)


def test_someone_deactivated_since_their_profile_was_cached_is_not_dmed_twice(bot):
    world = bot.world
    add_people(world, U_ASKER=BERLIN, U_LEAVER=BERLIN)
    declare(world, "U_LEAVER", "#postgres")
    world.ask("U_ASKER", "First question #postgres", GENERAL)
    assert len(routing_dms(world, "U_LEAVER")) == 1

    world.fake.users["U_LEAVER"].deleted = True  # the profile cached an hour ago still says active
    bot.clock.advance(timedelta(hours=1))
    second = world.ask("U_ASKER", "Second question #postgres", GENERAL)

    request = requests_of(bot.store, question_of(bot.store, second).id)["U_LEAVER"]
    assert request.status == ROUTE_CANCELLED and "user_disabled" in request.reason and request.sent_at is None
    with bot.store.session() as s:
        assert s.get(Person, (TEAM_ID, "U_LEAVER")).deleted
    third = world.ask("U_ASKER", "Third question #postgres", GENERAL)
    assert requests_of(bot.store, question_of(bot.store, third).id) == {}
    assert len(world.fake.calls_to("users.info", user="U_LEAVER")) == 1  # the cache says deactivated: no new ask

    world.fake.users["U_LEAVER"].deleted = False  # back (reactivated); PeerLearn learns it once the cache is old
    bot.clock.advance(timedelta(hours=25))
    fourth = world.ask("U_ASKER", "Fourth question #postgres", GENERAL)
    assert requests_of(bot.store, question_of(bot.store, fourth).id)["U_LEAVER"].status == ROUTE_SENT


def test_not_me_asks_the_next_person_once(make_bot):
    bot = make_bot(route_top_n=1)
    world = bot.world
    add_people(world, U_ASKER=BERLIN, U_FIRST=BERLIN, U_SECOND=BERLIN)
    declare(world, "U_FIRST", "#postgres #ops")
    declare(world, "U_SECOND", "#postgres")
    question = world.ask("U_ASKER", "How do I shrink pg_wal? #postgres #ops", GENERAL)
    stored = question_of(bot.store, question)
    [dm] = routing_dms(world, "U_FIRST")
    assert routing_dms(world, "U_SECOND") == []

    world.click("U_FIRST", DECLINE, str(stored.id), channel=dm.channel)
    world.settle()

    [dm] = routing_dms(world, "U_FIRST")
    assert ROUTE_DECLINED_NOTE in dm.plain and buttons(dm) == []
    [second] = routing_dms(world, "U_SECOND")
    assert "How do I shrink pg_wal?" in second.plain
    assert {u: r.status for u, r in requests_of(bot.store, stored.id).items()} == {
        "U_FIRST": ROUTE_DECLINED,
        "U_SECOND": ROUTE_SENT,
    }
    # The next one says no twice (a double click): nobody is left, nobody is asked twice.
    double_click(world, "U_SECOND", DECLINE, str(stored.id), channel=second.channel)
    assert {u: r.status for u, r in requests_of(bot.store, stored.id).items()} == {
        "U_FIRST": ROUTE_DECLINED,
        "U_SECOND": ROUTE_DECLINED,
    }
    assert len(routing_dms(world, "U_FIRST")) == len(routing_dms(world, "U_SECOND")) == 1


def test_ill_take_it_twice_marks_it_once_and_tells_the_thread_once(bot):
    world = bot.world
    add_people(world, U_ASKER=BERLIN, U_TAKER=BERLIN, U_TOKYO=TOKYO)
    declare(world, "U_TAKER", "#postgres")
    declare(world, "U_TOKYO", "#postgres")
    question = world.ask("U_ASKER", "Is my index bloated? #postgres", GENERAL)
    stored = question_of(bot.store, question)
    [dm] = routing_dms(world, "U_TAKER")

    double_click(world, "U_TAKER", TAKE, str(stored.id), channel=dm.channel)

    notes = [m for m in thread(world, question) if "is on it" in m.plain]
    assert len(notes) == 1 and "<@U_TAKER> is on it" in notes[0].plain
    [dm] = routing_dms(world, "U_TAKER")
    assert ROUTE_TAKEN_NOTE in dm.plain and buttons(dm) == []
    requests = requests_of(bot.store, stored.id)
    assert requests["U_TAKER"].status == ROUTE_TAKEN
    assert requests["U_TOKYO"].status == ROUTE_CANCELLED  # someone is on it: the morning DM is not sent
    bot.tick(TOKYO_NINE_TUESDAY)
    assert routing_dms(world, "U_TOKYO") == []


def test_ill_take_it_from_the_app_home(bot):
    world = bot.world
    add_people(world, U_ASKER=BERLIN, U_HOME=BERLIN)
    declare(world, "U_HOME", "#postgres")
    question = world.ask("U_ASKER", "Can I vacuum during peak hours? #postgres", GENERAL)
    stored = question_of(bot.store, question)
    world.open_home("U_HOME")
    world.settle()

    home = world.fake.home_view("U_HOME")  # the Home tab lists it among the questions routed to them
    response = world.click("U_HOME", TAKE, str(stored.id), view_id=home["id"])
    world.settle()

    assert response.status == 200
    assert requests_of(bot.store, stored.id)["U_HOME"].status == ROUTE_TAKEN
    assert [m.plain for m in thread(world, question) if "is on it" in m.plain] != []
    [dm] = routing_dms(world, "U_HOME")  # the DM follows what happened on the Home tab
    assert ROUTE_TAKEN_NOTE in dm.plain
    assert world.fake.calls_to("views.publish", where=lambda c: c.args.get("user_id") == "U_HOME")[1:] != []


def test_ill_take_it_from_an_ephemeral_message(bot):
    world = bot.world
    add_people(world, U_ASKER=BERLIN, U_HELPER=BERLIN)
    question = world.ask("U_ASKER", "Anyone good with pgbouncer? #pgbouncer", GENERAL)
    stored = question_of(bot.store, question)
    # Any surface may offer the button; here an ephemeral shown to someone in the channel.
    world.runtime.bolt_app.client.chat_postEphemeral(
        channel=GENERAL,
        user="U_HELPER",
        text="Can you help?",
        blocks=[actions(button("I'll take it", TAKE, str(stored.id)))],
    )

    world.click("U_HELPER", TAKE, str(stored.id), channel=GENERAL)
    world.settle()

    assert requests_of(bot.store, stored.id)["U_HELPER"].status == ROUTE_TAKEN
    assert ROUTE_TAKEN_NOTE in plain(world.ephemerals("U_HELPER")[-1])
    assert len([m for m in thread(world, question) if "is on it" in m.plain]) == 1


def test_the_asker_cannot_take_their_own_question(bot):
    world = bot.world
    add_people(world, U_ASKER=BERLIN, U_PG=BERLIN)
    declare(world, "U_PG", "#postgres")
    question = world.ask("U_ASKER", "Why is my query slow? #postgres", GENERAL)
    stored = question_of(bot.store, question)
    with bot.store.session() as s:
        outcome = take_question(s, TEAM_ID, stored.id, "U_ASKER", START)
    assert outcome.result == OWN
    assert "U_ASKER" not in requests_of(bot.store, stored.id)


def test_a_topic_nobody_declared_is_said_to_the_asker_and_recorded_as_a_gap(bot):
    world = bot.world
    add_people(world, U_ASKER=BERLIN, U_PG=BERLIN)
    declare(world, "U_PG", "#postgres")

    question = world.ask("U_ASKER", "How do lifetimes work with async? #rust #postgres", GENERAL)

    stored = question_of(bot.store, question)
    assert gaps_of(bot.store, stored.id) == ["rust"]
    [note] = [e for e in world.ephemerals("U_ASKER") if "Nobody has declared" in plain(e)]
    assert "`#rust`" in plain(note) and "`/teach #rust`" in plain(note) and "#postgres" not in plain(note)
    assert len(routing_dms(world, "U_PG")) == 1  # the tag that has an expert is still routed

    alone = world.ask("U_ASKER", "Any Haskell people here? #haskell", GENERAL)
    assert gaps_of(bot.store, question_of(bot.store, alone).id) == ["haskell"]
    assert requests_of(bot.store, question_of(bot.store, alone).id) == {}


def test_a_topic_whose_people_are_all_paused_is_not_a_gap_but_the_asker_hears_it(bot):
    world = bot.world
    add_people(world, U_ASKER=BERLIN, U_AWAY=BERLIN)
    declare(world, "U_AWAY", "#postgres")
    declare(world, "U_AWAY", "pause 2d")

    question = world.ask("U_ASKER", "Who can review my migration? #postgres", GENERAL)

    assert gaps_of(bot.store, question_of(bot.store, question).id) == []
    [note] = [e for e in world.ephemerals("U_ASKER") if "go-to people" in plain(e)]
    assert "`#postgres`" in plain(note) and "try again in 4 h" in plain(note)


def test_a_private_channels_question_only_reaches_its_members(bot):
    world = bot.world
    add_people(world, U_ASKER=BERLIN, U_INSIDE=BERLIN, U_OUTSIDE=BERLIN)
    add_people(world, channel=SECRET, private=True, U_ASKER=BERLIN, U_INSIDE=BERLIN)
    declare(world, "U_INSIDE", "#postgres")
    declare(world, "U_OUTSIDE", "#postgres")

    question = world.ask("U_ASKER", "Our secret schema question #postgres", SECRET)

    assert set(requests_of(bot.store, question_of(bot.store, question).id)) == {"U_INSIDE"}
    assert routing_dms(world, "U_OUTSIDE") == []
    assert all("secret schema" not in m.plain for m in dms(world, "U_OUTSIDE"))


def test_a_daily_summary_person_gets_one_dm_next_morning(bot):
    world = bot.world
    add_people(world, U_ASKER=BERLIN, U_DIGESTER=BERLIN)
    declare(world, "U_DIGESTER", "#postgres")
    with bot.store.session() as s:
        ensure_person(s, TEAM_ID, "U_DIGESTER").notify_mode = NOTIFY_DAILY

    world.ask("U_ASKER", "First daily question #postgres", GENERAL)
    world.ask("U_ASKER", "Second daily question #postgres", GENERAL)
    assert routing_dms(world, "U_DIGESTER") == []

    bot.tick(datetime(2026, 11, 24, 8, 0, tzinfo=UTC))  # Tuesday 09:00 in Berlin
    [summary] = routing_dms(world, "U_DIGESTER")
    assert "2 questions you may know the answer to" in summary.plain
    assert "First daily question" in summary.plain and "Second daily question" in summary.plain
    first_id = buttons(summary)[0][1]
    world.click("U_DIGESTER", TAKE, first_id, channel=summary.channel)
    world.settle()
    [summary] = routing_dms(world, "U_DIGESTER")
    assert ROUTE_TAKEN_NOTE in summary.plain
    assert [action for action, _ in buttons(summary)] == [TAKE, DECLINE]  # the other question still asks


def test_a_disabled_workspace_gets_no_routing(bot):
    world = bot.world
    add_people(world, U_ASKER=BERLIN, U_TOKYO=TOKYO)
    declare(world, "U_TOKYO", "#postgres")
    world.ask("U_ASKER", "Late question #postgres", GENERAL)
    with bot.store.session() as s:
        s.get(Workspace, TEAM_ID).active = False
    assert bot.tick(TOKYO_NINE_TUESDAY).dms_sent == 0
    assert routing_dms(world, "U_TOKYO") == []


# --- pure decisions -------------------------------------------------------------------------------------------


def test_ties_go_to_whoever_had_fewer_dms_lately_and_real_differences_stay():
    def expert(user: str, score: float) -> ScoredExpert:
        return ScoredExpert(user, score, "", expertise=1.0, activity=0.0)

    ranked = [expert("U_A", 2.0), expert("U_B", 1.0), expert("U_C", 1.0), expert("U_D", 0.5)]
    recent = {"U_B": (3, START), "U_C": (1, START), "U_D": (0, None)}
    assert [e.user_id for e in planner.spread_ties(ranked, recent)] == ["U_A", "U_C", "U_B", "U_D"]


def test_dm_counts_follow_each_persons_own_midnight():
    now = datetime(2026, 11, 23, 16, 0, tzinfo=UTC)  # 01:00 Tuesday in Tokyo, 17:00 Monday in Berlin
    sent = {"U_TOKYO": [datetime(2026, 11, 23, 14, 0, tzinfo=UTC)], "U_BERLIN": [datetime(2026, 11, 23, 8, tzinfo=UTC)]}
    load = DMLoad(sent_recently=sent, pending={"U_BERLIN": 1}, recent={})
    people = {u: PersonFacts(u, tz=tz) for u, tz in (("U_TOKYO", TOKYO), ("U_BERLIN", BERLIN))}
    assert load.counts_today(now, people) == {"U_TOKYO": 0, "U_BERLIN": 2}


def test_a_daily_summary_waits_for_the_next_working_morning():
    hours = Availability(BERLIN, 9, 18)
    monday_noon = datetime(2026, 11, 23, 11, 0, tzinfo=UTC)
    assert planner.next_summary_time(monday_noon, hours) == datetime(2026, 11, 24, 8, 0, tzinfo=UTC)
    monday_early = datetime(2026, 11, 23, 5, 0, tzinfo=UTC)
    assert planner.next_summary_time(monday_early, hours) == datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
    friday_noon = datetime(2026, 11, 27, 11, 0, tzinfo=UTC)
    assert planner.next_summary_time(friday_noon, hours) == datetime(2026, 11, 30, 8, 0, tzinfo=UTC)


def test_own_working_hours_win_and_unknown_people_count_as_available():
    settings = Settings(work_start_hour=9, work_end_hour=18)
    assert planner.availability_of(None, settings) is None
    assert planner.availability_of(PersonFacts("U"), settings) is None
    assert planner.availability_of(PersonFacts("U", tz=TOKYO), settings) == Availability(TOKYO, 9, 18)
    own = PersonFacts("U", tz=TOKYO, work_start_hour=22, work_end_hour=6)
    assert planner.availability_of(own, settings) == Availability(TOKYO, 22, 6)
    same = PersonFacts("U", tz=TOKYO, work_start_hour=9, work_end_hour=9)  # invalid: the default applies
    assert planner.availability_of(same, settings) == Availability(TOKYO, 9, 18)


# --- the evidence is read with a few aggregate queries, however many people ---------------------------------


def seed_experts(store, first: int, last: int) -> None:
    """People U_SEED<first>..<last - 1>: each declared #postgres and answered three #postgres #ops questions
    (one accepted, with a helpful vote)."""
    with store.session() as s:
        ensure_workspace(s, TEAM_ID, START)
        for n in range(first, last):
            user = f"U_SEED{n}"
            s.add(Expertise(team_id=TEAM_ID, user_id=user, tag="postgres", declared_at=START))
            s.add(Person(team_id=TEAM_ID, user_id=user, tz=BERLIN, profile_fetched_at=START))
            for k in range(3):
                question = Question(
                    team_id=TEAM_ID,
                    channel_id=GENERAL,
                    asker_id="U_SOMEONE",
                    text=f"seed question {n}-{k}",
                    status="open",
                    message_ts=f"1700000{n:03d}.{k:06d}",
                    request_key=f"seed:{n}:{k}",
                    created_at=START - timedelta(days=k + 1),
                    tags=[
                        QuestionTag(tag="postgres", team_id=TEAM_ID),
                        QuestionTag(tag="ops", team_id=TEAM_ID, position=1),
                    ],
                )
                s.add(question)
                s.flush()
                count_question(s, TEAM_ID, question.tag_names)
                answer = Answer(
                    team_id=TEAM_ID,
                    question_id=question.id,
                    channel_id=GENERAL,
                    ts=f"1700001{n:03d}.{k:06d}",
                    user_id=user,
                    text="an answer",
                    created_at=START - timedelta(days=k),
                )
                s.add(answer)
                s.flush()
                if k == 0:
                    question.accepted_answer_id = answer.id
                    question.status = "resolved"
                    s.add(
                        Vote(
                            team_id=TEAM_ID,
                            channel_id=GENERAL,
                            message_ts=answer.ts,
                            voter_id="U_FAN",
                            reaction="+1",
                            kind="helpful",
                            author_id=user,
                            answer_id=answer.id,
                            created_at=START,
                        )
                    )
    with store.session() as s:  # the rows were written directly, not through the upkeep
        rebuild(s, TEAM_ID)


def evidence_statements(store, now) -> tuple[int, Evidence]:
    statements: list[str] = []

    def count(conn, cursor, statement, parameters, context, executemany):
        statements.append(statement)

    event.listen(store.engine, "before_cursor_execute", count)
    try:
        with store.session() as s:
            evidence = load_evidence(s, TEAM_ID, ["postgres"], "how do I vacuum", now, {"U_ASKER"})
            load_dm_load(s, TEAM_ID, sorted(evidence.user_ids), now)
    finally:
        event.remove(store.engine, "before_cursor_execute", count)
    return len([s for s in statements if s.lstrip().upper().startswith("SELECT")]), evidence


def test_the_evidence_takes_the_same_few_queries_for_3_or_30_people(database_url):
    store = Store.from_url(database_url)
    try:
        seed_experts(store, 0, 3)
        queries_for_3, evidence = evidence_statements(store, START)
        assert len(evidence.user_ids) == 3
        # The ranker's text and hour features describe a person by what they answered lately: their profile.
        profile = evidence.standing["U_SEED0"].profile
        assert profile is not None and (profile.documents, len(profile.minutes)) == (3, 3)
        assert profile.terms["seed"] == (3, 3) and profile.terms["answer"] == (3, 3)
        stats = evidence.tag_stats
        assert (stats.question_count, stats.tag_counts["postgres"], stats.pair_counts[("ops", "postgres")]) == (9, 9, 9)

        standing = evidence.standing["U_SEED0"]  # kept by the upkeep (here: the rebuild after seeding)
        assert (standing.answers, standing.accepted, standing.helpful_votes) == (3, 1, 1)
        assert (standing.tags["postgres"].answers, standing.tags["ops"].accepted) == (3, 1)

        seed_experts(store, 3, 30)
        queries_for_30, evidence = evidence_statements(store, START)
        assert len(evidence.user_ids) == 30
        # declared, learned (+ the excluded's own rows), people, standing (person + tag rows), tags (3), load (3):
        # no answer, question text or tag
        assert queries_for_3 == queries_for_30 == 12
    finally:
        store.dispose()
