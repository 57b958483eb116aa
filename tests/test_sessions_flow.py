"""Issue 20, section 4: lunch-and-learn sessions, end to end through the Slack emulator (SQLite and PostgreSQL).

Hana (Berlin) announces `/teach session #git Rebasing without fear tomorrow 12:30` in #general; it goes to #general
and to #dev, where #git questions were asked, never to the private #secret (where one was too) or to #random.
Ana signs up (twice: one sign-up), Bruno can't make it; 15 minutes before, two replicas tick and Ana gets one
reminder; after the hour Hana is asked for her notes, which become a lesson that `/ask search` finds.
"""

from __future__ import annotations

import io
import json
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from bot import export, sessions
from bot.config import Settings
from bot.messages.sessions import (
    ACTION_CANCEL,
    ACTION_CANT_MAKE_IT,
    ACTION_INVITE,
    ACTION_SHARE_NOTES,
    ACTION_SIGN_UP,
    NOTES_MODAL,
)
from bot.playground.emulator.fake_api import BOT_TOKEN
from bot.runtime.wiring import build_runtime
from models.expert import FORGOTTEN_USER_ID
from models.lesson import Lesson
from models.sessions import LearningSession, SessionInvite, SessionSignup

GENERAL, DEV, SECRET, RANDOM = "C_GENERAL", "C_DEV", "C_SECRET", "C_RANDOM"
TEAM = "T0001"
EVERYONE = ["U_HANA", "U_ANA", "U_BRUNO", "U_SAM"]
# The clock starts Monday 2026-11-23 10:00 UTC; "tomorrow 12:30" in Berlin (UTC+1) is Tuesday 11:30 UTC.
STARTS = datetime(2026, 11, 24, 11, 30, tzinfo=UTC)
SLACK_DATE = f"<!date^{int(STARTS.timestamp())}^{{date_short_pretty}} at {{time}}|Tue 24 Nov 2026 11:30 UTC>"


@pytest.fixture
def world(slack):
    slack.add_user("U_HANA", tz="Europe/Berlin")
    for user in ("U_ANA", "U_BRUNO", "U_SAM"):
        slack.add_user(user, tz="America/New_York")
    slack.add_user("U_MAYA", tz="America/New_York", is_admin=True)
    slack.add_channel(GENERAL, name="general", members=[*EVERYONE, "U_MAYA"])
    slack.add_channel(DEV, name="dev", members=EVERYONE)
    slack.add_channel(RANDOM, name="random", members=EVERYONE)
    slack.add_channel(SECRET, name="secret", private=True, members=["U_SAM", "U_HANA"])
    slack.ask("U_ANA", "How do I squash my last three commits? #git", DEV)
    slack.ask("U_SAM", "How do I undo a pushed merge in the payroll repo? #git", SECRET)
    slack.ask("U_BRUNO", "Which lunch place is open on Mondays? #food", RANDOM)
    slack.settle()
    return slack


def announcements(world, channel: str) -> list[dict]:
    return [
        message
        for message in world.fake.messages(channel)
        if any(b.get("block_id", "").startswith("session_") for b in message.get("blocks", []))
    ]


def said(message: dict) -> str:
    return message.get("text", "") + json.dumps(message.get("blocks", []), ensure_ascii=False)


def announce(world, text: str = "#git Rebasing without fear tomorrow 12:30", channel: str = GENERAL) -> int:
    response = world.command("U_HANA", "/teach", world.typed(f"session {text}"), channel)
    assert response.status == 200 and response.body == "", response.body
    world.settle()
    with world.runtime.store.session() as s:
        return s.scalars(select(LearningSession.id).order_by(LearningSession.id.desc())).first()


def tick(runtime, now: datetime) -> sessions.TickReport:
    return sessions.tick(runtime.services, runtime.bolt_app.client, now)


def test_a_session_is_announced_in_the_channels_that_asked_and_people_sign_up_once(world):
    session_id = announce(world)

    # In #general (where Hana ran it) and #dev (a #git question), in each reader's own time zone.
    for channel in (GENERAL, DEV):
        [post] = announcements(world, channel)
        assert "Rebasing without fear" in said(post) and SLACK_DATE in said(post) and "<@U_HANA>" in said(post)
        assert "0 signed up" in said(post)
    assert announcements(world, SECRET) == [] and announcements(world, RANDOM) == []
    [told] = [e for e in world.ephemerals("U_HANA") if "Announced" in e.get("text", "")]
    assert "<#C_GENERAL>" in told["text"] and "<#C_DEV>" in told["text"] and SECRET not in told["text"]

    since = world.fake.mark()
    world.click("U_ANA", ACTION_SIGN_UP, str(session_id), channel=DEV)
    world.click("U_ANA", ACTION_SIGN_UP, str(session_id), channel=DEV)  # a double click, or Slack's redelivery
    world.click("U_BRUNO", ACTION_CANT_MAKE_IT, str(session_id), channel=GENERAL)
    world.settle()
    with world.runtime.store.session() as s:
        signups = {u.user_id: u.going for u in s.scalars(select(SessionSignup))}
    assert signups == {"U_ANA": True, "U_BRUNO": False}
    for channel in (GENERAL, DEV):
        [post] = announcements(world, channel)
        assert "1 signed up · 1 can't make it" in said(post)
    assert world.fake.calls_to("chat.update", since=since)  # the counts were redrawn in place
    assert any("You're signed up" in e.get("text", "") for e in world.ephemerals("U_ANA"))


