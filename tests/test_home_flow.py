"""App Home end to end through the Slack emulator (SQLite and PostgreSQL), and the pure view builder."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from bot import home, stats, stats_render
from bot.messages import home as home_messages
from bot.messages.forms import TEACH_MODAL
from bot.messages.routing import ACTION_DECLINE_QUESTION, ACTION_TAKE_QUESTION
from bot.messages.search import ACTION_HOME_ASK_SEARCHED, ACTION_HOME_SEARCH, Searched
from bot.messages.suggestions import SimilarItem
from bot.messages.working_time import days_text
from models.expert import ROUTE_DECLINED, ROUTE_SENT, ROUTE_TAKEN, Person, RouteRequest
from models.question import Question
from models.stats_rollup import BUCKETS, bucket_of, median_of
from tests.route_helpers import block_texts

GENERAL = "C_GENERAL"
PEOPLE = ("U_ASKER", "U_EXPERT", "U_FAN", "U_ADMIN")


@pytest.fixture
def world(slack):
    for user in PEOPLE:
        slack.add_user(user, is_admin=user == "U_ADMIN", tz="Europe/Berlin" if user == "U_EXPERT" else "UTC")
    slack.add_channel(GENERAL, name="general", members=list(PEOPLE))
    return slack


def open_home(world, user: str) -> dict[str, Any]:
    """`user` opens the Home tab; returns the view PeerLearn published for them."""
    since = world.fake.mark()
    world.open_home(user)
    return world.fake.wait_for("views.publish", since=since, user_id=user).args["view"]


def click_home(world, user: str, action_id: str, value: Any = None) -> dict[str, Any]:
    """`user` clicks (or picks `value` in) a control on their Home tab; returns the re-published view."""
    since = world.fake.mark()
    # On the Home tab itself: the same button may also be in a routing DM.
    response = world.click(user, action_id, value, view_id=world.fake.home_view(user)["id"])
    assert response.status == 200, response.body
    return world.fake.wait_for("views.publish", since=since, user_id=user).args["view"]


def rendered(view: dict[str, Any]) -> str:
    return json.dumps(view, ensure_ascii=False)


def controls(view: dict[str, Any]) -> dict[str, list[Any]]:
    """action_id → the values of the buttons with that id (or a select's initial value, or the values of the
    checkboxes ticked)."""
    found: dict[str, list[Any]] = {}
    for block in view["blocks"]:
        for element in [*block.get("elements", []), block.get("accessory")]:
            if isinstance(element, dict) and element.get("action_id"):
                value = element.get("value") or (element.get("initial_option") or {}).get("value")
                if element["type"] == "checkboxes":
                    value = [option["value"] for option in element.get("initial_options", [])]
                found.setdefault(element["action_id"], []).append(value)
    return found


def question_id(world, text: str) -> int:
    with world.runtime.store.session() as s:
        return s.scalars(select(Question.id).where(Question.text == text)).one()


def person(world, user: str) -> Person | None:
    with world.runtime.store.session() as s:
        return s.get(Person, ("T0001", user))


def test_a_newcomer_sees_their_open_questions_and_what_to_do(world):
    world.ask("U_ASKER", "How do I get VPN access? #it", GENERAL)
    view = open_home(world, "U_ASKER")
    text = rendered(view)
    assert "How do I get VPN access?" in text and "<#C_GENERAL>" in text and "`#it`" in text
    for section in ("My open questions", "Waiting for your expertise", "My topics", "My contributions"):
        assert section in text
    assert "Top helpers in November" in text and "Notifications" in text
    assert "Programme analytics" not in text  # not an admin
    assert controls(view)[home_messages.HOME_NOTIFY_MODE] == ["immediate"]
    assert controls(view)[home_messages.HOME_WORK_START] == ["9"] and controls(view)[home_messages.HOME_WORK_END] == [
        "18"
    ]
    assert "09:00–18:00, Monday to Friday, in your time zone (UTC)" in text
    assert "The hours and days are the workspace's default until you choose yours." in text
    assert controls(view)[home_messages.HOME_WORK_DAYS] == [["0", "1", "2", "3", "4"]]
    # users.info told PeerLearn who they are (time zone, not an admin).
    assert world.fake.calls_to("users.info", user="U_ASKER")
    assert person(world, "U_ASKER").is_admin is False


def test_questions_on_my_topics_and_routed_to_me_wait_with_ill_take_it(world):
    world.command("U_EXPERT", "/teach", "#postgres", GENERAL)
    world.ask("U_ASKER", "How do I vacuum a big table? #postgres", GENERAL)
    world.ask("U_ASKER", "Who owns the staging cluster? #infra", GENERAL)
    world.ask("U_EXPERT", "My own question #postgres", GENERAL)  # not waiting for me: I asked it
    vacuum, staging = (
        question_id(world, "How do I vacuum a big table?"),
        question_id(world, "Who owns the staging cluster?"),
    )
    with world.runtime.store.session() as s:  # routing DMed the expert about a tag they never declared
        s.add(
            RouteRequest(
                team_id="T0001",
                question_id=staging,
                expert_id="U_EXPERT",
                status=ROUTE_SENT,
                send_at=world.clock.now(),
                sent_at=world.clock.now(),
            )
        )
        # Routing (issue 3) may also have DMed the expert about the #postgres question: "Not me" is there too.
        routed = {
            str(qid) for qid in s.scalars(select(RouteRequest.question_id).where(RouteRequest.expert_id == "U_EXPERT"))
        }
    view = open_home(world, "U_EXPERT")
    text = rendered(view)
    assert "How do I vacuum a big table?" in text and "Who owns the staging cluster?" in text
    assert "asked by <@U_ASKER>" in text
    assert sorted(controls(view)[ACTION_TAKE_QUESTION]) == sorted([str(vacuum), str(staging)])
    assert sorted(controls(view)[ACTION_DECLINE_QUESTION]) == sorted(routed | {str(staging)})
    assert "My own question" not in text.split("Waiting for your expertise")[1].split("My topics")[0]

    # Once taken, the staging question waits no more.
    with world.runtime.store.session() as s:
        s.scalars(select(RouteRequest).where(RouteRequest.question_id == staging)).one().status = ROUTE_TAKEN
    assert controls(open_home(world, "U_EXPERT"))[ACTION_TAKE_QUESTION] == [str(vacuum)]


def test_ill_take_it_and_not_me_on_the_home_tab_are_served_by_the_routing_handler(world):
    world.command("U_EXPERT", "/teach", "#postgres", GENERAL)
    world.ask("U_ASKER", "How do I vacuum a big table? #postgres", GENERAL)
    world.ask("U_ASKER", "Why is replication lagging? #postgres", GENERAL)
    vacuum, lag = question_id(world, "How do I vacuum a big table?"), question_id(world, "Why is replication lagging?")
    assert sorted(controls(open_home(world, "U_EXPERT"))[ACTION_TAKE_QUESTION]) == sorted([str(vacuum), str(lag)])

    view = click_home(world, "U_EXPERT", ACTION_TAKE_QUESTION, str(vacuum))  # handlers/actions.py
    with world.runtime.store.session() as s:
        mine = s.scalars(select(RouteRequest).where(RouteRequest.expert_id == "U_EXPERT")).all()
        assert {(r.question_id, r.status) for r in mine if r.question_id == vacuum} == {(vacuum, ROUTE_TAKEN)}
    assert controls(view)[ACTION_TAKE_QUESTION] == [str(lag)]  # the tab was published again

    with world.runtime.store.session() as s:  # routing DMed the expert about the other one
        request = s.scalars(select(RouteRequest).where(RouteRequest.question_id == lag)).one_or_none()
        if request is None:
            request = RouteRequest(team_id="T0001", question_id=lag, expert_id="U_EXPERT", send_at=world.clock.now())
            s.add(request)
        request.status, request.sent_at = ROUTE_SENT, world.clock.now()
    assert controls(open_home(world, "U_EXPERT"))[ACTION_DECLINE_QUESTION] == [str(lag)]
    view = click_home(world, "U_EXPERT", ACTION_DECLINE_QUESTION, str(lag))
    with world.runtime.store.session() as s:
        declined = s.scalars(select(RouteRequest).where(RouteRequest.question_id == lag)).one()
        assert (declined.expert_id, declined.status) == ("U_EXPERT", ROUTE_DECLINED)
    assert ACTION_TAKE_QUESTION not in controls(view)  # nothing waits for them any more
    assert "Nothing waiting" in rendered(view)


def test_topics_are_edited_in_place_and_pause_and_resume_republish_the_tab(world):
    world.command("U_EXPERT", "/teach", "#postgres", GENERAL)
    view = open_home(world, "U_EXPERT")
    assert "You are a go-to person for `#postgres`" in rendered(view)

    since = world.fake.mark()
    assert world.click("U_EXPERT", home_messages.HOME_EDIT_TOPICS).status == 200
    form = world.fake.wait_for("views.open", since=since).args["view"]
    assert form["callback_id"] == TEACH_MODAL and "#postgres" in rendered(form)
    assert world.submit_view("U_EXPERT", TEACH_MODAL, {"topics": "#postgres #k8s"}).status == 200
    world.settle()  # saving the form re-publishes the tab in the background
    assert "`#kubernetes` `#postgres`" in rendered(open_home(world, "U_EXPERT"))

    paused = click_home(world, "U_EXPERT", home_messages.HOME_PAUSE, "7d")
    assert person(world, "U_EXPERT").paused_until == world.clock.now() + timedelta(days=7)
    assert "Paused until Mon 30 Nov 10:00 UTC" in rendered(paused)
    assert home_messages.HOME_RESUME in controls(paused) and home_messages.HOME_PAUSE not in controls(paused)

    resumed = click_home(world, "U_EXPERT", home_messages.HOME_RESUME)
    assert person(world, "U_EXPERT").paused_until is None
    assert "Paused" not in rendered(resumed) and home_messages.HOME_PAUSE in controls(resumed)


def test_notification_preferences_are_stored_and_shown(world):
    open_home(world, "U_EXPERT")
    view = click_home(world, "U_EXPERT", home_messages.HOME_NOTIFY_MODE, "daily")
    assert person(world, "U_EXPERT").notify_mode == "daily"
    assert controls(view)[home_messages.HOME_NOTIFY_MODE] == ["daily"]

    view = click_home(world, "U_EXPERT", home_messages.HOME_WORK_START, "7")
    expert = person(world, "U_EXPERT")
    assert (expert.work_start_hour, expert.work_end_hour) == (7, 18)  # the default end is now theirs too
    assert "07:00–18:00, Monday to Friday, in your time zone (Europe/Berlin)" in rendered(view)
    assert "The days are the workspace's default" in rendered(view)  # only the hours are theirs

    refused = click_home(world, "U_EXPERT", home_messages.HOME_WORK_END, "7")
    assert "can't start and end at the same hour" in rendered(refused)
    assert (person(world, "U_EXPERT").work_start_hour, person(world, "U_EXPERT").work_end_hour) == (7, 18)
    assert controls(refused)[home_messages.HOME_WORK_END] == ["18"]  # the select shows what is stored

    view = click_home(world, "U_EXPERT", home_messages.HOME_WORK_END, "24")
    assert person(world, "U_EXPERT").work_end_hour == 24
    assert "07:00–midnight" in rendered(view) and "same hour" not in rendered(view)
    click_home(world, "U_EXPERT", home_messages.HOME_NOTIFY_MODE, "off")
    assert person(world, "U_EXPERT").notify_mode == "off"


def test_working_days_are_ticked_in_the_home_tab_stored_and_shown(world):
    open_home(world, "U_EXPERT")
    # Sunday ticked, then Friday unticked: each click sends every box ticked at that moment.
    view = click_home(world, "U_EXPERT", home_messages.HOME_WORK_DAYS, ["0", "1", "2", "3", "4", "6"])
    assert person(world, "U_EXPERT").work_days == "012346"
    assert controls(view)[home_messages.HOME_WORK_DAYS] == [["0", "1", "2", "3", "4", "6"]]
    view = click_home(world, "U_EXPERT", home_messages.HOME_WORK_DAYS, ["0", "1", "2", "3", "6"])
    assert person(world, "U_EXPERT").work_days == "01236"
    text = rendered(view)
    assert "09:00–18:00, Sunday to Thursday, in your time zone (Europe/Berlin)" in text
    assert "The hours are the workspace's default" in text
    assert (person(world, "U_EXPERT").work_start_hour, person(world, "U_EXPERT").work_end_hour) == (None, None)

    refused = click_home(world, "U_EXPERT", home_messages.HOME_WORK_DAYS, [])  # every box unticked
    assert "Tick at least one working day" in rendered(refused)
    assert person(world, "U_EXPERT").work_days == "01236"
    assert controls(refused)[home_messages.HOME_WORK_DAYS] == [["0", "1", "2", "3", "6"]]  # what is stored

    view = click_home(world, "U_EXPERT", home_messages.HOME_WORK_START, "8")
    assert "08:00–18:00, Sunday to Thursday, in your time zone (Europe/Berlin)" in rendered(view)
    assert "workspace's default" not in rendered(view)


def test_a_forged_working_day_is_refused(world):
    open_home(world, "U_EXPERT")
    with world.runtime.store.session() as s:
        assert home.set_work_days(s, "T0001", "U_EXPERT", "1,9", world.runtime.services) == "Unknown working day '1,9'."
        assert home.set_work_days(s, "T0001", "U_EXPERT", "x", world.runtime.services) == "Unknown working day 'x'."
    assert person(world, "U_EXPERT").work_days is None


def test_my_contributions_and_the_top_helpers_of_the_month(world):
    question = world.ask("U_ASKER", "How do I rebase? #git", GENERAL)
    answer = world.reply("U_EXPERT", question, "git rebase -i main")
    world.reply("U_FAN", question, "Or merge")
    world.react("U_ASKER", "white_check_mark", GENERAL, answer)
    world.react("U_FAN", "+1", GENERAL, answer)
    world.command("U_EXPERT", "/teach", "#git Use git bisect to find the commit that broke a test", GENERAL)
    world.settle()
    text = rendered(open_home(world, "U_EXPERT"))
    assert "*Answers*\\n1" in text and "*Accepted answers*\\n1" in text
    assert "*Helpful votes received*\\n1" in text and "*Lessons shared*\\n1" in text
    assert "1. <@U_EXPERT>: 1 accepted, 1 voted helpful" in text
    assert "<@U_FAN>:" not in text  # an answer nobody voted for is not a top helper


def test_admins_see_the_programme_analytics(world):
    world.ask("U_ASKER", "How do I scale the cluster? #kubernetes", GENERAL)
    question = world.ask("U_ASKER", "How do I rebase? #git", GENERAL)
    world.clock.advance(timedelta(minutes=12))
    world.reply("U_EXPERT", question, "git rebase -i main")
    world.settle()
    view = open_home(world, "U_ADMIN")
    text = rendered(view)
    assert person(world, "U_ADMIN").is_admin is True
    assert "Programme analytics (last 30 days)" in text
    assert "*Questions asked*\\n2" in text and "*Answered*\\n1 (50%)" in text
    # 12 minutes, as read from the stats rollup's histogram (within its bound: models/stats_rollup.py).
    median = stats_render.duration_text(median_of([1 if k == bucket_of(12 * 60) else 0 for k in range(BUCKETS)]))
    assert f"*Median to first answer*\\n{median}" in text
    assert f"`#git` 1 asked, 100% answered, first answer {median}" in text
    assert "Run a lunch-and-learn on #" in text and "`#kubernetes` (no available go-to person)" in text
    assert "Programme analytics" not in rendered(open_home(world, "U_ASKER"))


def test_a_busy_home_stays_within_slack_limits_and_escapes_questions(world):
    world.command("U_EXPERT", "/teach", "#postgres #git #ops", GENERAL)
    for i in range(12):
        world.ask("U_ASKER", f"Question {i} about <!here> and " + "x" * 400 + " #postgres #git #ops", GENERAL)
    for i in range(8):
        world.ask("U_EXPERT", f"My question {i} #ops", GENERAL)
    view = open_home(world, "U_EXPERT")
    assert len(view["blocks"]) <= 100
    assert "Showing your 5 newest open questions" in rendered(view)
    # Five on my topics, plus up to five routed to me (if routing DMed me about some of them).
    assert home.MAX_ON_TOPICS <= len(controls(view)[ACTION_TAKE_QUESTION]) <= 10
    assert "<!here>" not in rendered(view)  # escaped (the fake also fails the test on an active mention)


def test_home_tab_only_for_the_home_tab(world):
    since = world.fake.mark()
    event = {
        "type": "app_home_opened",
        "user": "U_ASKER",
        "channel": world.fake.im_for("U_ASKER").id,
        "tab": "messages",
    }
    assert world.send_event(event).status == 200
    world.settle()
    assert world.fake.calls_to("views.publish", since=since) == []


# --- the view, pure ------------------------------------------------------------------------------------


def test_home_view_escapes_and_truncates_questions():
    now = datetime(2026, 11, 23, 10, tzinfo=UTC)
    line = home_messages.QuestionLine("Why <!here> or @here? " + "y" * 5000, "C1", ("git",), 7, "U2")
    data = home_messages.HomeData(user_id="U1", now=now, open_questions=[line], on_topics=[line], topics=["git"])
    view = home_messages.home_view(data)
    text = rendered(view)
    assert "Why &lt;!here&gt; or @\u200bhere?" in text and "<!here>" not in text and "`#git`" in text
    question_sections = [b["text"]["text"] for b in view["blocks"] if "Why" in b.get("text", {}).get("text", "")]
    assert len(question_sections) == 2  # mine, and waiting for my expertise
    assert all(len(t) < home_messages.QUESTION_CHARS + 100 and "y…" in t for t in question_sections)
    assert controls(view)[ACTION_TAKE_QUESTION] == ["7"]


@pytest.mark.parametrize(
    ("days", "said"),
    [
        ({0, 1, 2, 3, 4}, "Monday to Friday"),
        ({6, 0, 1, 2, 3}, "Sunday to Thursday"),
        ({4, 5, 6, 0}, "Friday to Monday"),
        (set(range(7)), "every day"),
        ({0, 2, 4}, "Monday, Wednesday and Friday"),
        ({5, 6}, "Saturday and Sunday"),
        ({2}, "Wednesday"),
        ({0, 1, 3, 4}, "Monday, Tuesday, Thursday and Friday"),
    ],
)
def test_working_days_as_said(days, said):
    assert days_text(days) == said


def test_home_view_keeps_to_100_blocks_whatever_it_is_given():
    now = datetime(2026, 11, 23, 10, tzinfo=UTC)
    lines = [home_messages.QuestionLine(f"q{i}", "C1", (), i, "U2") for i in range(80)]
    tags = [stats.TagFigures(f"t{i}", stats.Figures(asked=3)) for i in range(40)]
    report = stats.Report("T1", now - timedelta(days=30), now, stats.Figures(asked=120), tags=tags)
    data = home_messages.HomeData(user_id="U1", now=now, routed=lines, on_topics=lines, admin=report, notice="note")
    assert len(home_messages.home_view(data)["blocks"]) == 100


def test_home_view_shows_a_search_at_its_top_escaped_truncated_and_within_100_blocks():
    now = datetime(2026, 11, 23, 10, tzinfo=UTC)
    found = SimilarItem(
        "question", 3, "Why <!here>? " + "z" * 5000, "U2", "Use <b> " + "w" * 5000, "U3", "https://x/p1"
    )
    searched = Searched("vacuum <!here>", [found] * 5)
    lines = [home_messages.QuestionLine(f"q{i}", "C1", (), i, "U2") for i in range(80)]
    view = home_messages.home_view(home_messages.HomeData(user_id="U1", now=now, on_topics=lines, search=searched))
    text = "\n".join(block_texts(view))  # what Slack shows (a button's value is not shown)
    assert len(view["blocks"]) == 100
    assert text.index("Answered by <@U3>") < text.index("Waiting for your expertise")  # at the top
    assert "<!here>" not in text and "<b>" not in text and "z…" in text and "w…" in text
    assert controls(view)[ACTION_HOME_ASK_SEARCHED] == ["vacuum <!here>"]  # a value, never shown as mrkdwn
    assert ACTION_HOME_SEARCH in controls(view)  # to search again
    plain_home = home_messages.home_view(home_messages.HomeData(user_id="U1", now=now))
    assert ACTION_HOME_SEARCH in controls(plain_home) and ACTION_HOME_ASK_SEARCHED not in controls(plain_home)
