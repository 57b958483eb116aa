"""App Home and private channels, end to end through the Slack emulator (SQLite and PostgreSQL).

Nothing from a private channel reaches someone who cannot read it: the Home tab lists a private channel's
questions (their text, channel and asker) only to its members, as Slack lists them when the tab is built,
and "I'll take it" on such a question is refused to anyone else, with nothing posted in its thread.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from sqlalchemy import select

from bot.messages.routing import ACTION_TAKE_QUESTION
from bot.playground.emulator.workspace import BOT_USER_ID
from bot.playground.emulator.world import SlackWorld
from models.expert import ROUTE_TAKEN, RouteRequest
from models.question import Question

GENERAL = "C_GENERAL"
SECRET = "G_SECRET"
SECRET_TEXT = "Is the merger plan safe to discuss?"
PUBLIC_TEXT = "Which index makes the orders report fast?"


@pytest.fixture
def world(slack: SlackWorld) -> SlackWorld:
    for user in ("U_ASKER", "U_MEMBER", "U_OUTSIDER"):
        slack.add_user(user)
    slack.add_channel(GENERAL, name="general", members=["U_ASKER", "U_MEMBER", "U_OUTSIDER"])
    slack.add_channel(SECRET, name="secret", private=True, members=["U_ASKER", "U_MEMBER"])
    for user in ("U_MEMBER", "U_OUTSIDER"):
        assert slack.command(user, "/teach", "#postgres", GENERAL).status == 200
    slack.settle()
    return slack


def open_home(world: SlackWorld, user: str) -> dict[str, Any]:
    since = world.fake.mark()
    world.open_home(user)
    return world.fake.wait_for("views.publish", since=since, user_id=user).args["view"]


def shown(view: dict[str, Any]) -> str:
    return json.dumps(view, ensure_ascii=False)


def take_buttons(view: dict[str, Any]) -> list[str]:
    """The question ids of the view's "I'll take it" buttons."""
    found = []
    for block in view["blocks"]:
        for element in [*block.get("elements", []), block.get("accessory")]:
            if isinstance(element, dict) and element.get("action_id") == ACTION_TAKE_QUESTION:
                found.append(element["value"])
    return found


def question_id(world: SlackWorld, text: str) -> int:
    with world.runtime.store.session() as session:
        return session.scalars(select(Question.id).where(Question.text == text)).one()


def test_questions_from_a_private_channel_are_listed_only_to_its_members(world):
    world.ask("U_ASKER", SECRET_TEXT + " #postgres", SECRET)
    world.ask("U_ASKER", PUBLIC_TEXT + " #postgres", GENERAL)
    secret = question_id(world, SECRET_TEXT)

    view = open_home(world, "U_OUTSIDER")
    outsider = shown(view)
    assert PUBLIC_TEXT in outsider
    assert SECRET_TEXT not in outsider
    assert SECRET not in outsider
    assert take_buttons(view) == [str(question_id(world, PUBLIC_TEXT))]

    member = shown(open_home(world, "U_MEMBER"))
    assert PUBLIC_TEXT in member and SECRET_TEXT in member and f"<#{SECRET}>" in member
    assert SECRET_TEXT in shown(open_home(world, "U_ASKER"))  # their own question, in a channel they are in

    # Routed to someone who has left the channel since: no longer listed to them either, nor to the asker.
    with world.runtime.store.session() as session:
        session.add(
            RouteRequest(team_id="T0001", question_id=secret, expert_id="U_OUTSIDER", send_at=world.clock.now())
        )
    world.fake.channels[SECRET].members.discard("U_ASKER")
    assert SECRET_TEXT not in shown(open_home(world, "U_OUTSIDER"))
    assert SECRET_TEXT not in shown(open_home(world, "U_ASKER"))


def test_a_question_is_private_until_slack_says_its_channel_is_public(world):
    world.ask("U_ASKER", PUBLIC_TEXT + " #postgres", GENERAL)
    with world.runtime.store.session() as session:  # as stored before the post said what the channel is
        session.scalars(select(Question)).one().channel_private = True
    world.fake.channels[GENERAL].members.discard("U_OUTSIDER")
    assert PUBLIC_TEXT not in shown(open_home(world, "U_OUTSIDER"))


def test_ill_take_it_in_a_private_channel_one_is_not_in_is_refused_and_nothing_is_posted(world):
    world.fake.channels[SECRET].members.add("U_OUTSIDER")  # they were a member when their tab was drawn
    world.ask("U_ASKER", SECRET_TEXT + " #postgres", SECRET)
    question = question_id(world, SECRET_TEXT)
    view = open_home(world, "U_OUTSIDER")
    assert SECRET_TEXT in shown(view)
    view = world.fake.home_view("U_OUTSIDER")  # as Slack holds it (with its id)
    world.fake.channels[SECRET].members.discard("U_OUTSIDER")  # then they left the channel
    with world.runtime.store.session() as session:
        before = {r.expert_id: r.status for r in session.scalars(select(RouteRequest))}

    since = world.fake.mark()
    clicked = world.click("U_OUTSIDER", ACTION_TAKE_QUESTION, str(question), view_id=view["id"])
    assert clicked.status == 200
    republished = world.fake.wait_for("views.publish", since=since, user_id="U_OUTSIDER").args["view"]
    world.settle()
    assert "private channel you're not a member of" in shown(republished)
    assert SECRET_TEXT not in shown(republished)
    with world.runtime.store.session() as session:
        after = {r.expert_id: r.status for r in session.scalars(select(RouteRequest))}
    assert after == before  # nothing stored for them, nobody's DM cancelled
    thread = world.fake.messages(SECRET, thread_ts=world.messages(SECRET)[0].ts)[1:]
    assert [m for m in thread if m.get("user") == BOT_USER_ID] == []

    # A member may take it: the thread is told.
    since = world.fake.mark()
    open_home(world, "U_MEMBER")
    member_view = world.fake.home_view("U_MEMBER")
    assert world.click("U_MEMBER", ACTION_TAKE_QUESTION, str(question), view_id=member_view["id"]).status == 200
    world.settle()
    with world.runtime.store.session() as session:
        taken = session.scalars(select(RouteRequest).where(RouteRequest.expert_id == "U_MEMBER")).one()
        assert taken.status == ROUTE_TAKEN
    assert world.wait_post(SECRET, since=since, thread_ts=world.messages(SECRET)[0].ts)