def test_the_reminder_goes_once_across_two_replicas_and_the_notes_become_a_lesson(
    world, fake_slack, database_url, slack_clock
):
    session_id = announce(world)
    world.click("U_ANA", ACTION_SIGN_UP, str(session_id), channel=DEV)
    world.click("U_BRUNO", ACTION_CANT_MAKE_IT, str(session_id), channel=DEV)
    world.settle()
    other = build_runtime(
        Settings(bot_token=BOT_TOKEN, database_url=database_url, slack_api_url=fake_slack.base_url),
        clock=slack_clock,
    )
    try:
        assert tick(world.runtime, STARTS - timedelta(minutes=16)).reminded == 0  # not yet
        since = fake_slack.mark()
        soon = STARTS - timedelta(minutes=14)
        start = threading.Barrier(2)

        def replica(runtime):  # both tick at the same moment, twice each
            start.wait(timeout=10)
            return [tick(runtime, soon) for _ in range(2)]

        with ThreadPoolExecutor(2) as pool:
            reports = [r for found in pool.map(replica, (world.runtime, other)) for r in found]
        assert sum(r.reminded for r in reports) == 1
        reminder = world.wait_dm("U_ANA", since=since)
        assert "Rebasing without fear" in reminder.text or "Rebasing without fear" in json.dumps(reminder.blocks)
        dms = [c for c in fake_slack.calls_to("chat.postMessage", since=since) if c.ok]
        assert len(dms) == 1  # Bruno can't make it: no reminder for him

        assert tick(other, STARTS + timedelta(minutes=59)).notes_asked == 0  # still running
        since = fake_slack.mark()
        after = STARTS + timedelta(hours=1, minutes=1)
        assert sum(tick(runtime, after).notes_asked for runtime in (other, world.runtime, other)) == 1
    finally:
        other.close()
    asked = world.wait_dm("U_HANA", since=since)
    assert "Share notes" in json.dumps(asked.blocks)

    slack_clock.set(after)
    world.click("U_HANA", ACTION_SHARE_NOTES, str(session_id))
    world.fake.wait_for("views.open")
    since = world.fake.mark()
    notes = "Slides and recording: https://example.com/rebase. Interactive rebase squashes commits; reflog undoes."
    response = world.submit_view("U_HANA", NOTES_MODAL, {"notes": notes})
    assert response.status == 200 and not response.body.strip()
    lesson_post = world.wait_post(GENERAL, since=since)
    assert "Interactive rebase squashes commits" in lesson_post.text + json.dumps(lesson_post.blocks)
    world.settle()
    with world.runtime.store.session() as s:
        [lesson] = s.scalars(select(Lesson)).all()
        assert lesson.author_id == "U_HANA" and lesson.tag_names == ["git"] and "Rebasing without fear" in lesson.text
        assert s.get(LearningSession, session_id).lesson_id == lesson.id

    # "Share notes" again: they are saved already, no second form or lesson; the lesson is found by /ask search.
    opened = len(world.fake.calls_to("views.open"))
    world.click("U_HANA", ACTION_SHARE_NOTES, str(session_id))
    world.settle()
    assert len(world.fake.calls_to("views.open")) == opened
    with world.runtime.store.session() as s:
        assert s.scalar(select(func.count()).select_from(Lesson)) == 1
    before = len(world.ephemerals("U_BRUNO"))
    world.command("U_BRUNO", "/ask", "search interactive rebase squashes commits", GENERAL)
    world.settle()
    [found] = world.ephemerals("U_BRUNO")[before:]
    assert "Interactive rebase squashes commits" in said(found)


@pytest.mark.parametrize(
    ("when", "expected"),
    [
        ("#git Rebasing without fear someday soon", "couldn't read when"),
        ("#git Rebasing without fear today 9:00", "has passed"),
        ("#git tomorrow 12:30", "title"),
        ("Rebasing without fear tomorrow 12:30", "one #tag"),
    ],
)
def test_a_bad_time_gets_a_friendly_answer_with_examples_and_nothing_is_stored(world, when, expected):
    response = world.command("U_HANA", "/teach", world.typed(f"session {when}"), GENERAL)
    assert response.status == 200
    body = response.json()
    assert expected in body["text"]  # an ack's text: only the host sees it
    assert "tomorrow 12:30" in body["text"] or "thu 12:30" in body["text"]
    world.settle()
    with world.runtime.store.session() as s:
        assert s.scalars(select(LearningSession)).all() == []
    assert announcements(world, GENERAL) == []


