"""Sending the routing DMs and keeping them in line with their questions.

Every DM is claimed (scheduled -> sent) by a conditional UPDATE before it is posted, so two replicas never send
the same one; a DM sent is redrawn when its question is resolved or re-opened. Also the notes to one person
(an ephemeral, or a DM when the channel won't take it) and message permalinks."""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from sqlalchemy import exists, select, update
from sqlalchemy.orm import Session

from bot.messages.blocks import Message
from bot.messages.questions import resolution_text
from bot.messages.routing import (
    ROUTE_CLOSED_NOTE,
    ROUTE_DECLINED_NOTE,
    ROUTE_OPEN,
    ROUTE_TAKEN_NOTE,
    RoutedQuestion,
    route_dm,
)
from bot.routing.evidence import PersonFacts, QuestionFacts, earlier_answer
from bot.services import Services
from bot.slack_errors import SLACK_FAILURES, error_code, may_have_happened
from bot.workspaces import WorkspaceClient
from models.expert import (
    NOTIFY_DAILY,
    ROUTE_CANCELLED,
    ROUTE_DECLINED,
    ROUTE_SCHEDULED,
    ROUTE_SENT,
    ROUTE_TAKEN,
    Person,
    RouteRequest,
)
from models.question import STATUS_OPEN, STATUS_RESOLVED, Answer, Question
from models.workspace import Workspace

logger = logging.getLogger("peerlearn.routing")

MAX_DUE = 200  # steps and DMs taken per tick; the next tick takes the rest


def permalink(slack: WorkspaceClient, channel_id: str, message_ts: str | None) -> str | None:
    if not message_ts:
        return None
    try:
        return str(slack.client.chat_getPermalink(channel=channel_id, message_ts=message_ts, **slack.auth)["permalink"])
    except SLACK_FAILURES as exc:
        logger.warning("no permalink for %s in %s: %s", message_ts, channel_id, error_code(exc))
        return None


def tell(slack: WorkspaceClient, *, channel_id: str | None, user_id: str, message: Message) -> bool:
    """An ephemeral note in the channel, or a DM when the channel won't take it (or there is none); False when
    neither worked."""
    if channel_id:
        try:
            slack.client.chat_postEphemeral(channel=channel_id, user=user_id, **message.as_kwargs(), **slack.auth)
            return True
        except SLACK_FAILURES as exc:
            logger.info("ephemeral to %s in %s failed (%s); sending a DM", user_id, channel_id, error_code(exc))
    return dm(slack, user_id, message)


def dm(slack: WorkspaceClient, user_id: str, message: Message, **options: Any) -> bool:
    """A DM to one person (`options`: chat.postMessage's others, e.g. unfurl_links); False, logged, when Slack
    refuses or does not answer."""
    try:
        channel = slack.client.conversations_open(users=user_id, **slack.auth)["channel"]["id"]
        slack.client.chat_postMessage(channel=channel, **options, **message.as_kwargs(), **slack.auth)
        return True
    except SLACK_FAILURES as exc:
        logger.warning("could not DM %s: %s", user_id, error_code(exc))
        return False


# --- sending DMs -----------------------------------------------------------------------------------------------


def send_due_dms(
    workspace_slack: Callable[[str], WorkspaceClient],
    services: Services,
    now: datetime,
    *,
    question_id: int | None = None,
) -> int:
    """Send every scheduled DM due at `now` (of one question, or all); returns how many went out.

    For one question (right after routing it), people who chose a daily summary are left to the tick's
    pass over all due DMs, which puts everything due for them in one message."""
    query = (
        select(RouteRequest.id, RouteRequest.team_id, RouteRequest.expert_id)
        .join(Workspace, Workspace.team_id == RouteRequest.team_id)
        .where(RouteRequest.status == ROUTE_SCHEDULED, RouteRequest.send_at <= now, Workspace.active.is_(True))
        .order_by(RouteRequest.send_at, RouteRequest.id)
        .limit(MAX_DUE)
    )
    if question_id is not None:
        query = query.where(RouteRequest.question_id == question_id)
    with services.store.session() as session:
        rows = session.execute(query).all()
    by_expert: dict[tuple[str, str], list[int]] = defaultdict(list)
    for request_id, team_id, expert_id in rows:
        by_expert[(team_id, expert_id)].append(request_id)
    sent = 0
    for (team_id, expert_id), request_ids in by_expert.items():
        try:
            sent += _deliver(
                workspace_slack(team_id), services, team_id, expert_id, request_ids, now, summary=question_id is None
            )
        except Exception:
            logger.exception("DMs to %s in %s failed", expert_id, team_id)
    return sent


def _claim_dm(session: Session, request_id: int, now: datetime) -> bool:
    """scheduled -> sent, only while the question is open: exactly one replica wins each DM."""
    still_open = exists().where(Question.id == RouteRequest.question_id, Question.status == STATUS_OPEN)
    result = session.execute(
        update(RouteRequest)
        .where(RouteRequest.id == request_id, RouteRequest.status == ROUTE_SCHEDULED, still_open)
        .values(status=ROUTE_SENT, sent_at=now)
        .execution_options(synchronize_session=False)
    )
    return result.rowcount == 1  # type: ignore[attr-defined]


