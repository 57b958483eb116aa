"""What people type is what everyone reads, everywhere PeerLearn shows it (issue 18, item 5).

Slack sends command and message text escaped (`&lt;`, `&amp;`) and a modal's text raw; PeerLearn stores what
the person wrote and escapes it once on the way out. Each test is a conversation in #general, on SQLite and
PostgreSQL: people type `a < b && c > d` (through `world.typed`, as a Slack client sends it) and every surface
shows exactly that (`Message.shown`: the mrkdwn as a Slack client displays it). A link someone types as text
(`<https://evil.example|innocent>`) stays text: it never becomes a link that hides where it goes.
"""

from __future__ import annotations

import io
import json

import pytest
from sqlalchemy import select

from bot.export import export_json
from bot.messages.forms import ASK_MODAL
from bot.messages.suggestions import ACTION_SIMILAR_STILL_NEED_HELP
from bot.playground.emulator.fake_api import TEAM_ID
from bot.playground.emulator.transcript import as_shown
from models.lesson import Lesson
from models.question import Answer, Question
from tests.route_helpers import GENERAL, add_people, bot_maker, buttons, declare, question_of, routing_dms

BERLIN = "Europe/Berlin"
QUESTION = "Is a < b && c > d here, or is <https://evil.example|innocent> a link?"
ANSWER = "Only if a < b && c > d: see https://example.com/docs?a=1&b=2 for the <details>."
LESSON = "Compare with a < b && c > d, never with <!here>-style tricks & such."
LINK_ENTITY = "<https://evil.example"  # the start of a link Slack would render; typed text must never make one


@pytest.fixture
def make_bot(fake_slack, database_url, slack_clock):
    yield from bot_maker(fake_slack, database_url, slack_clock)


@pytest.fixture
def bot(make_bot):
    bot = make_bot()
    add_people(bot.world, U_ASKER=BERLIN, U_EXPERT=BERLIN, U_FAN=BERLIN)
    return bot


def ephemeral_shown(world, user: str, containing: str) -> str:
    """The ephemeral messages `user` got that mention `containing`, as Slack shows them."""
    found = [as_shown(json.dumps(e, ensure_ascii=False)) for e in world.ephemerals(user)]
    return "\n".join(text for text in found if containing in text)


def mrkdwn_of(payload: dict) -> str:
    return json.dumps(payload, ensure_ascii=False)


def test_a_question_reads_as_typed_in_the_channel_the_routing_dm_the_app_home_and_the_export(bot):
    world = bot.world
    declare(world, "U_EXPERT", "#math")

    posted = world.ask("U_ASKER", world.typed(QUESTION + " #math"), GENERAL)

    assert QUESTION in posted.shown
    assert LINK_ENTITY not in posted.plain
    with bot.store.session() as s:
        assert s.scalars(select(Question.text)).one() == QUESTION  # stored as written, for search and export
    [dm] = routing_dms(world, "U_EXPERT")
    assert QUESTION in dm.shown and LINK_ENTITY not in dm.plain

    for user in ("U_ASKER", "U_EXPERT"):  # "My open questions", and "Waiting for your expertise"
        world.open_home(user)
        world.settle()
        home = world.fake.home_view(user)
        assert QUESTION in as_shown(mrkdwn_of(home)) and LINK_ENTITY not in mrkdwn_of(home)

    exported = io.StringIO()
    with bot.store.session() as s:
        export_json(s, TEAM_ID, exported, bot.clock.now())
    assert [q["text"] for q in json.loads(exported.getvalue())["questions"]] == [QUESTION]


def test_answers_lessons_and_the_digest_read_as_typed(bot):
    world = bot.world
    question = world.ask("U_ASKER", world.typed(QUESTION + " #math"), GENERAL)
    reply = world.reply("U_EXPERT", question, world.typed(ANSWER))
    world.react("U_ASKER", "white_check_mark", GENERAL, reply)
    world.command("U_EXPERT", "/teach", world.typed("#math " + LESSON), GENERAL)
    lesson = world.wait_post(GENERAL, count=2)  # the question, then the lesson
    world.settle()

    assert LESSON in lesson.shown and "<!here>" not in lesson.plain
    with bot.store.session() as s:
        assert s.scalars(select(Answer.text)).one() == ANSWER
        assert s.scalars(select(Lesson.text)).one() == LESSON

    world.command("U_FAN", "/ask", "digest preview", GENERAL)
    world.settle()
    digest = ephemeral_shown(world, "U_FAN", "Preview")
    assert "Is a < b && c > d here, or is <https://evil.example|innocent> a link?" in digest
    assert "Compare with a < b && c > d" in digest
    assert LINK_ENTITY not in mrkdwn_of(world.ephemerals("U_FAN")[-1])


def test_similar_answers_show_the_earlier_question_and_its_answer_as_typed(bot):
    world = bot.world
    earlier = world.ask("U_FAN", world.typed(QUESTION + " #math"), GENERAL)
    reply = world.reply("U_EXPERT", earlier, world.typed(ANSWER))
    world.react("U_FAN", "white_check_mark", GENERAL, reply)
    world.settle()
    declare(world, "U_EXPERT", "#math")

    world.ask("U_ASKER", world.typed("Again: is a < b && c > d, or is that link innocent? #math"), GENERAL)

    [suggested] = [e for e in world.ephemerals("U_ASKER") if ACTION_SIMILAR_STILL_NEED_HELP in str(buttons(e))]
    shown = as_shown(mrkdwn_of(suggested))
    assert QUESTION in shown and ANSWER in shown
    assert LINK_ENTITY not in mrkdwn_of(suggested)


def test_refused_text_is_quoted_back_as_typed(bot):
    world = bot.world
    world.add_channel("C_SECRET", name="secret", private=True, members=["U_ASKER"], bot_member=False)
    world.command("U_ASKER", "/ask", world.typed(QUESTION + " #math"), "C_SECRET")
    world.settle()
    assert QUESTION in ephemeral_shown(world, "U_ASKER", "nothing is lost")

    no_words = ("<<< && >>> " * 10).strip()
    response = world.command("U_ASKER", "/ask", world.typed(no_words), GENERAL)
    refusal = as_shown(mrkdwn_of(response.json()))
    assert "needs a few words" in refusal and no_words in refusal


def test_a_modal_question_reads_as_typed_too(bot):
    world = bot.world
    world.command("U_ASKER", "/ask", "", GENERAL)
    world.fake.wait_for("views.open")
    since = world.fake.mark()

    world.submit_view("U_ASKER", ASK_MODAL, {"question": QUESTION, "tags": "#math"})

    posted = world.wait_post(GENERAL, since=since)
    assert QUESTION in posted.shown and LINK_ENTITY not in posted.plain
    world.settle()
    assert question_of(bot.store, posted).text == QUESTION
