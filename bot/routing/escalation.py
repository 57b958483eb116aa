"""Escalation: planning a question's DMs, and the steps that take it from posted to bumped.

bot.routing.ranker ranks experts and bot.routing.planner times their DMs (pure); bot.routing.evidence loads
what they need. This module plans one question (asking Slack about the planned people only), records one
RouteRequest per DM (sent now, or scheduled for the expert's morning: bot.routing.delivery sends it), and
escalates.

Each question moves through `questions.escalation_level`, `next_escalation_at` saying when the next step
is due (the scheduler's `tick` takes due steps; the asker's buttons take the first one early):
  0  posted, nobody asked yet: routed at once when no similar earlier answer was found, when the asker
     clicks "Still need help", or when the grace period for reading the suggestions is over;
  1  round 1 DMed: still unanswered after the escalation period, the next experts are DMed (round 2);
  2  round 2 DMed: still unanswered after another period, a gentle bump in the thread;
The period counts the working time of the experts the round asked (planner.working_deadline): a question
asked on Friday evening waits over the weekend, when none of them is at work, instead of escalating then.
  3  bumped: nothing more.
An answer in the thread clears `next_escalation_at` (stop_escalation); resolving the question cancels the
DMs still waiting to be sent (cancel_pending), and the DMs sent are redrawn to say how it was resolved (and
redrawn back if it is re-opened: redraw_routed_dms). After round 1 the asker is told who was asked and who
will be, and roughly when (routing_note).

Several replicas and restarts: all state is in the database. A step claims its question with a conditional
UPDATE (... WHERE escalation_level = <seen> AND status = 'open') in the transaction that records its DMs, and
every DM is claimed (status scheduled -> sent) by a conditional UPDATE before it is posted (delivery), so two
replicas never send the same DM. A process killed between a claim and its Slack call loses that one message
rather than sending it twice.
"""

from __future__ import annotations

import logging
from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, tzinfo

from slack_sdk import WebClient
from sqlalchemy import exists, select, update
from sqlalchemy.orm import Session

from bot.config import Settings
from bot.messages.blocks import ephemeral
from bot.messages.onboarding import NO_TAGS_BUDDY_NOTE, buddy_asked_text, buddy_reason
from bot.messages.routing import bump_message
from bot.messages.routing_notes import (
    NO_TAGS_NOTE,
    NOBODY_ASKED_NOTE,
    asker_alone_here_text,
    asker_alone_text,
    experts_busy_text,
    knowledge_gap_text,
    roughly_when,
    routing_plan_text,
)
from bot.routing.delivery import MAX_DUE, send_due_dms, tell
from bot.routing.evidence import (
    DMLoad,
    PersonFacts,
    QuestionFacts,
    channel_members,
    load_dm_load,
    load_evidence,
    load_question,
    needs_profile,
    refresh_profiles,
)
from bot.routing.planner import (
    Availability,
    PlannedDM,
    availability_of,
    escalation_period,
    next_summary_time,
    plan_routing,
    resolve_timezone,
    spread_ties,
    working_deadline,
)
from bot.routing.ranker import ScoredExpert, rank_experts
from bot.services import Services
from bot.slack_errors import SLACK_FAILURES, error_code
from bot.workspace_settings import effective_settings
from bot.workspaces import TokenLookup, WorkspaceClient, WorkspaceClients
from models.base import insert_if_new, insert_once
from models.expert import (
    FORGOTTEN_USER_ID,
    NOTIFY_DAILY,
    NOTIFY_OFF,
    ROUTE_CANCELLED,
    ROUTE_SCHEDULED,
    KnowledgeGap,
    Person,
    RouteRequest,
)
from models.onboarding import buddy_of
from models.question import STATUS_OPEN, Answer, Question
from models.workspace import Workspace

logger = logging.getLogger("peerlearn.routing")

LEVEL_NEW, LEVEL_ROUND_1, LEVEL_ROUND_2, LEVEL_BUMPED = 0, 1, 2, 3
MAX_PROFILE_ROUNDS = 4  # plan, refresh the planned people's profiles, plan again


# --- planning one question's DMs ------------------------------------------------------------------------------


