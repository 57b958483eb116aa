"""Issue 22, section 3: `/ask search <terms>` and the App Home's search, end to end on SQLite and PostgreSQL.

A newcomer types `/ask search vacuum big table` in #general and sees, only for them, the answered questions and
lessons that match: a link to each, who answered, an excerpt. Unanswered questions are not searched (their
answers are what a search is for; they wait in their channel and on the Home tab of those who know the topic).
A private channel's answers are found only from that channel, as the suggestions find them. "Ask it as a
question" posts the words as `/ask` would, once however often it is clicked. The Home tab's "Search answers"
opens a form; the results come at the top of the tab, public channels only.
"""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from bot.asking import inbox_key, read_ask
from bot.config import Settings
from bot.messages.forms import ASK_MODAL
from bot.messages.search import (
    ACTION_ASK_SEARCHED,
    ACTION_HOME_ASK_SEARCHED,
    ACTION_HOME_SEARCH,
    SEARCH_BLOCK_TERMS,
    SEARCH_MODAL,
    TERMS_MISSING,
    Searched,
    parse_ask_value,
    search_results,
)
from bot.messages.suggestions import SimilarItem
from bot.playground.emulator.transcript import as_shown
from models.question import Question
from tests.route_helpers import (
    GENERAL,
    SECRET,
    add_people,
    bot_maker,
    buttons,
    declare,
    double_click,
    plain,
    question_of,
    routing_dms,
)
from tests.slack.conversations import answered_question

BERLIN = "Europe/Berlin"
EARLIER = "How do I vacuum a big table without locking it? #postgres"
ANSWER = "Use pg_repack: it rebuilds the table online, with only a short lock at the end."
LESSON = "#postgres VACUUM FULL locks a big table for its whole run; pg_repack does the same job online."
OPEN = "Why is autovacuum so slow on our big table? #postgres"  # asked, never answered
SECRET_QUESTION = "Which vacuum settings does the payroll database use? #postgres"
SECRET_ANSWER = "The payroll cluster runs vacuum nightly with cost limit 2000."


@pytest.fixture
def make_bot(fake_slack, database_url, slack_clock):
    yield from bot_maker(fake_slack, database_url, slack_clock)


@pytest.fixture
def bot(make_bot):
    bot = make_bot()
    add_people(bot.world, U_OLD=BERLIN, U_HELPER=BERLIN, U_TEACHER=BERLIN, U_NEW=BERLIN, U_PG=BERLIN)
    return bot


def lesson(bot, text: str = LESSON, channel: str = GENERAL):
    world = bot.world
    since = world.fake.mark()
    assert world.command("U_TEACHER", "/teach", text, channel).status == 200
    posted = world.wait_post(channel, since=since)
    world.settle()
    return posted


def search(bot, user: str, terms: str, channel: str = GENERAL) -> dict:
    """`user` runs `/ask search <terms>` (typed as a Slack client sends it); the reply only they see."""
    world = bot.world
    before = len(world.ephemerals(user))
    response = world.command(user, "/ask", world.typed(f"search {terms}"), channel)
    assert response.status == 200 and response.body == "", response.body  # an empty ack: the reply follows
    world.settle()
    [reply] = world.ephemerals(user)[before:]
    assert reply["channel"] == channel
    return reply


def link_to(message) -> str:
    return f"archives/{message.channel}/p{message.ts.replace('.', '')}"


def questions(bot) -> list[Question]:
    with bot.store.session() as s:
        return list(s.scalars(select(Question).order_by(Question.id)))


def test_search_shows_answered_questions_and_lessons_with_links_and_who_answered_only_to_the_searcher(bot):
    world = bot.world
    earlier, _ = answered_question(world, EARLIER, ANSWER, GENERAL)
    taught = lesson(bot)
    world.ask("U_OLD", OPEN, GENERAL)
    posts_before = len(world.messages(GENERAL))
    others_before = {user: len(world.ephemerals(user)) for user in ("U_OLD", "U_HELPER", "U_TEACHER")}

    reply = search(bot, "U_NEW", "vacuum big table")

    text = plain(reply)
    assert "2 answers for" in text and "vacuum big table" in text
    assert "How do I vacuum a big table without locking it?" in text
    assert "Answered by <@U_HELPER>" in text and "asked by <@U_OLD>" in text and "Use pg_repack" in text
    assert "Lesson by <@U_TEACHER>" in text and "VACUUM FULL locks a big table" in text
    assert link_to(earlier) in text and link_to(taught) in text
    assert "autovacuum so slow" not in text  # unanswered: not a result
    assert [action for action, _ in buttons(reply)] == [ACTION_ASK_SEARCHED]
    # Nobody else saw anything, and nothing was posted or stored.
    assert {user: len(world.ephemerals(user)) for user in others_before} == others_before
    assert len(world.messages(GENERAL)) == posts_before and len(questions(bot)) == 2


