"""The buttons on questions and routing DMs: what a click changes is stored before the ack (database only, in
the listener's transaction); what Slack is told happens after it (after_take, after_decline), in the lazy step.

"I'll take it" and "Not me" from an expert, "This answers it" and "Still need help" from the asker."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import exists, select, update
from sqlalchemy.orm import Session

from bot.messages.routing import on_it_message
from bot.routing.delivery import redraw_dm, send_due_dms
from bot.routing.escalation import LEVEL_NEW, already_involved, cancel_pending, plan_question, record_dms
from bot.routing.evidence import earlier_item, load_question, reads_channel
from bot.search import KIND_LESSON, KIND_QUESTION
from bot.services import Services
from bot.slack_errors import SLACK_FAILURES, error_code
from bot.workspace_settings import effective_settings
from bot.workspaces import WorkspaceClient
from models.base import insert_once, parse_row_id
from models.expert import ROUTE_DECLINED, ROUTE_SCHEDULED, ROUTE_SENT, ROUTE_TAKEN, RouteRequest
from models.question import RESOLUTION_SIMILAR, STATUS_OPEN, STATUS_RESOLVED, Question
from models.stats_rollup import refresh_question_stats

logger = logging.getLogger("peerlearn.routing")


TAKEN = "taken"  # "I'll take it": this person is on it now
DECLINED = "declined"  # "Not me"
RESOLVED = "resolved"  # "This answers it"
ROUTING = "routing"  # "Still need help": experts are asked now
ALREADY = "already"  # nothing changed: a double click, or it happened before
CLOSED = "closed"  # the question is resolved, or unknown
OWN = "own"  # the asker can't take or pass on their own question
NOT_ASKER = "not_asker"  # only the asker can resolve their question or ask for help
UNREADABLE = "unreadable"  # the question is in a private channel this person is not a member of


@dataclass(frozen=True)
class ButtonOutcome:
    """What a click changed; plain values, so a listener can hand it to its lazy step through the context."""

    result: str
    question_id: int
    round: int = 1
    was_routed: bool = False  # the person had been asked about it: after "Not me", someone else is

    def as_context(self) -> dict[str, Any]:
        return {
            "result": self.result,
            "question_id": self.question_id,
            "round": self.round,
            "was_routed": self.was_routed,
        }

    @classmethod
    def from_context(cls, data: Mapping[str, Any]) -> ButtonOutcome:
        return cls(str(data["result"]), int(data["question_id"]), int(data["round"]), bool(data["was_routed"]))


def _open_question(session: Session, team_id: str, question_id: int) -> Question | None:
    question = session.get(Question, question_id)
    return question if question is not None and question.team_id == team_id else None


def _request_of(session: Session, question_id: int, user_id: str) -> RouteRequest | None:
    return session.scalar(
        select(RouteRequest).where(RouteRequest.question_id == question_id, RouteRequest.expert_id == user_id)
    )


def _set_status(session: Session, request_id: int, status: str, allowed_from: Sequence[str]) -> bool:
    result = session.execute(
        update(RouteRequest)
        .where(RouteRequest.id == request_id, RouteRequest.status.in_(allowed_from))
        .values(status=status)
        .execution_options(synchronize_session=False)
    )
    return result.rowcount == 1  # type: ignore[attr-defined]


@dataclass(frozen=True)
class _Reply:
    """How an expert's button changes their request for a question."""

    status: str  # the request's status after the click
    result: str  # the outcome when it changed
    unasked: str  # the reason recorded when they had not been asked
    replaces: tuple[str, ...]  # the statuses it may change
    cancels_others: bool  # the DMs still waiting to be sent to others are cancelled


_TAKE = _Reply(ROUTE_TAKEN, TAKEN, "took it without being asked", (ROUTE_SCHEDULED, ROUTE_SENT, ROUTE_DECLINED), True)
_DECLINE = _Reply(
    ROUTE_DECLINED, DECLINED, "passed without being asked", (ROUTE_SCHEDULED, ROUTE_SENT, ROUTE_TAKEN), False
)