@dataclass(frozen=True)
class RoutingPlan:
    dms: list[PlannedDM]
    reasons: dict[str, str]  # user -> why they were picked (the ranker's reason, shown in the DM)
    gaps: list[str] = field(default_factory=list)  # tags nobody declared or answered on: knowledge gaps
    asker_alone: list[str] = field(default_factory=list)  # tags only the asker declared or answered on
    # A private channel's tags that others know, but the asker is the only one of them who is a member.
    asker_alone_here: list[str] = field(default_factory=list)
    unavailable: list[str] = field(default_factory=list)  # tags whose people exist but none could be DMed
    hours: dict[str, Availability | None] = field(default_factory=dict)  # the DMed people's working time

    def asked_at_work(self) -> list[tuple[datetime, Availability | None]]:
        """When each DM goes out, with its expert's working time: what the escalation period counts."""
        return [(dm.send_at, self.hours.get(dm.user_id)) for dm in self.dms]


def plan_question(
    slack: WorkspaceClient,
    services: Services,
    facts: QuestionFacts,
    now: datetime,
    *,
    settings: Settings,
    top_n: int,
    exclude: Collection[str],
    buddy: tuple[str, str] | None = None,
) -> RoutingPlan:
    """Rank and plan who to DM about a question, and when, with the workspace's `settings` (its effective ones:
    bot/workspace_settings.py). Asks Slack about the planned people only. `buddy`: (the asker's onboarding
    buddy, the asker's name) while the asker is a newcomer: the buddy is DMed first, within their own working
    time and daily cap, and the experts as usual besides (bot/onboarding.py)."""
    tags = list(facts.tags)
    if (not tags and buddy is None) or top_n <= 0:
        return RoutingPlan([], {})
    excluded = set(exclude) | {facts.asker_id, FORGOTTEN_USER_ID}
    buddy_id = buddy[0] if buddy is not None and buddy[0] not in excluded else None
    with services.store.session() as session:
        evidence = load_evidence(session, facts.team_id, tags, facts.text, now, excluded)
        loaded = set(evidence.user_ids) | ({buddy_id} if buddy_id else set())
        load = load_dm_load(session, facts.team_id, sorted(loaded), now)
        buddy_person = session.get(Person, (facts.team_id, buddy_id)) if buddy_id else None
        buddy_facts = PersonFacts.of(buddy_person) if buddy_person is not None else None
    members = None  # a private channel's members (None: Slack wouldn't say, and then nobody is DMed)
    if facts.channel_private and (evidence.user_ids or buddy_id):
        members = channel_members(slack, facts.channel_id)

    def may_see(user_id: str) -> bool:  # only people who can read a private channel see its question (its link)
        return not facts.channel_private or (members is not None and user_id in members)

    people = dict(evidence.people)
    max_age = timedelta(hours=settings.profile_max_age_hours)
    asked_slack: set[str] = set()
    planned: list[PlannedDM] = []
    reasons: dict[str, str] = {}
    for _ in range(MAX_PROFILE_ROUNDS):
        candidates = []
        for user_id in sorted(evidence.user_ids):
            person = people.get(user_id)
            if user_id in excluded or user_id == buddy_id or not may_see(user_id):
                continue
            if person is not None and person.notify_mode == NOTIFY_OFF:
                continue
            # What Slack said is trusted while fresh; a stale "deactivated" is asked again if they would be DMed.
            known = person is not None and (user_id in asked_slack or not needs_profile(person, now, max_age))
            candidates.append(
                evidence.candidate(
                    user_id,
                    is_bot=bool(known and person and person.is_bot),
                    is_paused=bool(person and person.is_paused(now)),
                    is_deactivated=bool(known and person and person.deleted),
                )
            )
        ranked = rank_experts(
            tags, candidates, now, question_text=facts.text, exclude=excluded, tag_stats=evidence.tag_stats
        )
        ranked = spread_ties([expert for expert in ranked if expert.expertise > 0], load.recent)
        reasons = {expert.user_id: expert.reason for expert in ranked}
        availability = {
            user_id: hours
            for user_id in reasons
            if (hours := availability_of(people.get(user_id), settings)) is not None
        }
        planned = plan_routing(
            ranked,
            now=now,
            top_n=top_n,
            daily_cap=settings.daily_dm_cap,
            dm_counts_today=load.counts_today(now, people),
            availability_by_user=availability,
        )
        stale = [
            dm.user_id
            for dm in planned
            if dm.user_id not in asked_slack and needs_profile(people.get(dm.user_id), now, max_age)
        ]
        if not stale:
            break
        asked_slack.update(stale)
        people.update(refresh_profiles(slack, services, facts.team_id, stale))
    planned = [_as_preferred(dm, people.get(dm.user_id), settings, now) for dm in planned]
    buddy_dm = None
    if buddy is not None and buddy_id is not None and may_see(buddy_id):
        buddy_dm = _plan_buddy(slack, services, facts.team_id, buddy_id, buddy_facts, load, now, settings)
        if buddy_dm is not None:
            reasons[buddy_id] = buddy_reason(buddy[1])

    def knows(user_id: str) -> bool:  # someone (but the asker) who declared or answered on a tag, and can be asked
        person = people.get(user_id)
        return user_id not in (facts.asker_id, FORGOTTEN_USER_ID) and not (person and (person.deleted or person.is_bot))

    others = {tag: {u for u in evidence.coverage.get(tag, ()) if knows(u)} for tag in tags}
    asker_knows = {tag for tag in tags if facts.asker_id in evidence.coverage.get(tag, ())}
    gaps = [tag for tag in tags if not others[tag] and tag not in asker_knows]
    alone = [tag for tag in tags if not others[tag] and tag in asker_knows]
    alone_here = [
        tag
        for tag in tags
        if tag in asker_knows and others[tag] and members is not None and not any(may_see(u) for u in others[tag])
    ]
    said = {*gaps, *alone, *alone_here}
    unavailable = [tag for tag in tags if tag not in said] if not planned else []
    planned = [buddy_dm, *planned] if buddy_dm is not None else planned
    return RoutingPlan(
        planned,
        {dm.user_id: reasons.get(dm.user_id, "") for dm in planned},
        gaps,
        alone,
        alone_here,
        unavailable,
        {dm.user_id: availability_of(people.get(dm.user_id), settings) for dm in planned},
    )