def test_ask_search_alone_says_how_and_ask_help_lists_it(bot):
    world = bot.world
    response = world.command("U_NEW", "/ask", "search", GENERAL)
    assert response.status == 200
    assert "/ask search" in response.body and "Ask it as a question" in response.body
    help_text = world.command("U_NEW", "/ask", "help", GENERAL).body
    assert "/ask search" in help_text
    world.settle()
    assert questions(bot) == [] and world.messages(GENERAL) == []


def test_nothing_found_says_what_to_do_next(bot):
    answered_question(bot.world, EARLIER, ANSWER, GENERAL)
    reply = search(bot, "U_NEW", "kubernetes ingress certificates")
    text = plain(reply)
    assert "Nothing found for" in text and "kubernetes ingress certificates" in text
    assert "Try other or fewer words, or ask it as a question" in text
    assert "vacuum" not in text
    assert [action for action, _ in buttons(reply)] == [ACTION_ASK_SEARCHED]


def test_a_private_channels_answers_are_found_only_in_that_channel(bot):
    world = bot.world
    add_people(world, SECRET, private=True, U_OLD=BERLIN, U_HELPER=BERLIN, U_MEMBER=BERLIN)
    add_people(world, U_MEMBER=BERLIN)  # in #general too
    secret, _ = answered_question(world, SECRET_QUESTION, SECRET_ANSWER, SECRET)

    outside = plain(search(bot, "U_NEW", "payroll vacuum settings"))
    assert "payroll" not in outside.replace("payroll vacuum settings", "") and "Nothing found" in outside

    inside = plain(search(bot, "U_MEMBER", "payroll vacuum settings", SECRET))
    assert "Which vacuum settings does the payroll database use?" in inside and link_to(secret) in inside
    assert "Answered by <@U_HELPER>" in inside and "cost limit 2000" in inside

    # A member searching from a public channel is answered for that channel: the private answer stays out.
    elsewhere = plain(search(bot, "U_MEMBER", "payroll vacuum settings"))
    assert "cost limit 2000" not in elsewhere


def test_ask_it_as_a_question_posts_once_as_ask_would_even_when_clicked_twice(bot):
    world = bot.world
    declare(world, "U_PG", "#postgres")
    reply = search(bot, "U_NEW", "replication lag alerts #postgres")
    [(action, value)] = buttons(reply)
    posts_before = len(world.messages(GENERAL))

    double_click(world, "U_NEW", action, value, channel=GENERAL)

    [stored] = questions(bot)
    assert (stored.text, stored.tag_names, stored.asker_id, stored.channel_id) == (
        "replication lag alerts",
        ["postgres"],
        "U_NEW",
        GENERAL,
    )
    [posted] = world.messages(GENERAL)[posts_before:]
    assert "replication lag alerts" in posted.plain and "`#postgres`" in posted.plain
    assert question_of(bot.store, posted).id == stored.id
    [dm] = routing_dms(world, "U_PG")  # routed as /ask routes (no earlier answer to suggest)
    assert "replication lag alerts" in dm.plain
    shown = [plain(e) for e in world.ephemerals("U_NEW")]
    assert any("Asked: your question is posted in this channel" in text for text in shown)
    assert not any(ACTION_ASK_SEARCHED in json.dumps(e) for e in world.ephemerals("U_NEW"))  # reply replaced


def test_search_text_is_read_and_shown_as_typed_and_never_pings(bot):
    world = bot.world
    answered_question(world, EARLIER, ANSWER, GENERAL)
    terms = "vacuum < locks && @here <b>"

    reply = search(bot, "U_NEW", terms)

    raw, mrkdwn = json.dumps(reply, ensure_ascii=False), plain(reply)
    assert "vacuum < locks && @\u200bhere <b>" in as_shown(mrkdwn)  # as typed; the broadcast word broken
    assert "<!here>" not in raw and "<b>" not in mrkdwn  # no ping, no markup: only the button's value holds it
    assert "How do I vacuum a big table without locking it?" in plain(reply)  # the words still match

    [(action, value)] = buttons(reply)
    world.click("U_NEW", action, value, channel=GENERAL)
    world.settle()
    posted = world.messages(GENERAL)[-1]
    assert question_of(bot.store, posted).text == "vacuum < locks && @here <b>"
    assert "<!here>" not in json.dumps(posted.raw) and "vacuum < locks &&" in posted.shown


