"""Posting a stored question in its channel, exactly once, whoever finishes the job.

/ask (and its form) stores the question before the ack, with status "posting": from then on it is owed to its
channel until Slack confirmed the post (status "open", its message ts stored) or the asker was told why not
(status "unposted"). The listener after the ack posts it at once; the posting `tick` (every minute, so also at
every start) finishes what a listener could not: its process was stopped or killed, or Slack did not answer.

Exactly once, with several runtimes, restarts and crashes:
- An attempt first claims the question for POST_LEASE (models/question.claim_posting: one conditional
  UPDATE), so two attempts never run at once; a process killed mid-attempt leaves a lease that runs out.
- Every post carries message metadata (event_type QUESTION_EVENT, the question's id). An attempt after the
  first looks for that message in the channel's history (from a little before the question was stored) and
  records it instead of posting again: a crash between Slack's answer and our write never posts it twice.
- A post is never retried blindly (the app's slack_sdk retry handlers repeat a chat.postMessage only when
  Slack did nothing: bot/runtime/app.py). After a 5xx, Slack is done with the request: the attempt looks,
  then posts again if it is not there. A post Slack did not answer at all (a timeout, a cut connection) may
  still be under way: the question stays owed and its lease runs out first, so that Slack has settled before
  the next attempt looks.
The asker hears once: why Slack refused (with their text back), or, from the listener's first attempt, that
Slack is slow and the question will follow by itself.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from slack_sdk.errors import SlackApiError

from bot.capture import about_message
from bot.messages.blocks import ephemeral
from bot.messages.errors import explain, quote_back
from bot.messages.questions import QuestionAbout, question_message
from bot.qa import record_posted, record_unposted
from bot.routing import delivery, escalation, suggestions
from bot.services import Services
from bot.slack_errors import SLACK_FAILURES, error_code, may_have_happened
from bot.workspaces import TokenLookup, WorkspaceClient, WorkspaceClients
from models.question import Question, claim_posting, owed_questions, release_posting

logger = logging.getLogger("peerlearn.posting")

QUESTION_EVENT = "peerlearn_question"  # the metadata event_type of every question PeerLearn posts
POST_LEASE = timedelta(minutes=2)  # an attempt's claim: longer than its Slack calls take (15 s timeout each)
POST_CALL_BUDGET = timedelta(seconds=30)  # chat.postMessage starts only while this much of the lease is left
OWED_AFTER = timedelta(minutes=1)  # the tick leaves younger questions to the listener posting them after the ack
MAX_OWED = 50  # questions a tick takes; the next tick takes the rest
HISTORY_MARGIN = timedelta(minutes=2)  # our clock and Slack's: the history is read from this before the question
HISTORY_PAGE = 200
HISTORY_PAGES = 10
POST_TRIES = 3  # posts in one attempt: again after a 5xx, once the channel showed it was not posted

POST_DELAYED = (
    "Slack is slow to answer right now. Your question is saved and will appear in this channel as soon as Slack "
    "takes it; there's no need to ask again."
)
UNCONFIRMED = (
    "I couldn't check whether your question reached this channel, so I did not post it again. If you don't see "
    "it there, please ask again."
)

Notify = Callable[[str], None]


@dataclass(frozen=True)
class OwedQuestion:
    id: int
    team_id: str
    channel_id: str
    asker_id: str
    text: str
    tags: tuple[str, ...]
    created_at: datetime
    attempt: int  # 1 for the first attempt that claimed it
    held_until: datetime
    about: QuestionAbout | None = None  # asked about a message ("Ask PeerLearn about this")


class Unconfirmed(Exception):
    """The channel's history since the question was stored is too long to read: an earlier post may be there."""


def question_metadata(question_id: int) -> dict[str, Any]:
    return {"event_type": QUESTION_EVENT, "event_payload": {"question_id": question_id}}


def is_post_of(message: dict[str, Any], question_id: int, bot_id: str | None) -> bool:
    """Whether a message from the channel's history is our post of this question."""
    metadata = message.get("metadata") or {}
    payload = metadata.get("event_payload") or {}
    return (
        metadata.get("event_type") == QUESTION_EVENT
        and str(payload.get("question_id")) == str(question_id)
        and bool(bot_id)
        and message.get("bot_id") == bot_id
    )