def take_question(session: Session, team_id: str, question_id: int, user_id: str, now: datetime) -> ButtonOutcome:
    """An expert's "I'll take it" (from a DM, an ephemeral or the App Home): idempotent, a double click
    changes nothing.
    Pending DMs to others are cancelled: someone is on it."""
    return _reply(session, team_id, question_id, user_id, now, _TAKE)


def decline_question(session: Session, team_id: str, question_id: int, user_id: str, now: datetime) -> ButtonOutcome:
    """An expert's "Not me": this person is not asked about it again; when they had been asked, someone else is."""
    return _reply(session, team_id, question_id, user_id, now, _DECLINE)


def _reply(
    session: Session, team_id: str, question_id: int, user_id: str, now: datetime, reply: _Reply
) -> ButtonOutcome:
    question = _open_question(session, team_id, question_id)
    if question is None:
        return ButtonOutcome(CLOSED, question_id)
    if question.asker_id == user_id:
        return ButtonOutcome(OWN, question_id)
    if question.status != STATUS_OPEN:
        return ButtonOutcome(CLOSED, question_id)
    request = _request_of(session, question_id, user_id)
    if request is None:
        unasked = RouteRequest(
            team_id=team_id,
            question_id=question_id,
            expert_id=user_id,
            round=max(question.escalation_level, 1),
            status=reply.status,
            reason=reply.unasked,
            send_at=now,
        )
        if not insert_once(session, unasked):  # a double click inserted it meanwhile
            return ButtonOutcome(ALREADY, question_id, unasked.round)
        if reply.cancels_others:
            cancel_pending(session, question_id)
        return ButtonOutcome(reply.result, question_id, unasked.round)
    if _set_status(session, request.id, reply.status, reply.replaces):
        if reply.cancels_others:
            cancel_pending(session, question_id)
        return ButtonOutcome(reply.result, question_id, request.round, was_routed=True)
    return ButtonOutcome(ALREADY, question_id, request.round)


def parse_earlier(value: str) -> tuple[int, str, int] | None:
    """The value of a "This answers it" button, "<question id>:<kind>:<item id>" (see similar_answer_value)."""
    parts = (value or "").split(":")
    if len(parts) != 3 or parts[1] not in (KIND_QUESTION, KIND_LESSON):
        return None
    question_id, item_id = parse_row_id(parts[0]), parse_row_id(parts[2])
    return None if question_id is None or item_id is None else (question_id, parts[1], item_id)


def resolve_with_earlier(
    session: Session, team_id: str, question_id: int, user_id: str, kind: str, ref_id: int, now: datetime
) -> ButtonOutcome:
    """The asker's "This answers it": their question is resolved by an earlier question or lesson; nobody is
    pinged (DMs waiting to be sent are cancelled) and how it was resolved is recorded."""
    question = _open_question(session, team_id, question_id)
    earlier = earlier_item(session, kind, ref_id)
    if question is None or earlier is None or earlier.team_id != team_id:
        return ButtonOutcome(CLOSED, question_id)
    if earlier.channel_private and earlier.channel_id != question.channel_id:
        return ButtonOutcome(CLOSED, question_id)  # never link a private channel's item elsewhere
    result = session.execute(
        update(Question)
        .where(
            Question.id == question_id,
            Question.team_id == team_id,
            Question.asker_id == user_id,
            Question.status == STATUS_OPEN,
        )
        .values(
            status=STATUS_RESOLVED,
            resolved_at=now,
            resolution=RESOLUTION_SIMILAR,
            resolution_ref=f"{kind}:{ref_id}",
            next_escalation_at=None,
        )
        .execution_options(synchronize_session=False)
    )
    if result.rowcount == 1:  # type: ignore[attr-defined]
        cancel_pending(session, question_id)
        refresh_question_stats(session, question_id)
        return ButtonOutcome(RESOLVED, question_id)
    question = _open_question(session, team_id, question_id)
    if question is None:
        return ButtonOutcome(CLOSED, question_id)
    return ButtonOutcome(NOT_ASKER if question.asker_id != user_id else ALREADY, question_id)


