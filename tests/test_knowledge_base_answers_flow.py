"""Issue 22's questions the knowledge base answered by itself, end to end on SQLite and PostgreSQL: an asker gets
an earlier question as a suggestion and clicks "This answers it"; nobody is pinged, and `python app.py stats`, the
App Home (the asker's own and an admin's analytics) and the channel's next digest count the question as answered,
the digest with the earlier answer that answered it and a line saying the knowledge base answered 1 by itself."""

from __future__ import annotations

import json
import re
from datetime import timedelta

import pytest

from bot.clock import FrozenClock
from bot.messages.suggestions import ACTION_SIMILAR_ANSWERS_IT
from bot.playground.emulator.fake_api import TEAM_ID
from bot.runtime import cli
from models.digest import DIGEST_POSTED
from models.question import RESOLUTION_SIMILAR, STATUS_RESOLVED
from tests.digest.helpers import NEXT_MONDAY_9_BERLIN, digest_posts, tick_at
from tests.digest.helpers import plain as posted_text
from tests.route_helpers import GENERAL, bot_maker, buttons, declare, plain, question_of, routing_dms
from tests.slack.conversations import answered_question
from tests.slack.fixtures import START
from tests.test_stats_rollup import rebuilt, rollup_rows

EARLIER = "How do I vacuum a big table without locking it? #postgres"
ANSWER = "Use pg_repack: it rebuilds the table online, with only a short lock at the end."
NEW = "Vacuuming our big table locks it for minutes, what can I do? #postgres"
KNOWLEDGE_BASE_1 = (
    ":books: The knowledge base answered 1 question by itself this week: its asker found the answer in an "
    "earlier question or lesson, and nobody had to be asked."
)


@pytest.fixture
def make_bot(fake_slack, database_url, slack_clock):
    yield from bot_maker(fake_slack, database_url, slack_clock)


@pytest.fixture
def bot(make_bot):
    bot = make_bot()
    for user in ("U_OLD", "U_HELPER", "U_ASKER", "U_PG", "U_ADMIN"):
        bot.world.add_user(user, tz="Europe/Berlin", is_admin=user == "U_ADMIN")
    bot.world.add_channel(GENERAL, name="general", members=["U_OLD", "U_HELPER", "U_ASKER", "U_PG", "U_ADMIN"])
    return bot


@pytest.fixture
def stats_verb(database_url, monkeypatch, capsys, slack_clock):
    """`python app.py stats --format json …` in-process, on the test's database, at the clock's moment."""
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setattr("bot.clock.Clock", lambda: FrozenClock(slack_clock.now()))
    for name in ("SLACK_BOT_TOKEN", "SLACK_APP_TOKEN", "SLACK_SIGNING_SECRET", "SLACK_CLIENT_ID"):
        monkeypatch.delenv(name, raising=False)

    def run(*argv: str) -> dict:
        capsys.readouterr()
        assert cli.main(["stats", "--team", TEAM_ID, "--format", "json", *argv]) == 0
        [workspace] = json.loads(capsys.readouterr().out)["workspaces"]
        return workspace

    return run


def open_home(world, user: str) -> str:
    """`user` opens the Home tab; the view PeerLearn published for them, as JSON text."""
    since = world.fake.mark()
    world.open_home(user)
    return json.dumps(world.fake.wait_for("views.publish", since=since, user_id=user).args["view"])


def this_answers_it(bot, user: str = "U_ASKER"):
    """`user` asks NEW, is shown the earlier question and clicks "This answers it" on it."""
    world = bot.world
    question = world.ask(user, NEW, GENERAL)
    stored = question_of(bot.store, question)
    [value] = [
        v
        for e in world.ephemerals(user)
        for a, v in buttons(e)
        if a == ACTION_SIMILAR_ANSWERS_IT and f"{stored.id}:" in v
    ]
    world.click(user, ACTION_SIMILAR_ANSWERS_IT, value)
    world.settle()
    assert "Glad that helped" in plain(world.ephemerals(user)[-1])
    return question


