"""/teach end to end: topics, pauses, the topics form and lessons (SQLite and PostgreSQL)."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from models.expert import Expertise, Person
from models.lesson import Lesson
from models.question import Vote

GENERAL = "C_GENERAL"


@pytest.fixture
def world(slack):
    for user in ("U_EXPERT", "U_FAN"):
        slack.add_user(user)
    slack.add_channel(GENERAL, name="general", members=["U_EXPERT", "U_FAN"])
    return slack


def said(response) -> str:
    payload = response.json() or {}
    return payload.get("text", "") + json.dumps(payload.get("blocks", []))


def topics(world, user="U_EXPERT"):
    with world.runtime.store.session() as s:
        return sorted(s.scalars(select(Expertise.tag).where(Expertise.user_id == user)))


def test_declaring_listing_and_removing_topics(world):
    response = world.command("U_EXPERT", "/teach", "#Postgres #k8s", GENERAL)
    assert "go-to person for `#postgres` `#kubernetes`" in said(response)
    assert topics(world) == ["kubernetes", "postgres"]

    again = world.command("U_EXPERT", "/teach", "#postgres", GENERAL)
    assert "Nothing new" in said(again)
    assert topics(world) == ["kubernetes", "postgres"]

    assert "`#kubernetes` `#postgres`" in said(world.command("U_EXPERT", "/teach", "list", GENERAL))
    removed = world.command("U_EXPERT", "/teach", "remove #k8s", GENERAL)
    assert "Removed `#kubernetes`" in said(removed)
    assert topics(world) == ["postgres"]
    assert "was not your topic" in said(world.command("U_EXPERT", "/teach", "remove #golang", GENERAL))
    world.settle()
    assert world.fake.calls_to("chat.postMessage") == []  # topics are private business: nothing is posted


def test_pause_and_resume(world):
    world.command("U_EXPERT", "/teach", "#postgres", GENERAL)
    response = world.command("U_EXPERT", "/teach", "pause 7d", GENERAL)
    assert "Paused" in said(response) and "2026-11-30" in said(response)
    with world.runtime.store.session() as s:
        person = s.get(Person, ("T0001", "U_EXPERT"))
        assert person.paused_until == world.clock.now().replace(day=30)
    assert "paused until" in said(world.command("U_EXPERT", "/teach", "list", GENERAL))
    assert "Welcome back" in said(world.command("U_EXPERT", "/teach", "resume", GENERAL))
    with world.runtime.store.session() as s:
        assert s.get(Person, ("T0001", "U_EXPERT")).paused_until is None


def test_the_topics_form_edits_topics_in_place(world):
    world.command("U_EXPERT", "/teach", "#postgres #ops", GENERAL)
    world.command("U_EXPERT", "/teach", "", GENERAL)
    opened = world.fake.wait_for("views.open")
    assert opened.args["view"]["callback_id"] == "teach_modal"
    assert "#ops #postgres" in json.dumps(opened.args["view"])

    since = world.fake.mark()
    response = world.submit_view("U_EXPERT", "teach_modal", {"topics": "#ops #terraform"})
    assert response.status == 200 and not response.body.strip()
    assert topics(world) == ["ops", "terraform"]
    home = world.fake.wait_for("views.publish", since=since, user_id="U_EXPERT")  # the Home tab shows them
    assert "#terraform" in json.dumps(home.args["view"])


def test_the_topics_form_refuses_non_tags(world):
    world.command("U_EXPERT", "/teach", "", GENERAL)
    world.fake.wait_for("views.open")
    response = world.submit_view("U_EXPERT", "teach_modal", {"topics": "#ok --nope--"})
    assert response.json()["response_action"] == "errors"
    assert topics(world) == []


def test_a_lesson_is_posted_stored_and_voted_on(world):
    since = world.fake.mark()
    response = world.command(
        "U_EXPERT", "/teach", "#git Use git bisect to find the commit that broke a test <!here>", GENERAL
    )
    assert response.status == 200
    posted = world.wait_post(GENERAL, since=since)
    assert "shares a lesson" in posted.plain and "git bisect" in posted.plain and "`#git`" in posted.plain
    assert "<!here>" not in json.dumps(posted.raw)
    world.settle()
    with world.runtime.store.session() as s:
        lesson = s.scalars(select(Lesson)).one()
        assert (lesson.message_ts, lesson.channel_private, lesson.tag_names) == (posted.ts, False, ["git"])
        assert lesson.text.startswith("Use git bisect")

    world.react("U_FAN", "+1", GENERAL, posted.ts)
    world.react("U_EXPERT", "+1", GENERAL, posted.ts)  # no self-votes
    world.settle()
    with world.runtime.store.session() as s:
        votes = s.scalars(select(Vote)).all()
        assert [(v.voter_id, v.author_id, v.lesson_id) for v in votes] == [("U_FAN", "U_EXPERT", lesson.id)]


def test_a_lesson_where_the_bot_is_missing_is_explained(world):
    world.add_channel("C_PRIV", name="priv", private=True, members=["U_EXPERT"], bot_member=False)
    world.command("U_EXPERT", "/teach", "#git Always write a failing test first", "C_PRIV")
    world.settle()
    notes = json.dumps(world.ephemerals("U_EXPERT"))
    assert "/invite @PeerLearn" in notes and "Always write a failing test first" in notes


def test_teach_mistakes_get_a_friendly_answer(world):
    response = world.command("U_EXPERT", "/teach", "Use git bisect", GENERAL)
    assert "at least one #tag" in said(response)
    world.settle()
    assert topics(world) == []
