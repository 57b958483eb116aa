"""The caps on tags, the same in the slash commands and their forms (SQLite and PostgreSQL): at most MAX_TAGS on a
question or a lesson, at most MAX_TOPICS topics per person; beyond, the same friendly words, in an ephemeral or
on the form's field (`response_action: errors`), and nothing is stored."""

from __future__ import annotations

import json
import time

import pytest
from sqlalchemy import func, select

from bot.messages.forms import ASK_BLOCK_TAGS, ASK_MODAL, TEACH_BLOCK_TOPICS, TEACH_MODAL
from bot.playground.emulator.world import SlackWorld
from models.expert import Expertise
from models.lesson import Lesson
from models.question import Question

GENERAL = "C_GENERAL"
MAX_TAGS = 10  # bot.text.MAX_TAGS
MAX_TOPICS = 20  # bot.text.MAX_TOPICS
TEN_THOUSAND = " ".join(f"#topic{i}" for i in range(10_000))


@pytest.fixture
def world(slack: SlackWorld) -> SlackWorld:
    slack.add_user("U_ASKER")
    slack.add_channel(GENERAL, name="general", members=["U_ASKER"])
    return slack


def tags(count: int, prefix: str = "t") -> str:
    return " ".join(f"#{prefix}{i}" for i in range(count))


def stored(world: SlackWorld, model: type) -> int:
    with world.runtime.store.session() as session:
        return int(session.scalar(select(func.count()).select_from(model)) or 0)


def told(world: SlackWorld, response) -> str:
    """What the person was told: the ack's ephemeral, or one sent through the response_url afterwards."""
    world.settle()
    return (response.body or "") + json.dumps(world.ephemerals("U_ASKER"))


def open_form(world: SlackWorld, command: str) -> None:
    since = world.fake.mark()
    world.command("U_ASKER", command, "", GENERAL)
    world.fake.wait_for("views.open", since=since)


def test_the_ask_form_takes_as_many_tags_as_ask(world):
    open_form(world, "/ask")
    started = time.monotonic()
    refused = world.submit_view("U_ASKER", ASK_MODAL, {"question": "Why is it slow?", "tags": TEN_THOUSAND})
    assert time.monotonic() - started < 3  # within Slack's 3 s (it once outlasted the front's forward timeout)
    assert refused.json() == {
        "response_action": "errors",
        "errors": {
            ASK_BLOCK_TAGS: f"That's 10,000 tags; a question can have at most {MAX_TAGS}. "
            "Keep the ones that say best what it is about."
        },
    }
    eleven = world.submit_view("U_ASKER", ASK_MODAL, {"question": "Why is it slow?", "tags": tags(11)})
    assert "That's 11 tags" in eleven.json()["errors"][ASK_BLOCK_TAGS]
    world.settle()
    assert stored(world, Question) == 0

    assert world.submit_view("U_ASKER", ASK_MODAL, {"question": "Why?", "tags": tags(MAX_TAGS)}).status == 200
    world.settle()
    assert stored(world, Question) == 1


def test_ask_says_the_same_about_too_many_tags(world):
    response = world.command("U_ASKER", "/ask", "Why is it slow? " + tags(11), GENERAL)
    assert "That's 11 tags; a question can have at most 10." in told(world, response)
    assert stored(world, Question) == 0


def test_the_topics_form_takes_at_most_max_topics(world):
    open_form(world, "/teach")
    refused = world.submit_view("U_ASKER", TEACH_MODAL, {"topics": TEN_THOUSAND})
    assert refused.json() == {
        "response_action": "errors",
        "errors": {
            TEACH_BLOCK_TOPICS: f"That would make 10,000 topics; one person can be a go-to person for at "
            f"most {MAX_TOPICS}. Keep those you most want to be asked about."
        },
    }
    assert stored(world, Expertise) == 0
    assert world.submit_view("U_ASKER", TEACH_MODAL, {"topics": tags(MAX_TOPICS)}).status == 200
    assert stored(world, Expertise) == MAX_TOPICS


def test_teach_has_the_same_caps(world):
    too_many = world.command("U_ASKER", "/teach", tags(MAX_TOPICS + 1), GENERAL)
    assert f"That would make {MAX_TOPICS + 1} topics" in told(world, too_many)
    assert stored(world, Expertise) == 0

    assert world.command("U_ASKER", "/teach", tags(15, "a"), GENERAL).status == 200
    more = world.command("U_ASKER", "/teach", tags(6, "b"), GENERAL)  # 21 with the 15 declared
    assert "That would make 21 topics" in told(world, more) and "nothing was added" in told(world, more)
    assert stored(world, Expertise) == 15

    lesson = world.command("U_ASKER", "/teach", tags(11, "c") + " Use git bisect to find the commit", GENERAL)
    lesson_text = told(world, lesson)
    assert "That's 11 tags; a lesson can have at most 10." in lesson_text
    assert stored(world, Lesson) == 0