def publish_question(
    slack: WorkspaceClient, services: Services, question_id: int, notify: Notify | None = None
) -> bool:
    """Post an owed question unless another attempt holds it: True when this call recorded it as posted (the
    caller suggests or routes next). `notify` tells the asker (the listener's response_url); without it, an
    ephemeral message in the channel, or a DM."""
    if services.stopping.is_set():
        return False  # nothing new starts in a stopping process: the question stays owed for the next start
    now = services.clock.now()
    with services.store.session() as session:
        attempt = claim_posting(session, question_id, now, POST_LEASE)
        if attempt is None:
            return False
        question = session.get(Question, question_id)
        assert question is not None
        owed = OwedQuestion(
            question.id,
            question.team_id,
            question.channel_id,
            question.asker_id,
            question.text,
            tuple(question.tag_names),
            question.created_at,
            attempt,
            now + POST_LEASE,
            about_message(session, question.id),
        )
    return _attempt(slack, services, owed, notify or _ephemeral_or_dm(slack, owed))


def publish_and_suggest(
    slack: WorkspaceClient, services: Services, question_id: int, notify: Notify | None = None
) -> bool:
    """Post an owed question (publish_question); once this call recorded it as posted, show the asker similar
    answers or route it (bot/routing/). True when it did."""
    if not publish_question(slack, services, question_id, notify):
        return False
    suggestions.suggest_or_route(slack, services, question_id)
    return True


def _ephemeral_or_dm(slack: WorkspaceClient, owed: OwedQuestion) -> Notify:
    def notify(text: str) -> None:
        delivery.tell(slack, channel_id=owed.channel_id, user_id=owed.asker_id, message=ephemeral(text))

    return notify


def _attempt(slack: WorkspaceClient, services: Services, owed: OwedQuestion, notify: Notify) -> bool:
    look = owed.attempt > 1  # an earlier attempt may have posted it
    for post_try in range(POST_TRIES):
        try:
            if post_try == 0:
                info = slack.client.conversations_info(channel=owed.channel_id, **slack.auth)["channel"]
                private = bool(info.get("is_private") or info.get("is_im") or info.get("is_mpim"))
            ts = find_earlier_post(slack, owed) if look else None
        except Unconfirmed:
            logger.warning("question %s: too much history in %s to look for an earlier post", owed.id, owed.channel_id)
            _give_up(services, owed, notify, UNCONFIRMED)
            return False
        except SLACK_FAILURES as exc:
            _not_posted(services, owed, notify, exc, reached_slack=False)
            return False
        if ts is not None:
            logger.info("question %s was in %s already at %s (an earlier post)", owed.id, owed.channel_id, ts)
            return _record(services, owed, ts, private)
        if services.stopping.is_set() or services.clock.now() > owed.held_until - POST_CALL_BUDGET:
            _release(services, owed)  # too late to start a post this attempt could still answer for
            return False
        message = question_message(asker_id=owed.asker_id, text=owed.text, tags=owed.tags, about=owed.about)
        try:
            posted = slack.client.chat_postMessage(
                channel=owed.channel_id,
                unfurl_links=False,
                metadata=question_metadata(owed.id),
                **message.as_kwargs(),
                **slack.auth,
            )
        except SLACK_FAILURES as exc:
            if is_server_error(exc) and post_try + 1 < POST_TRIES:
                # Slack answered, so it is done with that request, whether it posted or not: look, then try again.
                logger.info(
                    "question %s: Slack answered its post with %s; looking before trying again",
                    owed.id,
                    error_code(exc),
                )
                look = True
                continue
            _not_posted(services, owed, notify, exc, reached_slack=True)
            return False
        return _record(services, owed, str(posted["ts"]), private)
    raise AssertionError("unreachable: the last try returns")


def is_server_error(exc: BaseException) -> bool:
    return isinstance(exc, SlackApiError) and exc.response is not None and exc.response.status_code >= 500


