"""Nothing acknowledged is lost: an acked /ask is posted in its channel exactly once (bot/posting.py), on SQLite
and PostgreSQL, whatever happens between the ack and Slack's answer.

- the process stops right after the ack, or dies between Slack's answer and our write, or is stopping: the
  question stays owed and the posting tick (of the next start, or of another replica) posts it, once;
- two runtimes racing to post one owed question post it once;
- Slack does not answer (a timeout, a cut connection) or answers 5xx: the question stays owed, the asker is told
  once that it will follow, and it is posted once (looked for in the channel's history first);
- a thread reply that arrives before the question's ts is stored is an answer all the same.
"""

from __future__ import annotations

import logging
import threading
from datetime import datetime
from typing import Any

import pytest
from sqlalchemy import select

from bot import posting
from bot.playground.emulator.fake_api import Call
from bot.playground.emulator.transcript import Message
from bot.workspaces import WorkspaceClient
from models.question import STATUS_OPEN, STATUS_POSTING, Answer, EarlyReply, Question
from tests.route_helpers import GENERAL, Bot, add_people, bot_maker, declare, dms, routing_dms
from tests.slack.fixtures import START

LONDON, BERLIN = "Europe/London", "Europe/Berlin"
QUESTION = "How do I rotate the nginx logs? #ops"
LATER = START + posting.OWED_AFTER  # when the tick takes a question the listener did not post
LEASE_OVER = START + posting.POST_LEASE  # when an attempt that died has let go of its question


@pytest.fixture
def make_bot(fake_slack, database_url, slack_clock):
    yield from bot_maker(fake_slack, database_url, slack_clock)


@pytest.fixture
def bot(make_bot) -> Bot:
    bot = make_bot()
    add_people(bot.world, U_ASKER=LONDON, U_EXPERT=BERLIN, U_FAN=BERLIN)
    return bot


def post_owed(bot: Bot, at: datetime) -> int:
    """The scheduler's posting job, run once at `at` (the clock moves there first)."""
    bot.clock.set(at)
    posted = posting.tick(bot.runtime.services, bot.runtime.bolt_app.client, bot.clock.now())
    bot.world.settle()
    return posted


def no_work_after_the_ack(bot: Bot, monkeypatch: pytest.MonkeyPatch) -> list[tuple[Any, Any]]:
    """From now on this process acks and stores, then stops: its lazy listeners (posting…) never run. Returns
    what they would have been, in order."""
    held: list[tuple[Any, Any]] = []
    runner = bot.runtime.bolt_app.listener_runner.lazy_listener_runner
    monkeypatch.setattr(runner, "start", lambda function, request: held.append((function, request)))
    return held


def ask_acked(bot: Bot, text: str = QUESTION, user: str = "U_ASKER") -> None:
    response = bot.world.command(user, "/ask", text, GENERAL)
    assert (response.status, response.body) == (200, ""), "acked: Slack considers it delivered"


def questions(bot: Bot) -> list[Question]:
    with bot.store.session() as session:
        return list(session.scalars(select(Question).order_by(Question.id)))


def answers(bot: Bot) -> list[tuple[str, str]]:
    with bot.store.session() as session:
        return [(a.user_id, a.text) for a in session.scalars(select(Answer).order_by(Answer.id))]


def posts_of(bot: Bot, text: str) -> list[Call]:
    """Every chat.postMessage of this question in #general that Slack did (answered or not)."""
    return bot.fake.calls_to(
        "chat.postMessage", channel=GENERAL, where=lambda call: call.ok and text in call.args.get("text", "")
    )


def in_channel(bot: Bot, text: str) -> list[Message]:
    return [m for m in bot.world.messages(GENERAL) if text in m.text]


def notes(bot: Bot, user: str = "U_ASKER") -> list[str]:
    """What the asker was told about posting their question (routing's notes left out)."""
    said = [e["text"] for e in bot.world.ephemerals(user)]
    return [text for text in said if text == posting.POST_DELAYED or "Here is what you wrote" in text]


