"""A Slack that does not answer, after an ack, on SQLite and PostgreSQL: a button's thread note, a question's
redraw, a routing DM. Each failed call is logged in one line and the rest of the work is done; a DM that may
have been delivered counts as sent and is never sent again, by PeerLearn or by slack_sdk's retries.
(Posting questions: tests/test_posting.py.)"""

from __future__ import annotations

import http.client
import logging
import threading
from datetime import timedelta
from urllib.error import URLError

import pytest
from slack_sdk.http_retry.builtin_handlers import ConnectionErrorRetryHandler
from slack_sdk.http_retry.request import HttpRequest
from slack_sdk.http_retry.state import RetryState
from sqlalchemy import select

from bot.messages.routing import ACTION_TAKE_QUESTION, ROUTE_TAKEN_NOTE
from bot.playground.emulator.fake_api import Call, ConnectionCut
from bot.playground.emulator.transcript import Message
from bot.runtime.app import RepeatableOnly
from models.expert import ROUTE_SENT
from models.question import Answer, Question
from tests.route_helpers import GENERAL, Bot, add_people, bot_maker, declare, requests_of, routing_dms
from tests.slack.fixtures import START

QUESTION = "How do I rotate the nginx logs? #ops"
TIMEOUT = 1  # seconds the bot's Slack client waits here (Bolt's clients take the app client's)
LATE = 2  # seconds Slack takes to answer a call it did


@pytest.fixture
def make_bot(fake_slack, database_url, slack_clock):
    yield from bot_maker(fake_slack, database_url, slack_clock)


@pytest.fixture
def bot(make_bot) -> Bot:
    bot = make_bot()
    add_people(bot.world, U_ASKER="Europe/London", U_EXPERT="Europe/Berlin", U_FAN="Europe/Berlin")
    return bot


def slack_answers_late(bot: Bot, method: str, only_in: str | None = None) -> None:
    """From now on Slack does `method` (in `only_in`, if given) but answers after the bot's client gave up."""
    bot.runtime.bolt_app.client.timeout = TIMEOUT

    def late(call: Call) -> None:
        if only_in in (None, call.args.get("channel")):
            threading.Event().wait(LATE)  # Slack is slow to answer what it did

    bot.fake.after_applying(method, late, times=-1)


def errors_logged(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [record.getMessage() for record in caplog.records if record.levelno >= logging.ERROR]


def warnings_logged(caplog: pytest.LogCaptureFixture, about: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING and about in r.getMessage()]


def test_a_thread_note_slack_does_not_answer_leaves_the_rest_of_i_ll_take_it_done(bot, caplog):
    declare(bot.world, "U_EXPERT", "#ops")
    bot.world.ask("U_ASKER", QUESTION, GENERAL)
    [dm] = routing_dms(bot.world, "U_EXPERT")
    slack_answers_late(bot, "chat.postMessage")  # the note "U_EXPERT is on it" in the question's thread
    with caplog.at_level(logging.WARNING):
        bot.world.click("U_EXPERT", ACTION_TAKE_QUESTION, channel=dm.channel)
        bot.world.settle()
    assert errors_logged(caplog) == []
    assert warnings_logged(caplog, "took it") == ["could not say in C_GENERAL that U_EXPERT took it: slack_unreachable"]
    redrawn = Message.of(dm.channel, bot.fake.message(dm.channel, dm.ts))
    assert ROUTE_TAKEN_NOTE in redrawn.plain, "the DM was redrawn all the same"


def test_a_redraw_slack_does_not_answer_is_logged_once_and_the_next_event_is_handled(bot, caplog):
    question = bot.world.ask("U_ASKER", QUESTION, GENERAL)
    answer = bot.world.reply("U_EXPERT", question, "logrotate with copytruncate")
    slack_answers_late(bot, "chat.update")
    with caplog.at_level(logging.WARNING):
        bot.world.react("U_ASKER", "white_check_mark", GENERAL, answer)
        bot.world.settle()
    assert errors_logged(caplog) == []
    assert warnings_logged(caplog, "could not update question") == [
        "could not update question 1 in C_GENERAL: slack_unreachable"
    ]
    bot.world.reply("U_FAN", question, "or use systemd's journal")
    with bot.store.session() as session:
        assert len(session.scalars(select(Answer)).all()) == 2


def test_a_routing_dm_slack_does_not_answer_counts_as_sent_and_is_never_sent_twice(bot, caplog):
    declare(bot.world, "U_EXPERT", "#ops")
    slack_answers_late(bot, "chat.postMessage", only_in=bot.fake.im_for("U_EXPERT").id)
    with caplog.at_level(logging.WARNING):
        bot.world.ask("U_ASKER", QUESTION, GENERAL)
        bot.world.settle()
    assert errors_logged(caplog) == []
    assert warnings_logged(caplog, "DM to U_EXPERT") == [
        "DM to U_EXPERT got no answer from Slack (slack_unreachable); counted as sent"
    ]
    with bot.store.session() as session:
        [question] = session.scalars(select(Question))
    assert requests_of(bot.store, question.id)["U_EXPERT"].status == ROUTE_SENT
    bot.tick(START + timedelta(hours=1))
    assert len(routing_dms(bot.world, "U_EXPERT")) == 1, "Slack delivered it once; it is not sent again"


def test_a_dm_whose_connection_was_cut_after_slack_delivered_it_is_not_sent_again_by_the_client(bot):
    # slack_sdk's retry handlers repeat a call whose connection was cut; a chat.postMessage that Slack did
    # would then show twice. The app's client repeats such a call only when Slack never received it.
    declare(bot.world, "U_EXPERT", "#ops")
    dm_channel = bot.fake.im_for("U_EXPERT").id

    def cut_the_dm(call: Call) -> None:
        if call.args["channel"] == dm_channel:
            raise ConnectionCut("Slack delivered the DM; its answer never came back")

    bot.fake.after_applying("chat.postMessage", cut_the_dm, times=2)  # the question's post, then the DM
    bot.world.ask("U_ASKER", QUESTION, GENERAL)
    bot.world.settle()
    assert len(routing_dms(bot.world, "U_EXPERT")) == 1
    assert len(bot.fake.calls_to("chat.postMessage", channel=dm_channel)) == 1


def test_the_clients_retry_repeatable_calls_and_calls_slack_never_received():
    handler = RepeatableOnly(ConnectionErrorRetryHandler(max_retry_count=2))
    state = RetryState()

    def retried(method: str, error: Exception) -> bool:
        request = HttpRequest(method="POST", url=f"https://slack.com/api/{method}", headers={})
        return handler.can_retry(state=state, request=request, error=error)

    refused = URLError(ConnectionRefusedError("connection refused"))  # before the request went out
    cut = http.client.RemoteDisconnected("Remote end closed connection without response")  # after
    assert retried("chat.postMessage", refused) and not retried("chat.postMessage", cut)
    assert retried("conversations.info", refused) and retried("conversations.info", cut)