def _plan_buddy(
    slack: WorkspaceClient,
    services: Services,
    team_id: str,
    buddy_id: str,
    known: PersonFacts | None,
    load: DMLoad,
    now: datetime,
    settings: Settings,
) -> PlannedDM | None:
    """The newcomer's buddy's DM: now, or at the start of their next working shift; None when they may not be
    DMed (deactivated, a bot, paused, notifications off) or had their daily cap of DMs."""
    if needs_profile(known, now, timedelta(hours=settings.profile_max_age_hours)):
        known = refresh_profiles(slack, services, team_id, [buddy_id]).get(buddy_id, known)
    if known is not None and known.why_not_routable(now) is not None:
        return None
    hours = availability_of(known, settings)
    as_expert = ScoredExpert(buddy_id, 1.0, "onboarding buddy", 1.0, 0.0)
    planned = plan_routing(
        [as_expert],
        now=now,
        top_n=1,
        daily_cap=settings.daily_dm_cap,
        dm_counts_today=load.counts_today(now, {buddy_id: known} if known is not None else {}),
        availability_by_user={buddy_id: hours} if hours is not None else {},
    )
    return _as_preferred(planned[0], known, settings, now) if planned else None


def _as_preferred(dm: PlannedDM, person: PersonFacts | None, settings: Settings, now: datetime) -> PlannedDM:
    """People who chose a daily summary get theirs at the start of their next working day."""
    if person is None or person.notify_mode != NOTIFY_DAILY:
        return dm
    when = max(dm.send_at, next_summary_time(now, availability_of(person, settings)))
    return PlannedDM(dm.user_id, when, dm.reason + "; daily summary")


# --- state changes (in the caller's transaction) ------------------------------------------------------------


def await_routing(question: Question, now: datetime, settings: Settings) -> None:
    """A question was just posted: if nothing routes it sooner, the tick does after the grace period."""
    question.escalation_level = LEVEL_NEW
    question.next_escalation_at = now + timedelta(minutes=settings.similar_grace_minutes)