def home_view(world, user: str) -> dict:
    view = world.fake.home_view(user)
    assert view is not None
    return view


def test_home_search_shows_public_answers_on_the_tab_and_asks_through_the_form(bot):
    world = bot.world
    earlier, _ = answered_question(world, EARLIER, ANSWER, GENERAL)
    taught = lesson(bot)
    add_people(world, SECRET, private=True, U_OLD=BERLIN, U_HELPER=BERLIN, U_NEW=BERLIN)
    answered_question(world, SECRET_QUESTION, SECRET_ANSWER, SECRET)
    world.open_home("U_NEW")
    world.settle()

    world.click("U_NEW", ACTION_HOME_SEARCH, view_id=home_view(world, "U_NEW")["id"])
    world.settle()
    [form] = world.fake.open_modals("U_NEW")
    assert form["callback_id"] == SEARCH_MODAL

    blank = world.submit_view("U_NEW", SEARCH_MODAL, {SEARCH_BLOCK_TERMS: "   "})
    assert blank.json() == {"response_action": "errors", "errors": {SEARCH_BLOCK_TERMS: TERMS_MISSING}}

    assert world.submit_view("U_NEW", SEARCH_MODAL, {SEARCH_BLOCK_TERMS: "vacuum settings big table"}).status == 200
    world.settle()
    assert world.fake.open_modals("U_NEW") == []
    text = plain(home_view(world, "U_NEW"))
    assert "How do I vacuum a big table without locking it?" in text and "Answered by <@U_HELPER>" in text
    assert "Lesson by <@U_TEACHER>" in text and link_to(earlier) in text and link_to(taught) in text
    assert "payroll" not in text  # the Home searches public channels only, even for a member of #secret
    assert "My open questions" in text  # the rest of the tab is still there

    world.click("U_NEW", ACTION_HOME_ASK_SEARCHED, view_id=home_view(world, "U_NEW")["id"])
    world.settle()
    [ask_form] = world.fake.open_modals("U_NEW")
    assert ask_form["callback_id"] == ASK_MODAL
    posts_before = len(world.messages(GENERAL))
    assert world.submit_view("U_NEW", ASK_MODAL, {"channel": GENERAL}).status == 200
    world.settle()
    [posted] = world.messages(GENERAL)[posts_before:]
    assert question_of(bot.store, posted).text == "vacuum settings big table"
    assert question_of(bot.store, posted).asker_id == "U_NEW"


# --- what waits in the inbox, and the reply's limits (pure) -------------------------------------------------


def test_a_search_waits_in_the_inbox_like_a_question_and_how_to_search_is_said_at_once():
    settings = Settings()
    body = {"command": "/ask", "trigger_id": "1.2.abc", "text": "search vacuum &lt; big table"}
    assert inbox_key(body, settings) == "cmd:1.2.abc"  # acked once stored; the reply comes from the worker
    assert inbox_key(body | {"text": "search"}, settings) is None  # its ack says how to search
    assert inbox_key(body | {"text": "help"}, settings) is None
    ask = read_ask("Search   vacuum < big table", settings)
    assert (ask.is_search, ask.search_terms, ask.question) == (True, "vacuum < big table", None)


def test_the_reply_keeps_to_slacks_limits_and_offers_asking_only_what_ask_would_post():
    item = SimilarItem("question", 1, "q " * 3000, "U1", "a " * 3000, "U2", "https://x/p1")
    reply = search_results(Searched("vacuum", [item] * 50), "cmd:1")
    assert len(reply.as_kwargs()["blocks"]) <= 50
    assert all(len(block["text"]["text"]) <= 3000 for block in reply.blocks if block["type"] == "section")
    assert "…" in plain(reply.as_kwargs())
    assert parse_ask_value(buttons(reply.as_kwargs())[0][1]) == ("cmd:1", "vacuum")

    too_long = search_results(Searched("word " * 500, []), "cmd:2")
    assert buttons(too_long.as_kwargs()) == [] and "too long to ask from here" in plain(too_long.as_kwargs())
    not_a_question = search_results(Searched("#postgres", [], askable=False), "cmd:3")
    assert buttons(not_a_question.as_kwargs()) == []
    for value in ("", "[]", "{}", '{"request": "cmd:1", "terms": "  "}', "not json"):
        assert parse_ask_value(value) is None
