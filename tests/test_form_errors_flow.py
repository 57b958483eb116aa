"""Forms answer every invalid input under its field, as Slack shows it (`response_action: errors`), and nothing
is stored until it is right (issue 18, item 9). The /ask and /teach forms in #general, on SQLite and
PostgreSQL."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError

from bot.messages.errors import DATABASE_DOWN
from bot.messages.forms import ASK_BLOCK_QUESTION, ASK_BLOCK_TAGS, ASK_MODAL, TEACH_BLOCK_TOPICS, TEACH_MODAL
from models.expert import Expertise
from models.question import Question

GENERAL = "C_GENERAL"


@pytest.fixture
def world(slack):
    for user in ("U_ASKER", "U_EXPERT"):
        slack.add_user(user)
    slack.add_channel(GENERAL, name="general", members=["U_ASKER", "U_EXPERT"])
    return slack


def count(world, model) -> int:
    with world.runtime.store.session() as s:
        return int(s.scalar(select(func.count()).select_from(model)))


def field_errors(response) -> dict[str, str]:
    ack = response.json()
    assert ack["response_action"] == "errors", ack
    return ack["errors"]


def test_the_ask_form_shows_each_problem_under_its_field_then_posts_once_it_is_right(world):
    world.command("U_ASKER", "/ask", "", GENERAL)
    world.fake.wait_for("views.open")

    refused = world.submit_view("U_ASKER", ASK_MODAL, {"question": "#postgres", "tags": "#ops, !!!, c++ ??"})

    assert field_errors(refused) == {
        ASK_BLOCK_QUESTION: "Write your question here; its tags go in the Tags field.",
        ASK_BLOCK_TAGS: "Not a tag: !!!, ??. Tags are words like #postgres or #ci-cd.",
    }
    assert [m["callback_id"] for m in world.fake.open_modals("U_ASKER")] == [ASK_MODAL]  # still open
    world.settle()
    assert count(world, Question) == 0

    since = world.fake.mark()
    done = world.submit_view("U_ASKER", ASK_MODAL, {"question": "How do I vacuum?", "tags": "#ops, c++"})
    assert done.status == 200 and not done.body.strip()
    assert "`#ops` `#c++`" in world.wait_post(GENERAL, since=since).plain


def test_the_ask_form_says_what_is_wrong_in_the_forms_own_terms(world):
    world.command("U_ASKER", "/ask", "", GENERAL)
    world.fake.wait_for("views.open")
    refused = world.submit_view("U_ASKER", ASK_MODAL, {"question": "🤔🤔🤔 ?!"})
    assert field_errors(refused) == {
        ASK_BLOCK_QUESTION: "Your question needs a few words, not only emoji or punctuation."
    }


def test_the_topics_form_names_what_is_not_a_tag(world):
    world.command("U_EXPERT", "/teach", "", GENERAL)
    world.fake.wait_for("views.open")
    refused = world.submit_view("U_EXPERT", TEACH_MODAL, {"topics": "#postgres, ???"})
    assert field_errors(refused) == {TEACH_BLOCK_TOPICS: "Not a tag: ???. Tags are words like #postgres or #ci-cd."}


def test_the_topics_form_says_the_database_is_down_under_the_field(world, monkeypatch):
    def refused_connection(*args, **kwargs):
        raise OperationalError("INSERT INTO expertise …", {}, ConnectionRefusedError("connection refused"))

    monkeypatch.setattr("bot.teach.declare_topics", refused_connection)
    world.command("U_EXPERT", "/teach", "", GENERAL)
    world.fake.wait_for("views.open")

    down = world.submit_view("U_EXPERT", TEACH_MODAL, {"topics": "#postgres"})

    assert field_errors(down) == {TEACH_BLOCK_TOPICS: DATABASE_DOWN}
    world.settle()
    assert count(world, Expertise) == 0