def test_a_question_the_knowledge_base_answered_counts_as_answered_in_stats_home_and_the_digest(bot, stats_verb):
    world = bot.world
    _, earlier_answer_ts = answered_question(world, EARLIER, ANSWER, GENERAL)
    declare(world, "U_PG", "#postgres")  # an expert who would be asked
    world.command("U_ADMIN", "/ask", "digest on", GENERAL)
    world.settle()

    world.clock.advance(timedelta(hours=1))
    question = this_answers_it(bot)
    stored = question_of(bot.store, question)
    assert (stored.status, stored.resolution, stored.answered_by_earlier) == (STATUS_RESOLVED, RESOLUTION_SIMILAR, True)

    # Nobody is pinged, then or later: a resolved question never escalates.
    for later in (timedelta(minutes=11), timedelta(hours=5), timedelta(hours=10)):
        bot.tick(START + timedelta(hours=1) + later)
    assert routing_dms(world, "U_PG") == []

    # `python app.py stats`: both questions asked, both answered; one accepted answer (the earlier one's).
    overall = stats_verb("--since", "7d")["overall"]
    assert (overall["asked"], overall["answered"], overall["accepted"], overall["answer_rate"]) == (2, 2, 1, 1.0)

    # The App Home: not among the asker's open questions; answered in the admin's analytics.
    asker_home = open_home(world, "U_ASKER")
    assert "Nothing open" in asker_home and "Vacuuming our big table" not in asker_home
    admin_home = open_home(world, "U_ADMIN")
    assert "*Questions asked*\\n2" in admin_home and "*Answered*\\n2 (100%)" in admin_home
    assert "`#postgres` 2 asked, 100% answered" in admin_home

    # The next digest: answered, by the earlier question, whose answer is credited and linked; and said so.
    outcomes = tick_at(bot.runtime, NEXT_MONDAY_9_BERLIN)
    assert [(o.channel_id, o.status) for o in outcomes] == [(GENERAL, DIGEST_POSTED)]
    [post] = digest_posts(world.fake, GENERAL)
    text = posted_text(post)
    client = bot.runtime.bolt_app.client
    answer_link = client.chat_getPermalink(channel=GENERAL, message_ts=earlier_answer_ts)["permalink"]
    assert "*2 questions* asked · *2* answered · *0* still open" in text and "Answered (2)" in text
    assert (
        f"How do I vacuum a big table without locking it? `#postgres` — answered by <@U_HELPER> · <{answer_link}|"
        in text
    )
    assert (
        "Vacuuming our big table locks it for minutes, what can I do? `#postgres` — answered by an earlier question "
        f"(answer by <@U_HELPER>) · <{answer_link}|see the answer>" in text
    )
    assert KNOWLEDGE_BASE_1 in text
    # The earlier answer was credited once, when it was accepted: not a second time for answering again.
    assert "1. <@U_HELPER> — 1 accepted answer" in text
    assert "Still open" not in text


