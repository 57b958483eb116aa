"""Mentoring: offers (`/teach mentor #tag up to N people`), requests (`/ask mentor #tag`), matching, the group
DM that introduces a pair, the check-in after CHECK_IN_AFTER, the end (after MENTORING_PERIOD or on request)
and what Home and digests show of it. The listeners are in handlers/mentoring.py, the words in
bot/messages/mentoring.py, the rows in models/mentoring.py.

Who mentors whom (`choose_mentor`): among the people who offered to mentor on the tag and have room (live
pairings below their capacity), not the mentee, not their mentor on that tag already, and not paused,
deactivated or a bot, routing's ranker orders them by their expertise on the tag (declared and learned:
bot/routing/evidence.py, the same evidence and reasons routing uses); then the hours a week their working
time overlaps the mentee's (bot/routing/planner.py, each in their zone and working days) and how full they
already are move them up or down. Nobody at all: the request waits, shows among knowledge gaps, and is
matched when an offer or a freed place appears (the handlers try at once; `tick` tries every minute).

Exactly once: a request is paired once (unique request id), and every send is claimed in the database
before it is made: the introduction (`intro_claimed_at`, taken back if Slack refused, retaken after
INTRO_LEASE if its process died), the check-in (`checkin_sent_at`) and the end (status -> ended).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from bot.config import Settings
from bot.mentoring_text import Offer
from bot.messages.blocks import Message
from bot.messages.mentoring import (
    ACTION_END,
    ACTION_PAUSE,
    ACTION_RESUME,
    ACTION_STILL_MEETING,
    MentoringHome,
    PairingLine,
    check_in_message,
    intro_message,
    paused_message,
    resumed_message,
    still_meeting_message,
    thank_you_message,
)
from bot.routing.evidence import PersonFacts, load_evidence, needs_profile, refresh_profiles
from bot.routing.planner import Availability, availability_of, overlap_hours, week_shifts
from bot.routing.ranker import rank_experts
from bot.services import Services
from bot.slack_errors import SLACK_FAILURES, error_code
from bot.workspace_settings import effective_settings
from bot.workspaces import TokenLookup, WorkspaceClient, WorkspaceClients
from models.base import insert_once
from models.expert import Person
from models.mentoring import (
    LIVE,
    PAIRING_ACTIVE,
    PAIRING_ENDED,
    PAIRING_PAUSED,
    REQUEST_MATCHED,
    REQUEST_WAITING,
    MentorOffer,
    MentorPairing,
    MentorRequest,
    mentor_load,
    pairings_of,
)
from models.workspace import Workspace

logger = logging.getLogger("peerlearn.mentoring")

CHECK_IN_AFTER = timedelta(days=14)
MENTORING_PERIOD = timedelta(days=90)
INTRO_LEASE = timedelta(minutes=5)  # an introduction claimed this long ago and never posted is owed again
MAX_PER_TICK = 100
OVERLAP_WEIGHT = 1.0  # the score added by a full overlap of working time (ranker scores span a few units)
LOAD_WEIGHT = 1.0  # the score taken by a mentor's places already used, as a share of their capacity

# --- storing offers and requests (before the ack) ------------------------------------------------------------


def store_offer(session: Session, team_id: str, user_id: str, offer: Offer, now: datetime) -> None:
    """The person mentors on these tags (besides those they offered before), `capacity` people at once."""
    for tag in offer.tags:
        insert_once(
            session, MentorOffer(team_id=team_id, user_id=user_id, tag=tag, capacity=offer.capacity, offered_at=now)
        )
    session.execute(
        update(MentorOffer)
        .where(MentorOffer.team_id == team_id, MentorOffer.user_id == user_id)
        .values(capacity=offer.capacity)
    )


@dataclass(frozen=True)
class Stored:
    request_id: int | None  # None: nothing new to match (`mentor_id` or `waiting` says why)
    mentor_id: str | None = None  # their mentor on that tag already
    waiting: bool = False  # they wait for one on that tag already


def store_request(
    session: Session, team_id: str, user_id: str, tag: str, channel_id: str, request_key: str, now: datetime
) -> Stored:
    """One request per command (a redelivered command finds its own row); none while the person already has,
    or waits for, a mentor on the tag."""
    own = session.scalars(
        select(MentorRequest).where(MentorRequest.team_id == team_id, MentorRequest.request_key == request_key)
    ).one_or_none()
    if own is not None:
        return Stored(own.id)
    current = live_pairing(session, team_id, user_id, tag)
    if current is not None:
        return Stored(None, mentor_id=current.mentor_id)
    if session.scalars(
        select(MentorRequest.id).where(
            MentorRequest.team_id == team_id,
            MentorRequest.mentee_id == user_id,
            MentorRequest.tag == tag,
            MentorRequest.status == REQUEST_WAITING,
        )
    ).first():
        return Stored(None, waiting=True)
    request = MentorRequest(
        team_id=team_id, mentee_id=user_id, tag=tag, request_key=request_key, channel_id=channel_id, created_at=now
    )
    if not insert_once(session, request):  # the same command, stored by another replica meanwhile
        return store_request(session, team_id, user_id, tag, channel_id, request_key, now)
    return Stored(request.id)


def live_pairing(session: Session, team_id: str, mentee_id: str, tag: str) -> MentorPairing | None:
    return session.scalars(
        select(MentorPairing).where(
            MentorPairing.team_id == team_id,
            MentorPairing.mentee_id == mentee_id,
            MentorPairing.tag == tag,
            MentorPairing.status.in_(LIVE),
        )
    ).first()


# --- choosing a mentor (pure, given the evidence) --------------------------------------------------------------


@dataclass(frozen=True)
class Choice:
    user_id: str
    reason: str
    score: float


def weekly_overlap_hours(a: Availability | None, b: Availability | None, week_start: datetime) -> float | None:
    """Hours in the week from `week_start` when both are at work, each in their own zone and working days; None
    when PeerLearn knows the working time of neither (an unknown one counts as the default hours in UTC)."""
    if a is None and b is None:
        return None
    return overlap_hours(week_shifts(week_start, a or Availability()), week_shifts(week_start, b or Availability()))


def _weekly_hours(availability: Availability) -> float:
    per_day = (availability.end_hour - availability.start_hour) % 24 or 24
    return per_day * len(availability.work_days)


def choose_mentor(
    tag: str,
    ranked: Sequence[Any],  # ScoredExpert, best first
    availability: Mapping[str, Availability | None],
    mentee_id: str,
    load: Mapping[str, int],
    capacity: Mapping[str, int],
    week_start: datetime,
) -> list[Choice]:
    """The mentors with room, best first, each with the true reasons they were chosen."""
    mentee = availability.get(mentee_id)
    choices = []
    for expert in ranked:
        used, room = load.get(expert.user_id, 0), capacity.get(expert.user_id, 0)
        if used >= room:
            continue
        mentor = availability.get(expert.user_id)
        overlap = weekly_overlap_hours(mentor, mentee, week_start)
        reasons = [f"offered to mentor on #{tag}", expert.reason]
        score = expert.score - LOAD_WEIGHT * used / room
        if overlap is not None:
            shortest = min(_weekly_hours(x) for x in (mentor or Availability(), mentee or Availability()))
            score += OVERLAP_WEIGHT * min(overlap / shortest, 1.0) if shortest else 0.0
            reasons.append(f"{_hours(overlap)} of working time a week in common")
            if overlap == 0:
                score -= 100.0  # never meeting at work: only when nobody else is free
        reasons.append(f"mentoring {used} of up to {room}" if used else f"free to mentor up to {room}")
        choices.append(Choice(expert.user_id, "; ".join(reasons), score))
    choices.sort(key=lambda c: (-c.score, c.user_id))
    return choices


def _hours(value: float) -> str:
    whole = value == math.floor(value)
    text = f"{int(value)}" if whole else f"{value:.1f}"
    return f"{text} hour" if value == 1 else f"{text} hours"


# --- matching (database) -------------------------------------------------------------------------------------


def _offer_holders(session: Session, team_id: str, tag: str) -> dict[str, int]:
    """Who offered to mentor on the tag, with their capacity."""
    rows = session.execute(
        select(MentorOffer.user_id, MentorOffer.capacity).where(MentorOffer.team_id == team_id, MentorOffer.tag == tag)
    )
    return {user_id: capacity for user_id, capacity in rows}


def people_to_refresh(services: Services, request_id: int) -> tuple[str, list[str]]:
    """(team, people whose users.info is missing or stale) among the request's mentee and its possible mentors:
    their time zone and whether they are still here."""
    with services.store.session() as session:
        request = session.get(MentorRequest, request_id)
        if request is None or request.status != REQUEST_WAITING:
            return "", []
        team_id = request.team_id
        user_ids = [request.mentee_id, *_offer_holders(session, team_id, request.tag)]
        people = {
            p.user_id: PersonFacts.of(p)
            for p in session.scalars(select(Person).where(Person.team_id == team_id, Person.user_id.in_(user_ids)))
        }
    now = services.clock.now()
    max_age = timedelta(hours=services.settings.profile_max_age_hours)
    return team_id, [u for u in user_ids if needs_profile(people.get(u), now, max_age)]


def match_request(session: Session, settings: Settings, request_id: int, now: datetime) -> int | None:
    """Pair a waiting request with the best mentor who has room; the pairing's id (also when it was paired
    before), None when nobody is free (it keeps waiting)."""
    request = session.get(MentorRequest, request_id)
    if request is None:
        return None
    if request.status != REQUEST_WAITING:
        return session.scalars(select(MentorPairing.id).where(MentorPairing.request_id == request_id)).first()
    team_id, tag, mentee_id = request.team_id, request.tag, request.mentee_id
    holders = _offer_holders(session, team_id, tag)
    already = set(
        session.scalars(
            select(MentorPairing.mentor_id).where(
                MentorPairing.team_id == team_id,
                MentorPairing.mentee_id == mentee_id,
                MentorPairing.tag == tag,
                MentorPairing.status.in_(LIVE),
            )
        )
    )
    eligible = sorted(set(holders) - already - {mentee_id})
    if not eligible:
        return None
    workspace = effective_settings(session, team_id, settings)
    evidence = load_evidence(session, team_id, [tag], "", now, exclude=[mentee_id])
    people = {
        p.user_id: PersonFacts.of(p)
        for p in session.scalars(
            select(Person).where(Person.team_id == team_id, Person.user_id.in_([*eligible, mentee_id]))
        )
    }
    candidates = []
    for user_id in eligible:
        person = people.get(user_id)
        candidates.append(
            evidence.candidate(
                user_id,
                is_bot=bool(person and person.is_bot),
                is_paused=bool(person and person.is_paused(now)),
                is_deactivated=bool(person and person.deleted),
            )
        )
    ranked = rank_experts([tag], candidates, now, exclude=[mentee_id], tag_stats=evidence.tag_stats)
    availability = {u: availability_of(people.get(u), workspace) for u in [*eligible, mentee_id]}
    week_start = (now - timedelta(days=now.weekday())).replace(hour=0, minute=0, second=0, microsecond=0)
    load = mentor_load(session, team_id, eligible)
    for choice in choose_mentor(tag, ranked, availability, mentee_id, load, holders, week_start):
        # Take the mentor's offers for the rest of the transaction, then count again: two matches at once
        # (another replica) never fill a place twice.
        session.execute(
            select(MentorOffer.tag)
            .where(MentorOffer.team_id == team_id, MentorOffer.user_id == choice.user_id)
            .with_for_update()
        ).all()
        if mentor_load(session, team_id, [choice.user_id]).get(choice.user_id, 0) >= holders[choice.user_id]:
            continue
        pairing = MentorPairing(
            team_id=team_id,
            request_id=request_id,
            mentor_id=choice.user_id,
            mentee_id=mentee_id,
            tag=tag,
            reason=choice.reason[:500],
            status=PAIRING_ACTIVE,
            started_at=now,
            ends_at=now + MENTORING_PERIOD,
            checkin_due_at=now + CHECK_IN_AFTER,
        )
        if not insert_once(session, pairing):
            session.expire(request)
            return session.scalars(select(MentorPairing.id).where(MentorPairing.request_id == request_id)).first()
        request.status, request.matched_at = REQUEST_MATCHED, now
        logger.info("mentoring request %s paired: pairing %s", request_id, pairing.id)
        return pairing.id
    return None


def find_mentor(slack: WorkspaceClient, services: Services, request_id: int) -> int | None:
    """Match one request (asking Slack about the people involved first, when PeerLearn's copy is stale) and
    introduce the pair; the pairing's id, None while it waits."""
    team_id, stale = people_to_refresh(services, request_id)
    if stale:
        refresh_profiles(slack, services, team_id, stale)
    with services.store.session() as session:
        pairing_id = match_request(session, services.settings, request_id, services.clock.now())
    if pairing_id is not None:
        introduce(slack, services, pairing_id)
    return pairing_id


def match_waiting(slack: WorkspaceClient, services: Services, team_id: str, tags: Sequence[str] | None = None) -> int:
    """Match the workspace's waiting requests (on `tags`, or all), oldest first; how many were paired."""
    with services.store.session() as session:
        query = select(MentorRequest.id).where(
            MentorRequest.team_id == team_id, MentorRequest.status == REQUEST_WAITING
        )
        if tags is not None:
            query = query.where(MentorRequest.tag.in_(list(tags)))
        waiting = list(session.scalars(query.order_by(MentorRequest.created_at, MentorRequest.id).limit(MAX_PER_TICK)))
    return sum(1 for request_id in waiting if find_mentor(slack, services, request_id) is not None)


# --- the group DM: introduction, check-in, end ------------------------------------------------------------------


def _claim_intro(session: Session, pairing_id: int, now: datetime) -> MentorPairing | None:
    claimed = session.execute(
        update(MentorPairing)
        .where(
            MentorPairing.id == pairing_id,
            MentorPairing.intro_ts.is_(None),
            or_(MentorPairing.intro_claimed_at.is_(None), MentorPairing.intro_claimed_at <= now - INTRO_LEASE),
        )
        .values(intro_claimed_at=now)
    )
    return session.get(MentorPairing, pairing_id) if claimed.rowcount == 1 else None  # type: ignore[attr-defined]


def introduce(slack: WorkspaceClient, services: Services, pairing_id: int) -> bool:
    """Open the pair's group DM and post the introduction, once; True when this call posted it."""
    now = services.clock.now()
    with services.store.session() as session:
        pairing = _claim_intro(session, pairing_id, now)
        if pairing is None:
            return False
        mentor_id, mentee_id, tag, reason, ends_at = (
            pairing.mentor_id,
            pairing.mentee_id,
            pairing.tag,
            pairing.reason,
            pairing.ends_at,
        )
    message = intro_message(
        mentor_id=mentor_id,
        mentee_id=mentee_id,
        tag=tag,
        reason=reason,
        check_in_days=CHECK_IN_AFTER.days,
        ends_at=ends_at,
    )
    try:
        channel_id = str(
            slack.client.conversations_open(users=f"{mentor_id},{mentee_id}", **slack.auth)["channel"]["id"]
        )
        posted = slack.client.chat_postMessage(channel=channel_id, **message.as_kwargs(), **slack.auth)
    except SLACK_FAILURES as exc:
        logger.warning("mentoring pairing %s: introduction not posted: %s", pairing_id, error_code(exc))
        with services.store.session() as session:
            session.execute(update(MentorPairing).where(MentorPairing.id == pairing_id).values(intro_claimed_at=None))
        return False
    with services.store.session() as session:
        session.execute(
            update(MentorPairing)
            .where(MentorPairing.id == pairing_id)
            .values(channel_id=channel_id, intro_ts=str(posted["ts"]))
        )
    logger.info("mentoring pairing %s introduced in %s", pairing_id, channel_id)
    return True


def _post(slack: WorkspaceClient, channel_id: str | None, message: Message, what: str, pairing_id: int) -> bool:
    if channel_id is None:
        return False
    try:
        slack.client.chat_postMessage(channel=channel_id, **message.as_kwargs(), **slack.auth)
        return True
    except SLACK_FAILURES as exc:
        logger.warning("mentoring pairing %s: %s not posted: %s", pairing_id, what, error_code(exc))
        return False


def send_check_ins(slack_for: WorkspaceClients, services: Services, now: datetime) -> int:
    """Post every due check-in, each claimed first (exactly one replica sends it); how many were sent."""
    with services.store.session() as session:
        due = list(
            session.scalars(
                select(MentorPairing.id)
                .join(Workspace, Workspace.team_id == MentorPairing.team_id)
                .where(
                    MentorPairing.status == PAIRING_ACTIVE,
                    MentorPairing.checkin_due_at <= now,
                    MentorPairing.checkin_sent_at.is_(None),
                    MentorPairing.intro_ts.is_not(None),
                    Workspace.active.is_(True),
                )
                .limit(MAX_PER_TICK)
            )
        )
    sent = 0
    for pairing_id in due:
        with services.store.session() as session:
            claimed = session.execute(
                update(MentorPairing)
                .where(
                    MentorPairing.id == pairing_id,
                    MentorPairing.status == PAIRING_ACTIVE,
                    MentorPairing.checkin_sent_at.is_(None),
                )
                .values(checkin_sent_at=now)
            )
            pairing = session.get(MentorPairing, pairing_id) if claimed.rowcount == 1 else None  # type: ignore[attr-defined]
            if pairing is None:
                continue
            facts = (pairing.team_id, pairing.channel_id, pairing.mentor_id, pairing.mentee_id, pairing.tag)
            days = (now - pairing.started_at).days
        team_id, channel_id, mentor_id, mentee_id, tag = facts
        message = check_in_message(pairing_id, mentor_id, mentee_id, tag, days)
        if _post(slack_for(team_id), channel_id, message, "check-in", pairing_id):
            sent += 1
    return sent


@dataclass(frozen=True)
class Ended:
    pairing_id: int
    team_id: str
    mentor_id: str
    mentee_id: str
    tag: str
    channel_id: str | None
    ended_by: str | None


def end_pairing(session: Session, pairing_id: int, user_id: str | None, now: datetime) -> Ended | None:
    """End a live pairing (by one of the pair, or None: its period ran out), once; None when it was not live or
    `user_id` is not one of the pair."""
    pairing = session.get(MentorPairing, pairing_id)
    if pairing is None or (user_id is not None and user_id not in (pairing.mentor_id, pairing.mentee_id)):
        return None
    ended = session.execute(
        update(MentorPairing)
        .where(MentorPairing.id == pairing_id, MentorPairing.status.in_(LIVE))
        .values(status=PAIRING_ENDED, ended_at=now, ended_by=user_id)
    )
    if ended.rowcount != 1:  # type: ignore[attr-defined]
        return None
    return Ended(
        pairing_id, pairing.team_id, pairing.mentor_id, pairing.mentee_id, pairing.tag, pairing.channel_id, user_id
    )


def thank(slack: WorkspaceClient, ended: Ended) -> None:
    message = thank_you_message(ended.mentor_id, ended.mentee_id, ended.tag, ended.ended_by)
    _post(slack, ended.channel_id, message, "thank-you", ended.pairing_id)


def end_due(slack_for: WorkspaceClients, services: Services, now: datetime) -> list[Ended]:
    """End the pairings whose period ran out, thank both, and match waiting requests with the freed places."""
    with services.store.session() as session:
        due = list(
            session.scalars(
                select(MentorPairing.id)
                .join(Workspace, Workspace.team_id == MentorPairing.team_id)
                .where(MentorPairing.status.in_(LIVE), MentorPairing.ends_at <= now, Workspace.active.is_(True))
                .limit(MAX_PER_TICK)
            )
        )
    finished = []
    for pairing_id in due:
        with services.store.session() as session:
            ended = end_pairing(session, pairing_id, None, now)
        if ended is not None:
            thank(slack_for(ended.team_id), ended)
            finished.append(ended)
    return finished


@dataclass(frozen=True)
class Changed:
    """What a button changed, for the group DM (None: nothing, e.g. a double click)."""

    team_id: str
    channel_id: str | None
    message: Message
    ended: Ended | None = None


def apply_button(session: Session, action: str, pairing_id: int, user_id: str, now: datetime) -> Changed | None:
    """A click on Still meeting / We're done (End) / Pause / Resume by one of the pair, stored."""
    pairing = session.get(MentorPairing, pairing_id)
    if pairing is None or user_id not in (pairing.mentor_id, pairing.mentee_id):
        return None
    team_id, channel_id, tag = pairing.team_id, pairing.channel_id, pairing.tag
    if action == ACTION_END:
        ended = end_pairing(session, pairing_id, user_id, now)
        if ended is None:
            return None
        thanks = thank_you_message(ended.mentor_id, ended.mentee_id, tag, user_id)
        return Changed(team_id, channel_id, thanks, ended)
    status_change = {
        ACTION_PAUSE: (PAIRING_ACTIVE, PAIRING_PAUSED, paused_message(user_id, tag)),
        ACTION_RESUME: (PAIRING_PAUSED, PAIRING_ACTIVE, resumed_message(user_id, tag)),
        ACTION_STILL_MEETING: (PAIRING_ACTIVE, PAIRING_ACTIVE, still_meeting_message(user_id, tag)),
    }.get(action)
    if status_change is None:
        return None
    before, after, message = status_change
    values: dict[str, Any] = {"status": after}
    where = [MentorPairing.id == pairing_id, MentorPairing.status == before]
    if action == ACTION_STILL_MEETING:
        # Once per check-in: the answer marks it answered by pushing the next one past the pairing's end.
        values["checkin_due_at"] = pairing.ends_at
        where.append(MentorPairing.checkin_due_at != pairing.ends_at)
    changed = session.execute(update(MentorPairing).where(*where).values(**values))
    if changed.rowcount != 1:  # type: ignore[attr-defined]
        return None
    return Changed(team_id, channel_id, message)


# --- the scheduler's tick ------------------------------------------------------------------------------------------


def tick(services: Services, client: Any, now: datetime, token_for: TokenLookup | None = None) -> dict[str, int]:
    """Every minute: end pairings whose time is up, post due check-ins and owed introductions, and match the
    waiting requests (a new offer or a freed place that no listener acted on)."""
    slack_for = WorkspaceClients(client, token_for)
    ended = end_due(slack_for, services, now)
    checked = send_check_ins(slack_for, services, now)
    with services.store.session() as session:
        owed = list(
            session.execute(
                select(MentorPairing.id, MentorPairing.team_id)
                .where(
                    MentorPairing.intro_ts.is_(None),
                    MentorPairing.status.in_(LIVE),
                    or_(MentorPairing.intro_claimed_at.is_(None), MentorPairing.intro_claimed_at <= now - INTRO_LEASE),
                )
                .limit(MAX_PER_TICK)
            )
        )
        teams = list(
            session.scalars(
                select(MentorRequest.team_id)
                .join(Workspace, Workspace.team_id == MentorRequest.team_id)
                .where(MentorRequest.status == REQUEST_WAITING, Workspace.active.is_(True))
                .distinct()
            )
        )
    introduced = sum(1 for pairing_id, team_id in owed if introduce(slack_for(team_id), services, pairing_id))
    matched = sum(match_waiting(slack_for(team_id), services, team_id) for team_id in teams)
    return {"ended": len(ended), "check_ins": checked, "introduced": introduced, "matched": matched}


# --- what Home and digests show ------------------------------------------------------------------------------------


def home_data(session: Session, team_id: str, user_id: str) -> MentoringHome:
    pairings = [
        PairingLine(
            pairing_id=p.id,
            partner_id=p.mentee_id if p.mentor_id == user_id else p.mentor_id,
            i_mentor=p.mentor_id == user_id,
            tag=p.tag,
            paused=p.status == PAIRING_PAUSED,
            ends_at=p.ends_at,
        )
        for p in pairings_of(session, team_id, user_id)
    ]
    offers = list(
        session.execute(
            select(MentorOffer.tag, MentorOffer.capacity)
            .where(MentorOffer.team_id == team_id, MentorOffer.user_id == user_id)
            .order_by(MentorOffer.tag)
        )
    )
    waiting = list(
        session.scalars(
            select(MentorRequest.tag)
            .where(
                MentorRequest.team_id == team_id,
                MentorRequest.mentee_id == user_id,
                MentorRequest.status == REQUEST_WAITING,
            )
            .order_by(MentorRequest.tag)
        )
    )
    return MentoringHome(
        pairings=pairings,
        offered=[tag for tag, _ in offers],
        capacity=max((capacity for _, capacity in offers), default=0),
        waiting=waiting,
    )