def test_the_host_lists_and_cancels_and_attendees_are_told_once(world):
    session_id = announce(world, "#git Rebasing without fear thu 12:30 for 45m")
    world.click("U_ANA", ACTION_SIGN_UP, str(session_id), channel=DEV)
    world.settle()

    listed = world.command("U_ANA", "/teach", "sessions", GENERAL).json()
    assert "Rebasing without fear" in said(listed) and ACTION_CANCEL not in said(listed)  # not Ana's to cancel
    listed = world.command("U_HANA", "/teach", "session", GENERAL).json()
    assert "(45 min)" in said(listed) and ACTION_CANCEL in said(listed)
    world.fake.show_command_ack("U_HANA", GENERAL, listed)  # Slack shows the ack's body to her, buttons and all

    since = world.fake.mark()
    world.click("U_HANA", ACTION_CANCEL, str(session_id), channel=GENERAL)
    world.settle()
    told = world.wait_dm("U_ANA", since=since)
    assert "was cancelled" in json.dumps(told.blocks)
    for channel in (GENERAL, DEV):
        [post] = [m for m in world.fake.messages(channel) if "Cancelled" in m.get("text", "")]
        assert "Sign me up" not in said(post)
    assert tick(world.runtime, world.clock.now()).told_cancelled == 0  # told once, not again by the tick
    assert "No lunch-and-learn sessions coming up" in said(world.command("U_ANA", "/teach", "sessions", GENERAL).json())


def test_a_session_from_a_private_channel_stays_there(world):
    response = world.command("U_HANA", "/teach", world.typed("session #payroll Closing the month fri 12:00"), SECRET)
    assert response.status == 200
    world.settle()
    assert len(announcements(world, SECRET)) == 1
    assert all(announcements(world, c) == [] for c in (GENERAL, DEV, RANDOM))
    # Nobody outside #secret sees it listed; the host does.
    assert "Closing the month" not in said(world.command("U_ANA", "/teach", "sessions", GENERAL).json())
    assert "Closing the month" in said(world.command("U_HANA", "/teach", "sessions", SECRET).json())


def test_a_knowledge_gap_is_proposed_to_admins_and_invite_dms_the_top_experts_once(world):
    # Nobody declared #food (a knowledge gap in the admin's analytics), but Bruno's answer on it was accepted.
    question = world.ask("U_ANA", "Where do we order team lunch? #food", RANDOM)
    reply = world.reply("U_BRUNO", question, "The deli on the corner takes orders for 20 people by noon.")
    world.react("U_ANA", "white_check_mark", RANDOM, reply)
    world.settle()
    world.clock.advance(timedelta(hours=1))
    world.open_home("U_MAYA")
    world.settle()
    home = json.dumps(world.fake.home_view("U_MAYA"))
    assert "Propose a session" in home and ACTION_INVITE in home and "`#food`" in home

    since = world.fake.mark()
    world.click("U_MAYA", ACTION_INVITE, "food")
    invited = world.wait_dm("U_BRUNO", since=since)
    assert "lunch-and-learn on `#food`" in json.dumps(invited.blocks)
    world.settle()
    world.click("U_MAYA", ACTION_INVITE, "food")  # again: nobody is DMed twice
    world.settle()
    dms = [c for c in world.fake.calls_to("chat.postMessage", since=since) if c.ok]
    assert len(dms) == 1
    with world.runtime.store.session() as s:
        assert [(i.tag, i.expert_id, i.invited_by) for i in s.scalars(select(SessionInvite))] == [
            ("food", "U_BRUNO", "U_MAYA")
        ]
    assert "Already invited" in json.dumps(world.fake.home_view("U_MAYA"))

    # Once Bruno announces a session on #food, it is no longer proposed, and everyone's Home lists it.
    world.command("U_BRUNO", "/teach", world.typed("session #food Ordering lunch for 20 wed 12:00"), RANDOM)
    world.settle()
    world.open_home("U_MAYA")
    world.settle()
    home = world.fake.home_view("U_MAYA")
    invites = [
        e.get("value") for b in home["blocks"] if (e := b.get("accessory") or {}).get("action_id") == ACTION_INVITE
    ]
    assert invites == ["git"]  # #git is still a gap nobody has run a session on
    assert "Ordering lunch for 20" in json.dumps(home)