def _cancel(session: Session, request_ids: Sequence[int], reason: str | None = None, *, was_sent: bool = False) -> None:
    values: dict[str, Any] = {"status": ROUTE_CANCELLED}
    if reason:
        values["reason"] = reason[:500]
    if was_sent:
        values["sent_at"] = None  # it never reached them: it does not count toward their cap
    status = ROUTE_SENT if was_sent else ROUTE_SCHEDULED
    session.execute(
        update(RouteRequest)
        .where(RouteRequest.id.in_(request_ids), RouteRequest.status == status)
        .values(**values)
        .execution_options(synchronize_session=False)
    )


def _deliver(
    slack: WorkspaceClient,
    services: Services,
    team_id: str,
    expert_id: str,
    request_ids: list[int],
    now: datetime,
    *,
    summary: bool,
) -> int:
    with services.store.session() as session:
        person = session.get(Person, (team_id, expert_id))
        why_not = PersonFacts.of(person).why_not_routable(now) if person is not None else None
        if why_not:
            _cancel(session, request_ids, f"not sent: {why_not}")
            logger.info("DMs to %s cancelled: %s", expert_id, why_not)
            return 0
        daily = person is not None and person.notify_mode == NOTIFY_DAILY
        if daily and not summary:
            return 0
    with services.store.session() as session:
        claimed = [request_id for request_id in request_ids if _claim_dm(session, request_id, now)]
    with services.store.session() as session:
        _cancel(session, [r for r in request_ids if r not in claimed], "not sent: the question was closed")
        pairs = session.execute(
            select(RouteRequest, Question)
            .join(Question, Question.id == RouteRequest.question_id)
            .where(RouteRequest.id.in_(claimed))
            .order_by(RouteRequest.send_at, RouteRequest.id)
        ).all()
        found = [(request.id, QuestionFacts.of(question), request.reason) for request, question in pairs]
    if not found:
        return 0
    links: dict[int, str | None] = {}
    items = []
    for request_id, facts, reason in found:
        if facts.id not in links:
            links[facts.id] = permalink(slack, facts.channel_id, facts.message_ts)
        items.append((request_id, routed_item(facts, reason, links[facts.id])))
    batches = [items] if daily else [[item] for item in items]
    sent = 0
    try:
        dm_channel = slack.client.conversations_open(users=expert_id, **slack.auth)["channel"]["id"]
    except SLACK_FAILURES as exc:
        _undeliverable(services, team_id, expert_id, [request_id for request_id, _ in items], error_code(exc))
        return 0
    for batch in batches:
        batch_ids = [request_id for request_id, _ in batch]
        try:
            posted = slack.client.chat_postMessage(
                channel=dm_channel,
                unfurl_links=False,
                **route_dm([item for _, item in batch]).as_kwargs(),
                **slack.auth,
            )
        except SLACK_FAILURES as exc:
            if may_have_happened(exc):  # it may have reached them: it counts as sent, and is never sent twice
                logger.warning("DM to %s got no answer from Slack (%s); counted as sent", expert_id, error_code(exc))
                continue
            _undeliverable(services, team_id, expert_id, batch_ids, error_code(exc))
            continue
        with services.store.session() as session:
            session.execute(
                update(RouteRequest)
                .where(RouteRequest.id.in_(batch_ids))
                .values(dm_channel=str(posted["channel"]), dm_ts=str(posted["ts"]))
                .execution_options(synchronize_session=False)
            )
        sent += len(batch_ids)
    logger.info("sent %s routing DM(s) to %s", sent, expert_id)
    return sent


def _undeliverable(services: Services, team_id: str, expert_id: str, request_ids: list[int], code: str) -> None:
    logger.warning("DM to %s failed: %s", expert_id, code)
    with services.store.session() as session:
        _cancel(session, request_ids, f"Slack refused the DM: {code}", was_sent=True)
        if code in ("user_disabled", "user_not_found"):
            person = session.get(Person, (team_id, expert_id))
            if person is not None:
                person.deleted = True


def routed_item(
    facts: QuestionFacts,
    reason: str | None,
    link: str | None,
    state: str = ROUTE_OPEN,
    resolved: Resolved | None = None,
) -> RoutedQuestion:
    return RoutedQuestion(
        question_id=facts.id,
        asker_id=facts.asker_id,
        channel_id=facts.channel_id,
        text=facts.text,
        tags=facts.tags,
        reason=reason or "",
        link=link,
        state=state,
        resolution=resolved.text() if resolved is not None else None,
    )


# --- keeping the DMs in line with their questions ----------------------------------------------------------


