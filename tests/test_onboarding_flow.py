"""Onboarding buddies, end to end on SQLite and PostgreSQL: an admin names the onboarding channel (recorded); a
colleague volunteers with `/teach buddy`; a newcomer joins (the event delivered twice) and is paired once with
the volunteer whose working hours overlap theirs; both get an introduction with the first-week checklist; the
newcomer's questions reach their buddy first, until their first four weeks are over. Nobody free: the channel is
told once and the newcomer is paired when a volunteer appears. Non-admins change nothing; `team_join` is the
other way in; the checklist is the admins' (escaped once). Slack is the emulator, time is frozen (Monday
2026-11-23 10:00 UTC)."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from slack_sdk import WebClient
from sqlalchemy import select

from bot import export, onboarding
from bot.messages import onboarding as words
from bot.messages.blocks import MAX_MESSAGE_BLOCKS, SECTION_LIMIT
from bot.messages.onboarding import HOME_EDIT_ONBOARDING, ONBOARDING_MODAL
from bot.playground.emulator.fake_api import BOT_TOKEN, TEAM_ID
from bot.playground.emulator.signing import block_actions_payload, user_ref
from bot.playground.emulator.workspace import APP_ID, BOT_USER_ID, TEAM_DOMAIN
from bot.routing.planner import Availability
from models.onboarding import PAIRING_PAIRED, PAIRING_SKIPPED, PAIRING_WAITING, BuddyPairing, BuddyVolunteer
from models.workspace_settings import SettingsChange
from tests.route_helpers import GENERAL, add_people, bot_maker, declare, dms, plain, question_of, requests_of
from tests.slack.fixtures import START

BERLIN, AUCKLAND, NEW_YORK = "Europe/Berlin", "Pacific/Auckland", "America/New_York"
ONBOARDING = "C_ONBOARDING"


@pytest.fixture
def make_bot(fake_slack, database_url, slack_clock):
    yield from bot_maker(fake_slack, database_url, slack_clock)


@pytest.fixture
def bot(make_bot):
    bot = make_bot()
    world = bot.world
    world.add_user("U_ADMIN", tz=BERLIN, is_admin=True)
    add_people(world, U_ADMIN=BERLIN, U_MEMBER=BERLIN, U_BUDDY=BERLIN, U_FAR=AUCKLAND, U_EXPERT=BERLIN)
    world.add_user("U_NEW", real_name="Nora Newcomer", tz=BERLIN)
    world.add_channel(ONBOARDING, name="welcome", members=["U_ADMIN"])
    return bot


# --- what people do ------------------------------------------------------------------------------------------


def open_home(world, user: str) -> dict[str, Any]:
    since = world.fake.mark()
    world.open_home(user)
    return world.fake.wait_for("views.publish", since=since, user_id=user).args["view"]


def text_of(view: dict[str, Any]) -> str:
    return json.dumps(view, ensure_ascii=False)


def set_onboarding(world, user: str, **values: Any) -> dict[str, Any] | None:
    """`user` clicks "Edit onboarding" on their Home tab, changes `values` and presses Save; the errors shown."""
    open_home(world, user)
    since = world.fake.mark()
    assert world.click(user, HOME_EDIT_ONBOARDING, view_id=world.fake.home_view(user)["id"]).status == 200
    world.fake.wait_for("views.open", since=since)
    response = world.submit_view(user, ONBOARDING_MODAL, values)
    assert response.status == 200, response.body
    world.settle()
    return (response.json() if response.body.startswith("{") else {}).get("errors")


def teach(world, user: str, text: str) -> str:
    response = world.command(user, "/teach", text, GENERAL)
    assert response.status == 200, response.body
    world.settle()
    return response.body


def join(world, user: str, channel: str = ONBOARDING, **delivery: Any):
    """Slack says `user` joined `channel` (pass `event_id` and `retry_num` to redeliver)."""
    if channel in world.fake.channels:
        world.fake.channels[channel].members.add(user)
    response = world.send_event({"type": "member_joined_channel", "user": user, "channel": channel}, **delivery)
    assert response.status == 200
    world.settle()
    return response


def pairings(bot) -> list[tuple[str, str | None, str]]:
    with bot.store.session() as s:
        return [
            (p.newcomer_id, p.buddy_id, p.status) for p in s.scalars(select(BuddyPairing).order_by(BuddyPairing.id))
        ]


def changes(bot) -> list[tuple[str, str, str, str]]:
    with bot.store.session() as s:
        return [
            (c.user_id, c.setting, c.old_value, c.new_value)
            for c in s.scalars(select(SettingsChange).order_by(SettingsChange.id))
        ]


def intros(world, user: str) -> list[str]:
    return [m.plain for m in dms(world, user) if "Your first week" in m.plain]


def onboarding_tick(bot, at: datetime | None = None) -> None:
    if at is not None:
        bot.clock.set(at)
    onboarding.tick(bot.runtime.services, bot.runtime.bolt_app.client, bot.clock.now())
    bot.world.settle()


# --- the conversation --------------------------------------------------------------------------------------


def test_a_newcomer_is_paired_once_introduced_with_the_checklist_and_asks_their_buddy_first(bot):
    world = bot.world
    declare(world, "U_EXPERT", "#postgres")

    # The admin names the onboarding channel in App Home; the change is recorded.
    home = text_of(open_home(world, "U_ADMIN"))
    assert "*Onboarding channel*\\nnone" in home and HOME_EDIT_ONBOARDING in home
    assert set_onboarding(world, "U_ADMIN", onboarding_channel=ONBOARDING) is None
    assert changes(bot) == [("U_ADMIN", "onboarding_channel", "", ONBOARDING)]
    home = text_of(world.fake.home_view("U_ADMIN"))
    assert "Onboarding settings saved." in home and f"*Onboarding channel*\\n<#{ONBOARDING}>" in home
    assert f"<@U_ADMIN>: onboarding channel none → <#{ONBOARDING}>" in home

    # Two volunteers: one in Berlin (the newcomer's hours), one in Auckland (no overlap on a working day).
    assert "up to 2 newcomers" in teach(world, "U_BUDDY", "buddy up to 2")
    assert "up to 1 newcomer at a time" in teach(world, "U_FAR", "buddy 1")

    # The newcomer joins; Slack delivers the event twice, and they leave and join again: one pairing.
    first = join(world, "U_NEW")
    join(world, "U_NEW", event_id=first.meta["event_id"], retry_num=1)
    join(world, "U_NEW")
    assert pairings(bot) == [("U_NEW", "U_BUDDY", PAIRING_PAIRED)]

    # Both got one introduction with the first-week checklist.
    [to_newcomer] = intros(world, "U_NEW")
    [to_buddy] = intros(world, "U_BUDDY")
    assert "<@U_BUDDY> is your onboarding buddy" in to_newcomer and "<@U_NEW> just joined" in to_buddy
    for item in words.DEFAULT_CHECKLIST:
        assert item in to_newcomer and item in to_buddy
    assert intros(world, "U_FAR") == []
    onboarding_tick(bot)  # the tick finds nothing owed: nothing is sent twice
    assert len(intros(world, "U_NEW")) == len(intros(world, "U_BUDDY")) == 1

    # App Home: each one's own line.
    assert "Your onboarding buddy is <@U_BUDDY>" in text_of(open_home(world, "U_NEW"))
    assert "You're the onboarding buddy of <@U_NEW>" in text_of(open_home(world, "U_BUDDY"))

    # The newcomer's question reaches their buddy first, then the experts as usual; "why you" says why.
    add_people(world, U_NEW=BERLIN)
    question = world.ask("U_NEW", "How do I vacuum a big table? #postgres", GENERAL)
    requests = requests_of(bot.store, question_of(bot.store, question).id)
    assert set(requests) == {"U_BUDDY", "U_EXPERT"}
    assert requests["U_BUDDY"].id < requests["U_EXPERT"].id
    assert requests["U_BUDDY"].reason == "you are Nora Newcomer's onboarding buddy"
    [buddy_dm] = [m for m in dms(world, "U_BUDDY") if "asked in" in m.plain]
    assert "Why you: you are Nora Newcomer's onboarding buddy" in buddy_dm.plain
    told = plain(world.ephemerals("U_NEW")[-1])
    assert "I've asked your onboarding buddy <@U_BUDDY>." in told and "I've asked <@U_EXPERT>, who knows" in told

    # Four weeks later their first weeks are over: questions go to the experts only.
    bot.clock.set(START + timedelta(weeks=4))
    later = world.ask("U_NEW", "How do I read an EXPLAIN plan? #postgres", GENERAL)
    assert set(requests_of(bot.store, question_of(bot.store, later).id)) == {"U_EXPERT"}
    assert "Your onboarding buddy" not in text_of(open_home(world, "U_NEW"))


def test_a_buddy_outside_their_hours_is_asked_in_their_morning_and_an_untagged_question_reaches_them(bot):
    world = bot.world
    world.add_user("U_NY", tz=NEW_YORK)
    add_people(world, U_NY=NEW_YORK, U_NEW=NEW_YORK)
    world.fake.users["U_NEW"].tz = NEW_YORK
    assert set_onboarding(world, "U_ADMIN", onboarding_channel=ONBOARDING) is None
    teach(world, "U_NY", "buddy")
    bot.clock.set(START + timedelta(hours=5))  # 15:00 UTC, 10:00 in New York
    join(world, "U_NEW")
    assert pairings(bot) == [("U_NEW", "U_NY", PAIRING_PAIRED)]

    bot.clock.set(datetime(2026, 11, 24, 3, 0, tzinfo=UTC))  # 22:00 in New York
    question = world.ask("U_NEW", "Where do I find the staging credentials?", GENERAL)
    [request] = requests_of(bot.store, question_of(bot.store, question).id).values()
    assert request.expert_id == "U_NY" and request.sent_at is None
    assert request.send_at == datetime(2026, 11, 24, 14, 0, tzinfo=UTC)  # Tuesday 09:00 in New York
    told = plain(world.ephemerals("U_NEW")[-1])
    assert "Your onboarding buddy <@U_NY> starts their day" in told and words.NO_TAGS_BUDDY_NOTE in told
    assert "haven't asked anyone" not in told

    # The daily cap (3) holds for a buddy too: the fourth question of the night waits for the experts alone.
    asked = [
        set(requests_of(bot.store, question_of(bot.store, world.ask("U_NEW", text, GENERAL)).id))
        for text in ("Who approves expenses?", "Where is the VPN guide?", "How do I book a room?")
    ]
    assert asked == [{"U_NY"}, {"U_NY"}, set()]


def test_nobody_free_the_channel_is_told_once_and_the_newcomer_is_paired_when_a_volunteer_appears(bot):
    world = bot.world
    assert set_onboarding(world, "U_ADMIN", onboarding_channel=ONBOARDING) is None
    teach(world, "U_FAR", "buddy")  # in Auckland: no working hour in common with Berlin
    join(world, "U_NEW")
    assert pairings(bot) == [("U_NEW", None, PAIRING_WAITING)]
    told = [m.plain for m in world.messages(ONBOARDING) if "Nobody is free to be your onboarding buddy" in m.plain]
    assert len(told) == 1 and "<@U_NEW>" in told[0] and "/teach buddy" in told[0]
    onboarding_tick(bot, START + timedelta(minutes=1))
    onboarding_tick(bot, START + timedelta(minutes=2))
    assert len([m for m in world.messages(ONBOARDING) if "Nobody is free" in m.plain]) == 1
    assert "PeerLearn is looking for an onboarding buddy for you" in text_of(open_home(world, "U_NEW"))

    assert "Thank you!" in teach(world, "U_BUDDY", "buddy")
    assert pairings(bot) == [("U_NEW", "U_BUDDY", PAIRING_PAIRED)]
    assert len(intros(world, "U_NEW")) == len(intros(world, "U_BUDDY")) == 1

    # A full buddy takes nobody else; `/teach buddy off` stops new pairings.
    teach(world, "U_BUDDY", "buddy 1")
    world.add_user("U_SECOND", tz=BERLIN)
    join(world, "U_SECOND")
    assert pairings(bot)[1] == ("U_SECOND", None, PAIRING_WAITING)
    assert "no longer an onboarding buddy volunteer" in teach(world, "U_BUDDY", "buddy off")
    with bot.store.session() as s:
        assert s.get(BuddyVolunteer, (TEAM_ID, "U_BUDDY")).active is False


def test_what_a_stopped_process_left_owed_is_finished_once_by_the_tick_of_any_replica(bot, make_bot):
    world = bot.world
    assert set_onboarding(world, "U_ADMIN", onboarding_channel=ONBOARDING) is None
    teach(world, "U_BUDDY", "buddy")
    # The join was acked and stored, then the process stopped before pairing (the lazy step never ran).
    with bot.store.session() as s:
        assert onboarding.joined_channel(s, TEAM_ID, "U_NEW", ONBOARDING, START)
    replica = make_bot()
    onboarding_tick(bot, START + timedelta(minutes=1))
    onboarding_tick(replica, START + timedelta(minutes=2))
    assert pairings(bot) == [("U_NEW", "U_BUDDY", PAIRING_PAIRED)]
    assert len(intros(world, "U_NEW")) == len(intros(world, "U_BUDDY")) == 1

    # Paired, then stopped before the introduction: the tick sends it, once.
    world.add_user("U_OTHER", tz=BERLIN)
    with bot.store.session() as s:
        assert onboarding.joined_channel(s, TEAM_ID, "U_OTHER", ONBOARDING, START)
        [waiting] = [p for p in s.scalars(select(BuddyPairing)) if p.newcomer_id == "U_OTHER"]
        waiting.buddy_id, waiting.status = "U_BUDDY", PAIRING_PAIRED
    onboarding_tick(replica)
    onboarding_tick(bot)
    assert len(intros(world, "U_OTHER")) == 1 and len(intros(world, "U_BUDDY")) == 2


def test_someone_who_is_not_an_admin_cannot_change_the_onboarding_settings(bot):
    world = bot.world
    view = open_home(world, "U_MEMBER")
    assert HOME_EDIT_ONBOARDING not in text_of(view) and "Onboarding channel" not in text_of(view)

    # A forged click: the tab says no, no form opens.
    since, view = world.fake.mark(), world.fake.home_view("U_MEMBER")
    payload = block_actions_payload(
        team={"id": TEAM_ID, "domain": TEAM_DOMAIN},
        user=user_ref("U_MEMBER", "member", TEAM_ID),
        api_app_id=APP_ID,
        actions=[
            {"action_id": HOME_EDIT_ONBOARDING, "block_id": "home_onboarding", "type": "button", "action_ts": "1"}
        ],
        trigger_id=world.fake.new_trigger_id("U_MEMBER"),
        container={"type": "view", "view_id": view["id"]},
        view=view,
    )
    assert world.sender.interactivity(payload).status == 200
    world.settle()
    assert world.fake.calls_to("views.open", since=since) == []
    assert words.NOT_AN_ADMIN in text_of(world.fake.home_view("U_MEMBER"))

    # The form, opened for them somehow, and submitted: refused, nothing stored.
    client = WebClient(base_url=world.fake.base_url, token=BOT_TOKEN)
    client.views_open(trigger_id=world.fake.new_trigger_id("U_MEMBER"), view=words.onboarding_modal(None, False, None))
    response = world.submit_view("U_MEMBER", ONBOARDING_MODAL, {"onboarding_channel": ONBOARDING})
    assert response.json()["errors"] == {"onboarding_checklist": words.NOT_AN_ADMIN}
    assert changes(bot) == []
    join(world, "U_NEW")
    assert pairings(bot) == []


def test_new_members_of_the_workspace_get_a_buddy_when_the_admins_turn_it_on(bot):
    world = bot.world
    teach(world, "U_BUDDY", "buddy")
    newcomer = {"id": "U_JOINER", "name": "joiner", "real_name": "Jo Iner", "tz": BERLIN}
    world.add_user("U_JOINER", tz=BERLIN)
    world.send_event({"type": "team_join", "user": newcomer})
    world.settle()
    assert pairings(bot) == []  # off by default

    assert set_onboarding(world, "U_ADMIN", onboarding_team_join=["on"]) is None
    assert changes(bot) == [("U_ADMIN", "onboarding_team_join", "off", "on")]
    world.add_user("U_LATER", tz=BERLIN)
    event = {"type": "team_join", "user": {**newcomer, "id": "U_LATER", "name": "later"}}
    first = world.send_event(event)
    world.send_event(event, event_id=first.meta["event_id"], retry_num=1)
    world.send_event({"type": "team_join", "user": {"id": "U_ROBOT", "name": "robot", "is_bot": True}})
    world.send_event({"type": "team_join", "user": {"id": "U_GONE", "name": "gone", "deleted": True}})
    world.settle()
    assert pairings(bot) == [("U_LATER", "U_BUDDY", PAIRING_PAIRED)]
    assert len(intros(world, "U_LATER")) == 1

    # Nobody volunteers any more and there is no onboarding channel: the admins are told, once.
    teach(world, "U_BUDDY", "buddy off")
    world.add_user("U_THIRD", tz=BERLIN)
    world.send_event({"type": "team_join", "user": {**newcomer, "id": "U_THIRD", "name": "third"}})
    world.settle()
    onboarding_tick(bot, START + timedelta(minutes=1))
    [told] = [m.plain for m in dms(world, "U_ADMIN") if "nobody is free" in m.plain]
    assert "<@U_THIRD> just joined the workspace" in told and "/teach buddy" in told

    # The bot itself joining the onboarding channel, or a bot Slack knows as one, is nobody to onboard.
    assert set_onboarding(world, "U_ADMIN", onboarding_channel=ONBOARDING) is None
    join(world, BOT_USER_ID)
    world.add_user("U_HELPERBOT", is_bot=True)
    join(world, "U_HELPERBOT")
    assert pairings(bot)[1:] == [("U_THIRD", None, PAIRING_WAITING), ("U_HELPERBOT", None, PAIRING_SKIPPED)]


def test_the_admins_checklist_is_escaped_once_and_every_change_is_recorded(bot):
    world = bot.world
    checklist = "Meet the team & say hi <!here>\n\n@channel read the handbook\nSet up <your> laptop"
    assert set_onboarding(world, "U_ADMIN", onboarding_channel=ONBOARDING, onboarding_checklist=checklist) is None
    assert [c[1] for c in changes(bot)] == ["onboarding_channel", "onboarding_checklist"]
    assert changes(bot)[1][3] == checklist.replace("\n\n", "\n")
    teach(world, "U_BUDDY", "buddy")
    join(world, "U_NEW")
    [intro] = [m for m in dms(world, "U_NEW") if "Your first week" in m.plain]
    raw = json.dumps(intro.blocks)
    assert "<!here>" not in raw and "<!channel>" not in raw and "&lt;your&gt;" in raw and "team &amp; say" in raw
    assert "handbook" in intro.plain and "Set up" in intro.plain
    assert words.DEFAULT_CHECKLIST[0] not in intro.plain

    # Too long: said under the field, nothing saved.
    errors = set_onboarding(world, "U_ADMIN", onboarding_checklist="\n".join(f"step {n}" for n in range(20)))
    assert errors == {"onboarding_checklist": words.TOO_MANY_ITEMS}
    # Back to the default: recorded as such; saving the same again records nothing.
    assert set_onboarding(world, "U_ADMIN", onboarding_checklist="\n".join(words.DEFAULT_CHECKLIST)) is None
    assert changes(bot)[-1][1:] == ("onboarding_checklist", checklist.replace("\n\n", "\n"), "")
    count = len(changes(bot))
    assert set_onboarding(world, "U_ADMIN") is None
    assert len(changes(bot)) == count
    assert "Nothing was changed." in text_of(world.fake.home_view("U_ADMIN"))


def test_export_holds_the_onboarding_and_forget_user_removes_the_person(bot):
    world = bot.world
    assert set_onboarding(world, "U_ADMIN", onboarding_channel=ONBOARDING) is None
    teach(world, "U_BUDDY", "buddy")
    join(world, "U_NEW")
    with bot.store.session() as s:
        out = io.StringIO()
        export.export_json(s, TEAM_ID, out, START)
    exported = json.loads(out.getvalue())
    assert [r["channel_id"] for r in exported["onboarding_settings"]] == [ONBOARDING]
    assert [(r["user_id"], r["capacity"]) for r in exported["buddy_volunteers"]] == [("U_BUDDY", 2)]
    assert [(r["newcomer_id"], r["buddy_id"]) for r in exported["buddy_pairings"]] == [("U_NEW", "U_BUDDY")]

    with bot.store.session() as s:
        report = export.forget_user(s, TEAM_ID, "U_BUDDY")
        assert report.changed["onboarding as a buddy (anonymised)"] == 1
    with bot.store.session() as s:
        report = export.forget_user(s, TEAM_ID, "U_NEW")
        assert report.changed["onboarding as a newcomer (deleted)"] == 1
        assert export.find_user_id(s, TEAM_ID, "U_BUDDY") == [] and export.find_user_id(s, TEAM_ID, "U_NEW") == []
    assert pairings(bot) == []
    with bot.store.session() as s:
        assert s.get(BuddyVolunteer, (TEAM_ID, "U_BUDDY")) is None


# --- the pure parts --------------------------------------------------------------------------------------------


def test_buddy_commands_are_understood_or_explained():
    assert onboarding.parse_buddy("buddy") == onboarding.DEFAULT_CAPACITY
    assert onboarding.parse_buddy("Buddy up to 3") == 3
    assert onboarding.parse_buddy("buddy up to 3 newcomers") == 3
    assert onboarding.parse_buddy("buddy 1") == 1
    assert onboarding.parse_buddy("buddy off") is None and onboarding.parse_buddy("buddy stop") is None
    for wrong in ("buddy 0", "buddy 11", "buddy lots", "buddy up to", "buddy ３"):
        with pytest.raises(onboarding.InvalidBuddy, match="/teach buddy off"):
            onboarding.parse_buddy(wrong)
    assert onboarding.is_buddy_command("buddy up to 2") and not onboarding.is_buddy_command("#buddy-system tips")
    assert not onboarding.is_buddy_command("buddy #onboarding Pair newcomers with someone in their time zone")


MONDAY = datetime(2026, 11, 23, 0, 0, tzinfo=UTC)


def test_working_hours_overlap_across_time_zones():
    berlin = Availability(BERLIN, 9, 18)
    assert onboarding.weekly_overlap_hours(berlin, berlin, MONDAY) == 45
    london = Availability("Europe/London", 9, 18)
    assert onboarding.weekly_overlap_hours(berlin, london, MONDAY) == 40  # an hour apart, five days
    assert onboarding.weekly_overlap_hours(berlin, Availability(AUCKLAND, 9, 18), MONDAY) == 0
    night = Availability(BERLIN, 22, 6)  # shifts past midnight, Monday to Friday nights
    # 05:00-06:00 Tuesday to Friday; Saturday morning's hour is not an early worker's day, Monday's follows no shift.
    assert onboarding.weekly_overlap_hours(night, Availability(BERLIN, 5, 9), MONDAY) == 4
    weekend = Availability(BERLIN, 9, 18, frozenset({5, 6}))
    assert onboarding.weekly_overlap_hours(berlin, weekend, MONDAY) == 0


def test_the_buddy_is_the_volunteer_with_room_who_overlaps_most_then_the_least_busy():
    berlin, london = Availability(BERLIN, 9, 18), Availability("Europe/London", 9, 18)
    v = onboarding.Volunteer
    assert onboarding.choose_buddy(berlin, [v("U_L", london, 0, 2), v("U_B", berlin, 1, 2)], MONDAY) == "U_B"
    assert onboarding.choose_buddy(berlin, [v("U_L", london, 0, 2), v("U_B", berlin, 2, 2)], MONDAY) == "U_L"
    assert onboarding.choose_buddy(berlin, [v("U_Y", berlin, 1, 3), v("U_Z", berlin, 0, 3)], MONDAY) == "U_Z"
    assert onboarding.choose_buddy(berlin, [v("U_A", Availability(AUCKLAND, 9, 18), 0, 2)], MONDAY) is None
    assert onboarding.choose_buddy(berlin, [], MONDAY) is None


def test_messages_stay_within_block_kit_limits():
    long = "\n".join("x" * 500 for _ in range(15))
    message = words.introduction("U_NEW", "U_BUDDY", long, 4, to_newcomer=True)
    assert len(message.blocks) <= MAX_MESSAGE_BLOCKS
    assert all(len(b["text"]["text"]) <= SECTION_LIMIT for b in message.blocks if b["type"] == "section")
    assert "…" in message.blocks[1]["text"]["text"]
    shown = words.OnboardingShown(buddy_id="U_B", newcomers=["U_X"], admin=True, channel_id="C1")
    assert len(words.onboarding_home(shown)) <= 7
    assert len(words.onboarding_modal("C1", True, long)["blocks"]) <= 100