def reply_to(bot: Bot, message: Message | dict[str, Any], user: str, text: str) -> str:
    return bot.world.post(user, GENERAL, text, thread_ts=message["ts"] if isinstance(message, dict) else message.ts)


# --- the process goes away after the ack ------------------------------------------------------------------


def test_a_question_acked_by_a_process_that_then_stopped_is_posted_once_by_the_next_start(bot, monkeypatch):
    declare(bot.world, "U_EXPERT", "#ops")
    no_work_after_the_ack(bot, monkeypatch)
    ask_acked(bot)
    bot.restart()  # the process went away before its listener posted the question
    [owed] = questions(bot)
    assert owed.status == STATUS_POSTING and not posts_of(bot, "rotate the nginx logs")

    assert post_owed(bot, START) == 0, "a question just stored is left to the listener posting it"
    assert post_owed(bot, LATER) == 1
    [posted] = in_channel(bot, "rotate the nginx logs")
    assert len(posts_of(bot, "rotate the nginx logs")) == 1
    [question] = questions(bot)
    assert (question.status, question.message_ts) == (STATUS_OPEN, posted.ts)
    assert routing_dms(bot.world, "U_EXPERT"), "then routed as any question: nothing similar was answered before"
    reply_to(bot, posted, "U_EXPERT", "logrotate with copytruncate")
    assert answers(bot) == [("U_EXPERT", "logrotate with copytruncate")]
    assert post_owed(bot, LATER + posting.OWED_AFTER) == 0 and len(posts_of(bot, "rotate the nginx logs")) == 1


def test_a_crash_between_slacks_answer_and_our_write_never_posts_twice(bot, monkeypatch):
    def killed(*_: Any, **__: Any) -> None:
        raise SystemExit("the process was killed here")  # after Slack's answer, before the ts is stored

    monkeypatch.setattr(posting, "record_posted", killed)
    bot.world.command("U_ASKER", "/ask", QUESTION, GENERAL)
    bot.world.settle()
    [posted] = [call.response for call in posts_of(bot, "rotate the nginx logs")]
    monkeypatch.undo()
    bot.restart()
    assert questions(bot)[0].status == STATUS_POSTING

    reply_to(bot, posted, "U_EXPERT", "logrotate with copytruncate")  # people see the question meanwhile
    assert post_owed(bot, LATER) == 0, "the attempt that died still holds it: its post may be under way"
    assert post_owed(bot, LEASE_OVER) == 1
    assert len(posts_of(bot, "rotate the nginx logs")) == 1, "found in the channel's history, not posted again"
    [question] = questions(bot)
    assert (question.status, question.message_ts, question.post_attempts) == (STATUS_OPEN, posted["ts"], 2)
    assert answers(bot) == [("U_EXPERT", "logrotate with copytruncate")], "the reply that came meanwhile counts"
    history = [call.args for call in bot.fake.calls_to("conversations.history")]
    assert history and all(args.get("include_all_metadata") and args.get("oldest") for args in history)


def test_two_runtimes_racing_to_post_an_owed_question_post_it_once(make_bot, monkeypatch):
    first = make_bot()
    add_people(first.world, U_ASKER=LONDON)
    no_work_after_the_ack(first, monkeypatch)
    ask_acked(first)
    [owed] = questions(first)
    second = make_bot()  # another replica on the same database
    first.fake.respond_slowly("chat.postMessage", 0.3)  # long enough for both to be at it together
    first.clock.set(LATER)
    ready = threading.Barrier(2, timeout=10)
    posted: list[bool] = []

    def post(bot: Bot) -> None:  # both found it owed (the tick's list); both try now
        ready.wait()
        posted.append(
            posting.publish_question(WorkspaceClient(bot.runtime.bolt_app.client), bot.runtime.services, owed.id)
        )

    racers = [threading.Thread(target=post, args=(bot,)) for bot in (first, second)]
    for racer in racers:
        racer.start()
    for racer in racers:
        racer.join(30)
    assert sorted(posted) == [False, True]
    assert len(first.fake.calls_to("chat.postMessage")) == 1 and len(in_channel(first, "rotate the nginx logs")) == 1