def ask_experts_now(session: Session, team_id: str, question_id: int, user_id: str, now: datetime) -> ButtonOutcome:
    """The asker's "Still need help": routing is due now (the lazy step routes at once; should it die, the
    next tick does)."""
    question = _open_question(session, team_id, question_id)
    if question is None or question.status != STATUS_OPEN:
        return ButtonOutcome(CLOSED, question_id)
    if question.asker_id != user_id:
        return ButtonOutcome(NOT_ASKER, question_id)
    if question.escalation_level != LEVEL_NEW:
        return ButtonOutcome(ALREADY, question_id)
    question.next_escalation_at = now
    return ButtonOutcome(ROUTING, question_id)


def after_take(slack: WorkspaceClient, services: Services, outcome: ButtonOutcome, team_id: str, user_id: str) -> None:
    """Slack side of "I'll take it": a note in the question's thread (once), and the DM redrawn."""
    if outcome.result == TAKEN:
        with services.store.session() as session:
            facts = load_question(session, outcome.question_id)
        if facts is not None and facts.message_ts:
            try:
                slack.client.chat_postMessage(
                    channel=facts.channel_id,
                    thread_ts=facts.message_ts,
                    **on_it_message(user_id).as_kwargs(),
                    **slack.auth,
                )
            except SLACK_FAILURES as exc:
                logger.warning("could not say in %s that %s took it: %s", facts.channel_id, user_id, error_code(exc))
    redraw_dm(slack, services, team_id, user_id, outcome.question_id)


def after_decline(
    slack: WorkspaceClient, services: Services, outcome: ButtonOutcome, team_id: str, user_id: str
) -> None:
    """Slack side of "Not me": the DM redrawn, and the next candidate asked (once: only the click that
    changed the request gets here with DECLINED)."""
    redraw_dm(slack, services, team_id, user_id, outcome.question_id)
    if outcome.result == DECLINED and outcome.was_routed:
        route_replacement(slack, services, outcome.question_id, outcome.round)


def route_replacement(slack: WorkspaceClient, services: Services, question_id: int, round_number: int) -> list[str]:
    """Ask the best expert not asked yet, unless someone has taken the question meanwhile."""
    now = services.clock.now()
    with services.store.session() as session:
        facts = load_question(session, question_id)
        if facts is None or facts.status != STATUS_OPEN:
            return []
        taken = session.scalar(
            select(exists().where(RouteRequest.question_id == question_id, RouteRequest.status == ROUTE_TAKEN))
        )
        if taken:
            return []
        involved = already_involved(session, question_id)
        settings = effective_settings(session, facts.team_id, services.settings)
    plan = plan_question(slack, services, facts, now, settings=settings, top_n=1, exclude=involved)
    with services.store.session() as session:
        asked = record_dms(session, facts, plan, round_number)
    logger.info("question %s: asked %s instead", question_id, ", ".join(asked) or "nobody")
    send_due_dms(lambda _team: slack, services, now, question_id=question_id)
    return asked


def may_read_question(
    slack: WorkspaceClient, services: Services, team_id: str, user_id: str, question_id: int | None
) -> bool:
    """Whether a button's question (if it names one) is in a channel the person may read (evidence's
    membership rule); a question that names nothing, or no question of this workspace, is left to the click's
    own handling."""
    if question_id is None:
        return True
    with services.store.session() as session:
        question = session.get(Question, question_id)
        if question is None or question.team_id != team_id:
            return True
        channel_id, private = question.channel_id, question.channel_private
    return reads_channel(slack, user_id, channel_id, private)