def test_an_answer_accepted_later_takes_over_and_taking_it_back_leaves_it_answered_by_the_knowledge_base(
    bot, stats_verb
):
    world = bot.world
    answered_question(world, EARLIER, ANSWER, GENERAL)
    world.command("U_ADMIN", "/ask", "digest on", GENERAL)
    question = this_answers_it(bot)
    world.clock.advance(timedelta(hours=1))  # the stats' window ends now: the questions are in it

    reply = world.reply("U_PG", question, "Or run VACUUM in a quiet hour.")
    world.react("U_ASKER", "white_check_mark", GENERAL, reply)
    world.settle()
    [message] = [m for m in world.messages(GENERAL) if m.ts == question.ts]
    assert "*Resolved* — answer by <@U_PG>" in message.plain
    assert stats_verb("--since", "7d")["overall"]["accepted"] == 2

    world.unreact("U_ASKER", "white_check_mark", GENERAL, reply)
    world.settle()
    stored = question_of(bot.store, question)
    assert (stored.status, stored.accepted_answer_id, stored.answered_by_earlier) == (STATUS_RESOLVED, None, True)
    [message] = [m for m in world.messages(GENERAL) if m.ts == question.ts]
    assert "*Resolved* — answered by an earlier question" in message.plain
    overall = stats_verb("--since", "7d")["overall"]
    assert (overall["asked"], overall["answered"], overall["accepted"]) == (2, 2, 1)
    assert "Vacuuming our big table" not in open_home(world, "U_ASKER")

    tick_at(bot.runtime, NEXT_MONDAY_9_BERLIN)
    [post] = digest_posts(world.fake, GENERAL)
    text = posted_text(post)
    assert "what can I do? `#postgres` — answered by an earlier question (answer by <@U_HELPER>)" in text
    assert KNOWLEDGE_BASE_1 in text
    assert "<@U_PG> —" not in text  # their answer is no longer the accepted one


def test_stats_and_the_admin_home_count_what_the_knowledge_base_answered_and_follow_an_accept_and_its_undo(
    bot, stats_verb, capsys
):
    """The figure of its own: 1 after "This answers it", 0 while a helper's answer is accepted (a person answered
    it), 1 again once that accept is taken back; the stats rollup equal to a rebuild after every step."""
    world = bot.world

    def answered_by_the_knowledge_base() -> int:
        assert rollup_rows(bot.store, TEAM_ID) == rebuilt(bot.store, TEAM_ID)  # the upkeep, as a rebuild
        world.clock.advance(timedelta(minutes=1))  # the stats' window ends now: what just happened is in it
        figures = stats_verb("--since", "7d")
        assert [t["answered_by_knowledge_base"] for t in figures["tags"] if t["tag"] == "postgres"] == [
            figures["overall"]["answered_by_knowledge_base"]
        ]
        admin_home = open_home(world, "U_ADMIN")
        [shown] = re.findall(r"\*Answered by the knowledge base\*\\n(\d+)", admin_home)
        assert int(shown) == figures["overall"]["answered_by_knowledge_base"]
        return int(shown)

    answered_question(world, EARLIER, ANSWER, GENERAL)
    assert answered_by_the_knowledge_base() == 0
    question = this_answers_it(bot)
    assert answered_by_the_knowledge_base() == 1

    capsys.readouterr()
    assert cli.main(["stats", "--team", TEAM_ID, "--since", "7d"]) == 0
    table = capsys.readouterr().out
    assert "Answered                   2 (100%)\n  by the knowledge base    1\n" in table

    reply = world.reply("U_PG", question, "Or run VACUUM in a quiet hour.")
    world.settle()
    assert answered_by_the_knowledge_base() == 1  # an answer alone changes nothing: still resolved by the earlier one
    world.react("U_ASKER", "white_check_mark", GENERAL, reply)
    world.settle()
    assert answered_by_the_knowledge_base() == 0  # a person's accepted answer takes over
    assert stats_verb("--since", "7d")["overall"]["accepted"] == 2

    world.unreact("U_ASKER", "white_check_mark", GENERAL, reply)
    world.settle()
    assert answered_by_the_knowledge_base() == 1  # the accept taken back: the knowledge base answered it again
    overall = stats_verb("--since", "7d")["overall"]
    assert (overall["asked"], overall["answered"], overall["accepted"]) == (2, 2, 1)

    world.react("U_ASKER", "white_check_mark", GENERAL, reply)
    world.settle()
    assert answered_by_the_knowledge_base() == 0
    world.delete("U_PG", GENERAL, reply)  # the accepted answer deleted: back to the earlier question
    world.settle()
    assert answered_by_the_knowledge_base() == 1