@dataclass(frozen=True)
class Resolved:
    """How a resolved question was resolved, as its channel message and its routing DMs show it: an accepted
    answer (by `resolved_by`) or an earlier question or lesson (`answered_earlier`), at `message_ts`."""

    resolved_by: str | None
    answered_earlier: str | None
    channel_id: str
    message_ts: str | None
    link: str | None = None  # chat.getPermalink of that answer, question or lesson (with_link)

    def text(self) -> str | None:
        return resolution_text(self.resolved_by, self.link, self.answered_earlier)

    def with_link(self, slack: WorkspaceClient) -> Resolved:
        return replace(self, link=permalink(slack, self.channel_id, self.message_ts))


def load_resolved(session: Session, question_id: int) -> Resolved | None:
    """How the question was resolved; None while it is open (or gone)."""
    question = session.get(Question, question_id)
    if question is None or question.status != STATUS_RESOLVED:
        return None
    answer = session.get(Answer, question.accepted_answer_id) if question.accepted_answer_id else None
    if answer is not None:
        return Resolved(answer.user_id, None, answer.channel_id, answer.ts)
    earlier = earlier_answer(session, question_id)
    return Resolved(None, earlier[0], earlier[1], earlier[2]) if earlier is not None else None


def redraw_routed_dms(
    slack: WorkspaceClient, services: Services, question_id: int, resolutions: dict[int, Resolved | None] | None = None
) -> int:
    """After a question was resolved or re-opened: every routing DM sent about it (and only those) redrawn
    once, to say how it was resolved, or to show its buttons (or the expert's own answer) again. `resolutions`:
    what the caller knows already (with links), so nothing is asked of Slack twice. Returns the DMs updated."""
    with services.store.session() as session:
        sent = session.execute(
            select(RouteRequest.expert_id, RouteRequest.dm_channel, RouteRequest.dm_ts)
            .where(RouteRequest.question_id == question_id, RouteRequest.dm_ts.is_not(None))
            .order_by(RouteRequest.id)
        ).all()
    known = dict(resolutions or {})
    links: dict[int, str | None] = {}
    return sum(
        _redraw_dm(slack, services, expert_id, dm_channel, dm_ts, known, links)
        for expert_id, dm_channel, dm_ts in sent
        if dm_channel and dm_ts
    )


def redraw_dm(slack: WorkspaceClient, services: Services, team_id: str, expert_id: str, question_id: int) -> None:
    """Bring the expert's DM about this question (a single one, or their daily summary) in line with the
    database: the buttons give way to "you're on it", "I'll ask someone else" or how it was resolved."""
    with services.store.session() as session:
        request = session.scalar(
            select(RouteRequest).where(RouteRequest.question_id == question_id, RouteRequest.expert_id == expert_id)
        )
        if request is None or request.team_id != team_id or not request.dm_channel or not request.dm_ts:
            return
        dm_channel, dm_ts = request.dm_channel, request.dm_ts
    _redraw_dm(slack, services, expert_id, dm_channel, dm_ts, {}, {})


def _redraw_dm(
    slack: WorkspaceClient,
    services: Services,
    expert_id: str,
    dm_channel: str,
    dm_ts: str,
    resolutions: dict[int, Resolved | None],
    links: dict[int, str | None],
) -> bool:
    """One DM (chat.update) redrawn from the database; `resolutions` and `links` (question permalinks) are
    filled as they are learned, for the next DM."""
    with services.store.session() as session:
        pairs = session.execute(
            select(RouteRequest, Question)
            .join(Question, Question.id == RouteRequest.question_id)
            .where(
                RouteRequest.expert_id == expert_id,
                RouteRequest.dm_channel == dm_channel,
                RouteRequest.dm_ts == dm_ts,
            )
            .order_by(RouteRequest.send_at, RouteRequest.id)
        ).all()
        found = [
            (QuestionFacts.of(question), request.reason, _dm_state(request, question)) for request, question in pairs
        ]
        unknown = {facts.id for facts, _, _ in found if facts.status == STATUS_RESOLVED} - resolutions.keys()
        loaded = {question_id: load_resolved(session, question_id) for question_id in sorted(unknown)}
    for question_id, resolved in loaded.items():
        resolutions[question_id] = resolved.with_link(slack) if resolved is not None else None
    items = []
    for facts, reason, state in found:
        if facts.id not in links:
            links[facts.id] = permalink(slack, facts.channel_id, facts.message_ts)
        resolved = resolutions.get(facts.id) if facts.status == STATUS_RESOLVED else None
        items.append(routed_item(facts, reason, links[facts.id], state, resolved))
    if not items:
        return False
    try:
        slack.client.chat_update(channel=dm_channel, ts=dm_ts, **route_dm(items).as_kwargs(), **slack.auth)
        return True
    except SLACK_FAILURES as exc:
        logger.warning("could not update the routing DM %s to %s: %s", dm_ts, expert_id, error_code(exc))
        return False


def _dm_state(request: RouteRequest, question: Question) -> str:
    if request.status == ROUTE_TAKEN:
        return ROUTE_TAKEN_NOTE
    if request.status == ROUTE_DECLINED:
        return ROUTE_DECLINED_NOTE
    if request.status == ROUTE_CANCELLED or question.status != STATUS_OPEN:
        return ROUTE_CLOSED_NOTE
    return ROUTE_OPEN