def test_the_digest_proposes_a_session_on_a_knowledge_gap_until_one_is_announced(world):
    def preview() -> str:
        before = len(world.ephemerals("U_ANA"))
        world.command("U_ANA", "/ask", "digest preview", DEV)
        world.settle()
        return "\n".join(said(e) for e in world.ephemerals("U_ANA")[before:])

    world.clock.advance(timedelta(hours=1))
    assert "Nobody has run a session on `#git`: invite an expert" in preview()
    announce(world)
    assert "Nobody has run a session on" not in preview()


def test_sessions_are_exported_and_forget_user_leaves_no_trace(world):
    session_id = announce(world)
    world.click("U_ANA", ACTION_SIGN_UP, str(session_id), channel=DEV)
    world.settle()
    store, now = world.runtime.store, world.clock.now()
    with store.session() as s:
        s.add(SessionInvite(team_id=TEAM, tag="git", expert_id="U_ANA", invited_by="U_HANA", created_at=now))

    out = io.StringIO()
    with store.session() as s:
        counts = export.export_json(s, TEAM, out, now)
    assert counts["sessions"] == 1 and counts["session_signups"] == 1 and counts["session_invites"] == 1
    assert counts["session_posts"] == 2
    exported = json.loads(out.getvalue())
    assert exported["sessions"][0]["title"] == "Rebasing without fear"
    assert exported["session_signups"][0]["user_id"] == "U_ANA"

    for person in ("U_ANA", "U_HANA"):
        with store.session() as s:
            report = export.forget_user(s, TEAM, person)  # raises ForgetIncomplete if their id were left anywhere
            assert export.find_user_id(s, TEAM, person) == []
        assert report.total
    with store.session() as s:
        hosted = s.get(LearningSession, session_id)
        assert (hosted.host_id, hosted.title) == (FORGOTTEN_USER_ID, export.REDACTED_TEXT)
        assert s.scalars(select(SessionSignup)).all() == [] and s.scalars(select(SessionInvite)).all() == []


def test_the_playground_shows_an_upcoming_session_to_sign_up_for(no_slack_env):
    from bot.clock import FrozenClock
    from bot.playground.server import Playground

    playground = Playground(Settings(), clock=FrozenClock(STARTS - timedelta(days=1)), scheduler=False).start()
    try:
        playground.world.settle()
        [post] = [m for m in playground.fake.messages("C_ENGINEERING") if "Vacuum without tears" in m.get("text", "")]
        assert "Sign me up" in said(post) and "<@U_BERLIN>" in said(post)
        session_id = post["blocks"][-1]["elements"][0]["value"]
        playground.click("U_NEWCOMER", ACTION_SIGN_UP, session_id, channel="C_ENGINEERING")
        playground.world.settle()
        [post] = [m for m in playground.fake.messages("C_ENGINEERING") if "Vacuum without tears" in m.get("text", "")]
        assert "1 signed up" in said(post)
    finally:
        playground.stop()


def test_announcements_a_stopped_process_left_owed_go_out_once_from_the_tick(world):
    """The ack stored the session (and what it owes), then the process stopped before posting: the tick posts."""
    from bot.session_time import Scheduled

    with world.runtime.store.session() as s:
        row = sessions.create_session(
            s,
            team_id=TEAM,
            host_id="U_HANA",
            tag="git",
            scheduled=Scheduled("Bisect in practice", STARTS, timedelta(hours=1)),
            channel_id=GENERAL,
            request_key="session:lost",
            now=world.clock.now(),
        )
        session_id = row.id
    assert announcements(world, GENERAL) == [] and announcements(world, DEV) == []
    assert tick(world.runtime, world.clock.now()).announced == 1
    assert tick(world.runtime, world.clock.now()).announced == 0
    for channel in (GENERAL, DEV):
        [post] = announcements(world, channel)
        assert "Bisect in practice" in said(post) and str(session_id) in said(post)


def test_a_session_announced_from_a_direct_message_keeps_its_notes_where_it_was_announced(world):
    response = world.command("U_HANA", "/teach", world.typed("session #git Bisect in practice tomorrow 12:30"))
    assert response.status == 200 and response.body == ""
    world.settle()
    [post] = announcements(world, DEV)
    session_id = int(post["blocks"][-1]["elements"][0]["value"])
    assert announcements(world, GENERAL) == []
    tick(world.runtime, STARTS + timedelta(hours=2))
    world.clock.set(STARTS + timedelta(hours=2))
    world.click("U_HANA", ACTION_SHARE_NOTES, str(session_id))
    world.fake.wait_for("views.open")
    since = world.fake.mark()
    world.submit_view("U_HANA", NOTES_MODAL, {"notes": "git bisect run ./test.sh finds the bad commit by itself."})
    lesson_post = world.wait_post(DEV, since=since)
    assert "git bisect run" in lesson_post.plain
    world.settle()