def find_earlier_post(slack: WorkspaceClient, owed: OwedQuestion) -> str | None:
    """The ts of our post of this question in its channel, if an earlier attempt made it (the messages since a
    little before the question was stored, with their metadata). Raises Unconfirmed when there are more of
    them than HISTORY_PAGES pages."""
    bot_id = slack.client.auth_test(**slack.auth).get("bot_id")
    oldest = f"{(owed.created_at - HISTORY_MARGIN).timestamp():.6f}"
    cursor = None
    for _ in range(HISTORY_PAGES):
        page = slack.client.conversations_history(
            channel=owed.channel_id,
            oldest=oldest,
            include_all_metadata=True,
            limit=HISTORY_PAGE,
            cursor=cursor,
            **slack.auth,
        )
        for message in page.get("messages") or []:
            if is_post_of(message, owed.id, bot_id):
                return str(message["ts"])
        cursor = (page.get("response_metadata") or {}).get("next_cursor") or None
        if not cursor:
            return None
    raise Unconfirmed(owed.id)


def _record(services: Services, owed: OwedQuestion, ts: str, private: bool) -> bool:
    with services.store.session() as session:
        question = record_posted(session, owed.id, message_ts=ts, channel_private=private)
        if question is None:
            logger.warning("question %s was recorded by another attempt meanwhile (this one's post: %s)", owed.id, ts)
            return False
        # Routing is now due after the grace period, in the database: a restart cannot lose it.
        escalation.await_routing(question, services.clock.now(), services.settings)
    logger.info("question %s posted in %s at %s", owed.id, owed.channel_id, ts)
    return True


def _not_posted(
    services: Services, owed: OwedQuestion, notify: Notify, exc: BaseException, *, reached_slack: bool
) -> None:
    """A Slack call of the attempt failed: refused (the asker is told why), or to be tried again later."""
    code = error_code(exc)
    if may_have_happened(exc) and reached_slack:
        # The post may be in the channel: the lease stays until it runs out, then the next attempt looks first.
        logger.warning(
            "question %s: no answer from Slack to its post in %s (%s); it stays owed", owed.id, owed.channel_id, code
        )
        _slow(owed, notify)
        return
    if may_have_happened(exc) or code == "ratelimited":
        logger.warning(
            "question %s not posted in %s yet (%s); the posting tick tries again", owed.id, owed.channel_id, code
        )
        _release(services, owed)
        _slow(owed, notify)
        return
    logger.warning("question %s not posted in %s: %s", owed.id, owed.channel_id, code)
    _give_up(services, owed, notify, explain(code))


def _give_up(services: Services, owed: OwedQuestion, notify: Notify, why: str) -> None:
    with services.store.session() as session:
        first = record_unposted(session, owed.id)
    if first:
        _tell(owed, notify, why + quote_back(owed.text))


def _release(services: Services, owed: OwedQuestion) -> None:
    with services.store.session() as session:
        release_posting(session, owed.id)


def _slow(owed: OwedQuestion, notify: Notify) -> None:
    """Once, from the first attempt (the listener's, right after the ack): the question follows by itself."""
    if owed.attempt == 1:
        _tell(owed, notify, POST_DELAYED)


def _tell(owed: OwedQuestion, notify: Notify, text: str) -> None:
    try:
        notify(text)
    except Exception as exc:  # the response_url's own HTTP call (a webhook, not the Web API)
        logger.warning("could not tell %s about question %s: %s", owed.asker_id, owed.id, exc.__class__.__name__)


# --- the posting tick ---------------------------------------------------------------------------------------


def tick(services: Services, client: Any, now: datetime, token_for: TokenLookup | None = None) -> int:
    """The scheduler's posting job: finish the questions still owed to their channel that nobody is posting
    (stored at least OWED_AFTER ago: the listener after the ack goes first), then suggest or route each one
    posted. Returns how many were posted."""
    workspace_slack = WorkspaceClients(client, token_for)
    with services.store.session() as session:
        owed = owed_questions(session, now - OWED_AFTER, now, MAX_OWED)
    posted = 0
    for question_id, team_id in owed:
        if services.stopping.is_set():
            break
        slack = workspace_slack(team_id)
        try:
            if publish_and_suggest(slack, services, question_id):
                posted += 1
        except Exception:
            logger.exception("posting question %s failed; the next tick tries again", question_id)
    return posted