def test_a_stopping_process_leaves_its_unposted_questions_owed_and_the_next_start_posts_them(bot, monkeypatch):
    held = no_work_after_the_ack(bot, monkeypatch)
    texts = [f"Question {n}: how do I rotate the logs?" for n in range(3)]
    for text in texts:
        ask_acked(bot, text + " #ops")
    bot.runtime.services.stopping.set()  # SIGTERM: `work` stops taking requests and lets its listeners finish
    monkeypatch.undo()
    runner = bot.runtime.bolt_app.listener_runner.lazy_listener_runner
    for function, request in held:  # the listeners queued before the stop run now, as the stop lets them
        runner.start(function, request)
    bot.world.settle()
    assert not bot.fake.calls_to("chat.postMessage"), "nothing is started while stopping"
    assert [(q.status, q.post_claimed_until) for q in questions(bot)] == [(STATUS_POSTING, None)] * 3
    bot.restart()
    assert post_owed(bot, LATER) == 3
    for text in texts:
        assert len(posts_of(bot, text)) == 1 and len(in_channel(bot, text)) == 1


# --- Slack does not answer --------------------------------------------------------------------------------


def test_a_post_whose_answer_never_came_stays_owed_and_is_not_posted_twice(bot):
    bot.fake.drop_responses("chat.postMessage")  # Slack posts it; the connection dies before its answer
    bot.world.command("U_ASKER", "/ask", QUESTION, GENERAL)
    bot.world.settle()
    [posted] = posts_of(bot, "rotate the nginx logs")
    assert not posted.answered
    assert notes(bot) == [posting.POST_DELAYED], "told once that it follows by itself, not to ask again"
    assert questions(bot)[0].status == STATUS_POSTING

    reply_to(bot, posted.response, "U_EXPERT", "logrotate with copytruncate")
    assert post_owed(bot, LATER) == 0, "Slack may still be at it: the attempt's lease runs out first"
    assert post_owed(bot, LEASE_OVER) == 1
    assert len(posts_of(bot, "rotate the nginx logs")) == 1
    assert questions(bot)[0].message_ts == posted.response["ts"]
    assert answers(bot) == [("U_EXPERT", "logrotate with copytruncate")]
    assert notes(bot) == [posting.POST_DELAYED]


def test_a_post_that_timed_out_is_found_in_the_channel_by_the_next_attempt(bot, caplog):
    bot.runtime.bolt_app.client.timeout = 1  # Bolt's clients take the app client's timeout
    bot.fake.respond_slowly("chat.postMessage", 2, after_applying=True)
    with caplog.at_level(logging.WARNING):
        bot.world.command("U_ASKER", "/ask", QUESTION, GENERAL)
        bot.world.settle()
    assert notes(bot) == [posting.POST_DELAYED]
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == [
        "question 1: no answer from Slack to its post in C_GENERAL (slack_unreachable); it stays owed"
    ], "one line, no traceback"
    assert post_owed(bot, LEASE_OVER) == 1
    assert len(posts_of(bot, "rotate the nginx logs")) == 1 and questions(bot)[0].status == STATUS_OPEN