def claim_step(
    session: Session, question_id: int, level: int, next_at: datetime | None, due_by: datetime | None = None
) -> bool:
    """Move an open question from `level` to the next one; False when another replica (or click) did.
    With `due_by` (the tick), only if the step is due by then: a replica that read the question before
    another one moved it never takes the following step early."""
    conditions = [Question.id == question_id, Question.escalation_level == level, Question.status == STATUS_OPEN]
    if due_by is not None:
        conditions.append(Question.next_escalation_at <= due_by)
    result = session.execute(
        update(Question)
        .where(*conditions)
        .values(escalation_level=level + 1, next_escalation_at=next_at)
        .execution_options(synchronize_session=False)
    )
    return result.rowcount == 1  # type: ignore[attr-defined]


def stop_escalation(session: Session, question_id: int) -> None:
    """Someone answered: no further automatic step (DMs already planned still go out)."""
    session.execute(
        update(Question)
        .where(Question.id == question_id, Question.next_escalation_at.is_not(None))
        .values(next_escalation_at=None)
        .execution_options(synchronize_session=False)
    )


def cancel_pending(session: Session, question_id: int) -> int:
    """The question is resolved (or taken): DMs still waiting to be sent are not sent."""
    result = session.execute(
        update(RouteRequest)
        .where(RouteRequest.question_id == question_id, RouteRequest.status == ROUTE_SCHEDULED)
        .values(status=ROUTE_CANCELLED)
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


def has_live_answer(session: Session, question_id: int) -> bool:
    return bool(session.scalar(select(exists().where(Answer.question_id == question_id, Answer.deleted_at.is_(None)))))


def already_involved(session: Session, question_id: int) -> set[str]:
    """People asked about this question already (in any state) or who answered it: not asked again."""
    asked = session.scalars(select(RouteRequest.expert_id).where(RouteRequest.question_id == question_id))
    answered = session.scalars(
        select(Answer.user_id).where(Answer.question_id == question_id, Answer.deleted_at.is_(None))
    )
    return set(asked) | set(answered)


def record_dms(session: Session, facts: QuestionFacts, plan: RoutingPlan, round_number: int) -> list[str]:
    recorded = []
    for dm in plan.dms:
        request = RouteRequest(
            team_id=facts.team_id,
            question_id=facts.id,
            expert_id=dm.user_id,
            round=round_number,
            status=ROUTE_SCHEDULED,
            reason=(plan.reasons.get(dm.user_id) or "")[:500] or None,
            send_at=dm.send_at,
        )
        if insert_once(session, request):
            recorded.append(dm.user_id)
    return recorded


# --- taking steps ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class StepOutcome:
    question_id: int
    level: int  # the level the question reached
    asked: list[str] = field(default_factory=list)  # experts a DM was planned for (now or later)
    gaps: list[str] = field(default_factory=list)  # round 1: the tags nobody knows (said to the asker)
    bumped: bool = False
    dms_sent: int = 0  # DMs that went out with this step (those due now)
    note: str | None = None  # round 1: what the asker was (or is to be) told about it


def route_round(
    slack: WorkspaceClient,
    services: Services,
    question_id: int,
    from_level: int,
    due_by: datetime | None = None,
    *,
    tell_asker: bool = True,
) -> StepOutcome | None:
    """Round 1 (from level 0) or round 2 (from level 1): plan, claim the step and record the DMs in one
    transaction, send those due now, and (round 1) tell the asker what happens (routing_note; with
    `tell_asker` False the caller shows the outcome's note). `due_by`: see claim_step (None: now, whatever
    the schedule said, e.g. "Still need help")."""
    now = services.clock.now()
    with services.store.session() as session:
        facts = load_question(session, question_id)
        if facts is None or facts.status != STATUS_OPEN or facts.level != from_level:
            return None
        involved = already_involved(session, question_id)
        settings = effective_settings(session, facts.team_id, services.settings)
        # A newcomer's question reaches their onboarding buddy first (round 1 only).
        buddy = buddy_of(session, facts.team_id, facts.asker_id, now) if from_level == LEVEL_NEW else None
    period = escalation_period(settings)
    round_number = from_level + 1
    plan = plan_question(
        slack, services, facts, now, settings=settings, top_n=settings.route_top_n, exclude=involved, buddy=buddy
    )
    with services.store.session() as session:
        next_at = working_deadline(now, period, plan.asked_at_work())
        if not claim_step(session, question_id, from_level, next_at, due_by):
            logger.info("question %s: round %s taken by another replica", question_id, round_number)
            return None
        asked = record_dms(session, facts, plan, round_number)
        if round_number == 1:
            for tag in plan.gaps:
                insert_if_new(
                    session,
                    KnowledgeGap,
                    team_id=facts.team_id,
                    question_id=facts.id,
                    channel_id=facts.channel_id,
                    tag=tag,
                    created_at=now,
                )
    logger.info("question %s: round %s planned DMs for %s", question_id, round_number, ", ".join(asked) or "nobody")
    sent = send_due_dms(lambda _team: slack, services, now, question_id=question_id)
    if round_number != 1:
        return StepOutcome(question_id, round_number, asked, dms_sent=sent)
    note = routing_note(slack, services, facts, now, plan, period)
    if tell_asker and note:
        tell(slack, channel_id=facts.channel_id, user_id=facts.asker_id, message=ephemeral(note))
    return StepOutcome(question_id, round_number, asked, plan.gaps, dms_sent=sent, note=note)


def routing_note(
    slack: WorkspaceClient,
    services: Services,
    facts: QuestionFacts,
    now: datetime,
    plan: RoutingPlan | None = None,
    period: timedelta | None = None,
) -> str | None:
    """What the asker is told about the routing of their question: who was asked, who will be and roughly
    when (read from the DMs recorded, so it is what really happens; days in the asker's own time zone) and,
    right after planning (`plan`), the topics nobody can be asked about. None: nothing to say."""
    with services.store.session() as session:
        requests = session.execute(
            select(RouteRequest.expert_id, RouteRequest.status, RouteRequest.sent_at, RouteRequest.send_at)
            .where(RouteRequest.question_id == facts.id)
            .order_by(RouteRequest.id)
        ).all()
        waiting = [(user_id, at) for user_id, status, _, at in requests if status == ROUTE_SCHEDULED and at > now]
        asker = session.get(Person, (facts.team_id, facts.asker_id)) if waiting else None
        asker_facts = PersonFacts.of(asker) if asker is not None else None
        buddy = buddy_of(session, facts.team_id, facts.asker_id, now)
    asked = [  # a DM went out (whatever they answered since), or is going out now
        user_id
        for user_id, status, sent_at, at in requests
        if sent_at is not None or (status == ROUTE_SCHEDULED and at <= now)
    ]
    zone = asker_zone(slack, services, facts, asker_facts, now) if waiting else UTC
    # A newcomer's buddy is said apart: they were asked as the buddy, not for knowing the topics.
    buddy_id = buddy[0] if buddy is not None and buddy[0] in {*asked, *(u for u, _ in waiting)} else None
    buddy_when = next((roughly_when(now, at, zone) for u, at in waiting if u == buddy_id), None)
    asked = [user_id for user_id in asked if user_id != buddy_id]
    waiting = [(user_id, at) for user_id, at in waiting if user_id != buddy_id]
    parts = [
        buddy_asked_text(buddy_id, buddy_when) if buddy_id else None,
        routing_plan_text(asked, [(user_id, roughly_when(now, at, zone)) for user_id, at in waiting]),
    ]
    if plan is not None:
        if not facts.tags:
            parts.append(NO_TAGS_BUDDY_NOTE if buddy_id else NO_TAGS_NOTE)
        hours = int((period or timedelta()).total_seconds() // 3600)
        if plan.gaps:
            parts.append(knowledge_gap_text(plan.gaps))
        if plan.asker_alone:
            parts.append(asker_alone_text(plan.asker_alone))
        if plan.asker_alone_here:
            parts.append(asker_alone_here_text(plan.asker_alone_here, hours))
        if plan.unavailable:
            parts.append(experts_busy_text(plan.unavailable, hours, facts.channel_private))
    return "\n\n".join(part for part in parts if part) or None


def asker_zone(
    slack: WorkspaceClient, services: Services, facts: QuestionFacts, known: PersonFacts | None, now: datetime
) -> tzinfo:
    """The asker's time zone, from what Slack said about them (`known`, asked again when that is stale);
    UTC when nobody knows."""
    if needs_profile(known, now, timedelta(hours=services.settings.profile_max_age_hours)):
        known = refresh_profiles(slack, services, facts.team_id, [facts.asker_id]).get(facts.asker_id, known)
    return resolve_timezone(known.tz if known else None)


def still_need_help(slack: WorkspaceClient, services: Services, question_id: int) -> str:
    """The asker's "Still need help" after its click was stored: round 1 now unless it was taken already
    (by the tick, or a double click), and what to tell the asker either way."""
    step = route_round(slack, services, question_id, LEVEL_NEW, tell_asker=False)
    if step is not None:
        return step.note or NOBODY_ASKED_NOTE
    with services.store.session() as session:
        facts = load_question(session, question_id)
    note = routing_note(slack, services, facts, services.clock.now()) if facts is not None else None
    return note or NOBODY_ASKED_NOTE


def route_now(slack: WorkspaceClient, services: Services, question_id: int) -> StepOutcome | None:
    """Round 1 right away (no similar answers, or "Still need help"); None when it happened already."""
    return route_round(slack, services, question_id, LEVEL_NEW)


def bump(slack: WorkspaceClient, services: Services, question_id: int, due_by: datetime) -> StepOutcome | None:
    """The last step: a gentle reply in the question's thread (no mention, no broadcast)."""
    with services.store.session() as session:
        facts = load_question(session, question_id)
        if facts is None or facts.status != STATUS_OPEN or facts.level != LEVEL_ROUND_2 or not facts.message_ts:
            return None
        if not claim_step(session, question_id, LEVEL_ROUND_2, None, due_by):
            return None
    try:
        slack.client.chat_postMessage(
            channel=facts.channel_id,
            thread_ts=facts.message_ts,
            unfurl_links=False,
            **bump_message(facts.tags).as_kwargs(),
            **slack.auth,
        )
    except SLACK_FAILURES as exc:
        logger.warning("could not bump question %s in %s: %s", question_id, facts.channel_id, error_code(exc))
        return StepOutcome(question_id, LEVEL_BUMPED)
    logger.info("question %s: still unanswered, bumped its thread", question_id)
    return StepOutcome(question_id, LEVEL_BUMPED, bumped=True)


def take_step(slack: WorkspaceClient, services: Services, question_id: int, now: datetime) -> StepOutcome | None:
    """The step due for a question at `now`, by its level; an answered question stops here."""
    with services.store.session() as session:
        question = session.get(Question, question_id)
        if question is None or question.status != STATUS_OPEN:
            return None
        if question.next_escalation_at is None or question.next_escalation_at > now:
            return None  # not due (any more): another replica took the step since the due list was read
        level = question.escalation_level
        if has_live_answer(session, question_id) or level >= LEVEL_BUMPED:
            stop_escalation(session, question_id)
            return None
    if level == LEVEL_ROUND_2:
        return bump(slack, services, question_id, now)
    return route_round(slack, services, question_id, level, now)


def due_questions(session: Session, now: datetime, limit: int = MAX_DUE) -> list[tuple[int, str]]:
    rows = session.execute(
        select(Question.id, Question.team_id)
        .join(Workspace, Workspace.team_id == Question.team_id)
        .where(Question.status == STATUS_OPEN, Question.next_escalation_at <= now, Workspace.active.is_(True))
        .order_by(Question.next_escalation_at, Question.id)
        .limit(limit)
    ).all()
    return [(question_id, team_id) for question_id, team_id in rows]


@dataclass(frozen=True)
class TickReport:
    steps: list[StepOutcome]
    dms_sent: int  # by the steps and by the pass over DMs due (e.g. in someone's morning)


def tick(services: Services, client: WebClient, now: datetime, token_for: TokenLookup | None = None) -> TickReport:
    """The scheduler's routing job: take every due step (first routing after the grace period, round 2,
    the bump), then send the DMs whose time has come. One question's failure never stops the next."""
    workspace_slack = WorkspaceClients(client, token_for)
    with services.store.session() as session:
        due = due_questions(session, now)
    steps = []
    for question_id, team_id in due:
        try:
            outcome = take_step(workspace_slack(team_id), services, question_id, now)
        except Exception:
            logger.exception("routing step for question %s failed; the next tick tries again", question_id)
            continue
        if outcome is not None:
            steps.append(outcome)
    due_dms = send_due_dms(workspace_slack, services, now)
    return TickReport(steps, due_dms + sum(step.dms_sent for step in steps))