def test_a_post_slack_answered_with_5xx_is_looked_for_then_posted_once(bot):
    bot.fake.fail("chat.postMessage", "internal_error", status=500, times=posting.POST_TRIES)
    bot.world.command("U_ASKER", "/ask", QUESTION, GENERAL)
    bot.world.settle()
    assert notes(bot) == [posting.POST_DELAYED] and not in_channel(bot, "rotate the nginx logs")
    assert len(bot.fake.calls_to("conversations.history")) == posting.POST_TRIES - 1, "looked before each retry"
    assert post_owed(bot, LEASE_OVER) == 1
    [posted] = in_channel(bot, "rotate the nginx logs")
    assert questions(bot)[0].message_ts == posted.ts
    assert [c.status for c in bot.fake.calls_to("chat.postMessage")] == [500] * posting.POST_TRIES + [200]


def test_a_channel_slack_does_not_answer_about_is_tried_again_at_once_by_the_tick(bot):
    bot.fake.drop_responses("conversations.info", times=3)  # slack_sdk retries a cut connection twice
    bot.world.command("U_ASKER", "/ask", QUESTION, GENERAL)
    bot.world.settle()
    assert notes(bot) == [posting.POST_DELAYED] and not bot.fake.calls_to("chat.postMessage")
    assert questions(bot)[0].post_claimed_until is None, "nothing was posted: no need to wait for the lease"
    assert post_owed(bot, LATER) == 1
    assert len(in_channel(bot, "rotate the nginx logs")) == 1 and notes(bot) == [posting.POST_DELAYED]


def test_a_refusal_found_by_the_tick_is_told_to_the_asker_once(bot, monkeypatch):
    no_work_after_the_ack(bot, monkeypatch)
    ask_acked(bot)
    bot.restart()
    bot.fake.channels[GENERAL].is_archived = True  # archived meanwhile
    assert post_owed(bot, LATER) == 0
    [note] = dms(bot.world, "U_ASKER")  # an archived channel takes no ephemeral message either
    assert "archived" in note.plain and "rotate the nginx logs" in note.plain, "why, and their words back"
    assert post_owed(bot, LEASE_OVER) == 0 and len(dms(bot.world, "U_ASKER")) == 1


# --- a reply that overtakes the post's answer ---------------------------------------------------------------


def test_a_reply_handled_before_the_questions_ts_is_stored_is_an_answer(bot):
    stored_ts_when_handled: list[str | None] = []

    def reply_before_the_answer(call: Call) -> None:
        reply_to(bot, call.response, "U_EXPERT", "logrotate with copytruncate")  # delivered and handled…
        stored_ts_when_handled.append(questions(bot)[0].message_ts)

    bot.fake.after_applying("chat.postMessage", reply_before_the_answer)
    question = bot.world.ask("U_ASKER", QUESTION, GENERAL)
    assert stored_ts_when_handled == [None], "…before the post's answer reached PeerLearn"
    assert questions(bot)[0].message_ts == question.ts
    assert answers(bot) == [("U_EXPERT", "logrotate with copytruncate")]
    with bot.store.session() as session:
        assert session.scalars(select(EarlyReply)).all() == [], "kept only until the ts was known"


def test_early_replies_in_other_threads_or_by_the_asker_are_not_answers_and_are_not_kept(bot):
    other = bot.world.post("U_FAN", GENERAL, "Lunch at noon?")

    def replies_meanwhile(call: Call) -> None:
        bot.world.post("U_EXPERT", GENERAL, "I'm in", thread_ts=other)  # another thread
        reply_to(bot, call.response, "U_ASKER", "Also: on Debian")  # the asker adds a detail
        edited = reply_to(bot, call.response, "U_EXPERT", "logrotate")
        bot.world.edit("U_EXPERT", GENERAL, edited, "logrotate with copytruncate")
        deleted = reply_to(bot, call.response, "U_FAN", "no idea")
        bot.world.delete("U_FAN", GENERAL, deleted)

    bot.fake.after_applying("chat.postMessage", replies_meanwhile)
    bot.world.ask("U_ASKER", QUESTION, GENERAL)
    assert answers(bot) == [("U_EXPERT", "logrotate with copytruncate")]
    with bot.store.session() as session:
        assert session.scalars(select(EarlyReply)).all() == []
