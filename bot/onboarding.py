"""Onboarding buddies: who is a newcomer, who volunteers, who is paired with whom, and their introduction.

A newcomer is someone who joins the workspace's onboarding channel (`member_joined_channel`) or, when the
admins turned it on, the workspace itself (`team_join`); the listener records them (one row per person:
`buddy_pairings`, so a redelivered or repeated join pairs once). Pairing then runs after the ack, and on the
scheduler's tick for whatever is still owed (a restart, a crash, another replica, a volunteer who appeared):
- bots, the bot itself and deactivated accounts are skipped (Slack's `users.info`, as routing keeps it);
- the buddy is a volunteer (`/teach buddy [up to N]`) with room (fewer newcomers in their first weeks than
  they offered) whose working time overlaps the newcomer's most in the coming week (their own hours and
  days, or the workspace's defaults, in each one's time zone), then the least busy; none overlapping: the
  newcomer waits, and the onboarding channel (else the admins PeerLearn knows) is told once, kindly;
- both get an introduction by DM with the first-week checklist, claimed in the database before it is sent.
For BUDDY_WEEKS after joining, the newcomer's questions reach their buddy first (bot/routing/escalation.py).
The admins' settings (channel, `team_join`, checklist) are changed from App Home, each change recorded in
`settings_changes` like every workspace setting.
"""

from __future__ import annotations

import logging
from collections.abc import Collection
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from slack_sdk import WebClient
from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from bot.config import Settings
from bot.messages.onboarding import (
    CHANNEL_FIELD,
    CHECKLIST_FIELD,
    DEFAULT_CHECKLIST,
    MAX_CHECKLIST_CHARS,
    MAX_CHECKLIST_ITEMS,
    NOT_VOLUNTEERING,
    STOPPED,
    TEAM_JOIN_FIELD,
    TOO_LONG,
    TOO_MANY_ITEMS,
    OnboardingShown,
    bad_buddy_command,
    checklist_lines,
    introduction,
    no_buddy_yet,
    volunteered_text,
)
from bot.routing.delivery import dm
from bot.routing.evidence import PersonFacts, needs_profile, refresh_profiles
from bot.routing.planner import Availability, availability_of, overlap_hours, week_shifts
from bot.services import Services
from bot.slack_errors import SLACK_FAILURES, error_code
from bot.text import clean
from bot.workspace_settings import effective_settings
from bot.workspaces import TokenLookup, WorkspaceClient, WorkspaceClients
from models.expert import Person
from models.onboarding import (
    PAIRING_PAIRED,
    PAIRING_WAITING,
    BuddyPairing,
    BuddyVolunteer,
    active_volunteers,
    assign_buddy,
    claim_once,
    current_load,
    newcomers_of,
    onboarding_settings,
    owed_introductions,
    pairing_of,
    record_newcomer,
    settings_row,
    skip_newcomer,
    stop_volunteering,
    teams_with_onboarding_owed,
    volunteer,
    waiting_pairings,
)
from models.workspace_settings import SettingsChange, lock_settings

logger = logging.getLogger("peerlearn.onboarding")

BUDDY_WEEKS = 4  # how long a newcomer's questions reach their buddy first
DEFAULT_CAPACITY = 2
MAX_CAPACITY = 10
SOURCE_CHANNEL, SOURCE_TEAM_JOIN = "channel", "team_join"
RECORDED_CHARS = 200  # settings_changes keeps values of at most this many characters


# --- /teach buddy ----------------------------------------------------------------------------------------------


class InvalidBuddy(ValueError):
    """`/teach buddy …` that can't be understood; the message says what to type."""


def is_buddy_command(text: str) -> bool:
    """`/teach buddy …`, not a lesson that starts with the word (`/teach buddy #onboarding Pair people …`)."""
    return clean(text).partition(" ")[0].lower() == "buddy" and "#" not in text


def parse_buddy(text: str) -> int | None:
    """`/teach buddy` (DEFAULT_CAPACITY), `/teach buddy up to 3` or `/teach buddy 3`: the capacity; `/teach
    buddy off` (or stop): None."""
    words = clean(text).lower().split()[1:]
    if words in (["off"], ["stop"]):
        return None
    if not words:
        return DEFAULT_CAPACITY
    if words[:2] == ["up", "to"]:
        words = words[2:]
    if len(words) == 2 and words[1] in ("newcomer", "newcomers", "people", "person"):
        words = words[:1]
    if len(words) == 1 and words[0].isascii() and words[0].isdigit() and 1 <= int(words[0]) <= MAX_CAPACITY:
        return int(words[0])
    raise InvalidBuddy(bad_buddy_command(MAX_CAPACITY))


def apply_buddy(session: Session, team_id: str, user_id: str, capacity: int | None, now: datetime) -> str:
    """Store a `/teach buddy` command; returns the reply."""
    if capacity is None:
        return STOPPED if stop_volunteering(session, team_id, user_id, now) else NOT_VOLUNTEERING
    volunteer(session, team_id, user_id, capacity, now)
    return volunteered_text(capacity, BUDDY_WEEKS)


# --- the admins' settings ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class OnboardingConfig:
    channel_id: str | None = None
    team_join: bool = False
    checklist: str | None = None  # None: the default checklist


def config_of(session: Session, team_id: str) -> OnboardingConfig:
    row = onboarding_settings(session, team_id)
    if row is None:
        return OnboardingConfig()
    return OnboardingConfig(row.channel_id, row.team_join, row.checklist)


def read_checklist(raw: str) -> tuple[str | None, str | None]:
    """The checklist as typed (None: the default one), and what is wrong with it."""
    text = "\n".join(line.rstrip() for line in raw.strip().splitlines() if line.strip())
    if len(text) > MAX_CHECKLIST_CHARS:
        return None, TOO_LONG
    if len(text.splitlines()) > MAX_CHECKLIST_ITEMS:
        return None, TOO_MANY_ITEMS
    if not text or checklist_lines(text) == list(DEFAULT_CHECKLIST):
        return None, None
    return text, None


def _recorded(value: str) -> str:
    return value if len(value) <= RECORDED_CHARS else value[: RECORDED_CHARS - 1] + "…"


def save_config(
    session: Session, team_id: str, user_id: str, wanted: OnboardingConfig, now: datetime
) -> list[SettingsChange]:
    """Store the onboarding settings that differ from those that apply now, each change recorded (the old and
    new values as text: a channel id or "", "on"/"off", the checklist or "" for the default one)."""
    lock_settings(session, team_id, now)
    current = config_of(session, team_id)
    row = settings_row(session, team_id, now)
    changes = []
    for name, old, new in (
        (CHANNEL_FIELD, current.channel_id or "", wanted.channel_id or ""),
        (TEAM_JOIN_FIELD, "on" if current.team_join else "off", "on" if wanted.team_join else "off"),
        (CHECKLIST_FIELD, current.checklist or "", wanted.checklist or ""),
    ):
        if old == new:
            continue
        change = SettingsChange(
            team_id=team_id,
            user_id=user_id,
            changed_at=now,
            setting=name,
            old_value=_recorded(old),
            new_value=_recorded(new),
        )
        session.add(change)
        changes.append(change)
    if changes:
        row.channel_id, row.team_join, row.checklist, row.changed_at = (
            wanted.channel_id,
            wanted.team_join,
            wanted.checklist,
            now,
        )
        logger.info("workspace %s: %s changed %s", team_id, user_id, ", ".join(c.setting for c in changes))
    session.flush()
    return changes


# --- newcomers -------------------------------------------------------------------------------------------------


def joined_channel(session: Session, team_id: str, user_id: str, channel_id: str, now: datetime) -> bool:
    """Someone joined `channel_id`: a newcomer if it is the onboarding channel (True: recorded now)."""
    config = config_of(session, team_id)
    if not config.channel_id or config.channel_id != channel_id:
        return False
    return record_newcomer(session, team_id, user_id, SOURCE_CHANNEL, now, now + timedelta(weeks=BUDDY_WEEKS))


def joined_workspace(session: Session, team_id: str, user_id: str, now: datetime) -> bool:
    """Someone joined the workspace: a newcomer if the admins turned that on (True: recorded now)."""
    if not config_of(session, team_id).team_join:
        return False
    return record_newcomer(session, team_id, user_id, SOURCE_TEAM_JOIN, now, now + timedelta(weeks=BUDDY_WEEKS))


# --- matching (pure) -----------------------------------------------------------------------------------------


def weekly_overlap_hours(a: Availability, b: Availability, start: datetime) -> float:
    """How many hours of the week from `start` both people are at work."""
    return overlap_hours(week_shifts(start, a), week_shifts(start, b))


@dataclass(frozen=True)
class Volunteer:
    user_id: str
    availability: Availability
    load: int  # newcomers in their first weeks now
    capacity: int


def choose_buddy(newcomer: Availability, volunteers: Collection[Volunteer], now: datetime) -> str | None:
    """The volunteer with room whose working time overlaps the newcomer's most this week, then the least
    busy (then the user id, so the choice is stable); None when nobody with room overlaps at all."""
    theirs = week_shifts(now, newcomer)
    scored = [(overlap_hours(theirs, week_shifts(now, v.availability)), v) for v in volunteers if v.load < v.capacity]
    fits = [(hours, v) for hours, v in scored if hours > 0]
    if not fits:
        return None
    return min(fits, key=lambda item: (-round(item[0], 2), item[1].load, item[1].user_id))[1].user_id


def working_time(person: PersonFacts | None, settings: Settings) -> Availability:
    """Someone's working time for matching; the workspace's defaults in UTC when PeerLearn knows nothing."""
    default = Availability("UTC", settings.work_start_hour, settings.work_end_hour, settings.work_days)
    return availability_of(person, settings) or default


# --- pairing and introducing (after the ack, and on the tick) -----------------------------------------------


def pair_waiting(slack: WorkspaceClient, services: Services, team_id: str) -> None:
    """Pair the workspace's waiting newcomers where a volunteer fits, say once that the others wait, and send
    the introductions still owed."""
    now = services.clock.now()
    with services.store.session() as session:
        waiting = [(p.id, p.newcomer_id) for p in waiting_pairings(session, team_id, now)]
        volunteers = active_volunteers(session, team_id) if waiting else {}
        load = current_load(session, team_id, now) if waiting else {}
        settings = effective_settings(session, team_id, services.settings)
        wanted = {user for _, user in waiting} | set(volunteers)
        people = {
            person.user_id: PersonFacts.of(person)
            for person in session.scalars(
                select(Person).where(Person.team_id == team_id, Person.user_id.in_(sorted(wanted)))
            )
        }
    max_age = timedelta(hours=services.settings.profile_max_age_hours)
    stale = sorted(user for user in wanted if needs_profile(people.get(user), now, max_age))
    if stale:
        people.update(refresh_profiles(slack, services, team_id, stale))
    for pairing_id, newcomer_id in waiting:
        newcomer = people.get(newcomer_id)
        if newcomer is not None and (newcomer.is_bot or newcomer.deleted):
            with services.store.session() as session:
                skip_newcomer(session, pairing_id)
            logger.info("newcomer %s in %s skipped: a bot or deactivated", newcomer_id, team_id)
            continue
        candidates = [
            Volunteer(user, working_time(people.get(user), settings), load.get(user, 0), capacity)
            for user, capacity in volunteers.items()
            if user != newcomer_id and not _unreachable(people.get(user))
        ]
        buddy = choose_buddy(working_time(newcomer, settings), candidates, now)
        with services.store.session() as session:
            if buddy is not None:
                # One pairing at a time per workspace (its row locked), the buddy's load read again under the
                # lock: two replicas pairing at once never give a buddy more newcomers than they offered.
                lock_settings(session, team_id, now)
                load = current_load(session, team_id, now)
                if load.get(buddy, 0) < volunteers[buddy] and assign_buddy(session, pairing_id, buddy, now):
                    load[buddy] = load.get(buddy, 0) + 1
                    logger.info("newcomer %s in %s paired with %s", newcomer_id, team_id, buddy)
                continue  # or another replica just filled them: the next pass matches again
            noted = claim_once(session, pairing_id, "waiting_noted_at", now)
            config = config_of(session, team_id)
            admins = list(
                session.scalars(
                    select(Person.user_id).where(
                        Person.team_id == team_id, Person.is_admin.is_(True), Person.deleted.is_(False)
                    )
                )
            )
        if noted:
            _say_waiting(slack, newcomer_id, config.channel_id, admins)
    introduce_owed(slack, services, team_id)


def _unreachable(person: PersonFacts | None) -> bool:
    return person is not None and (person.is_bot or person.deleted)


def _say_waiting(slack: WorkspaceClient, newcomer_id: str, channel_id: str | None, admins: list[str]) -> None:
    """Nobody can be a buddy yet: said in the onboarding channel, else to the admins PeerLearn knows."""
    if channel_id:
        message = no_buddy_yet(newcomer_id)
        try:
            slack.client.chat_postMessage(channel=channel_id, **message.as_kwargs(), **slack.auth)
            return
        except SLACK_FAILURES as exc:
            logger.warning("could not post in the onboarding channel %s: %s", channel_id, error_code(exc))
    for admin in admins[:5]:
        dm(slack, admin, no_buddy_yet(newcomer_id, to_admins=True), unfurl_links=False)


def introduce_owed(slack: WorkspaceClient, services: Services, team_id: str) -> int:
    """Send each introduction still owed once: claimed (introduced_at) before it is sent, so two replicas
    never both send it; a process killed between the claim and the DMs loses that introduction."""
    sent = 0
    now = services.clock.now()
    with services.store.session() as session:
        owed = owed_introductions(session, team_id)
    for pairing_id in owed:
        with services.store.session() as session:
            if not claim_once(session, pairing_id, "introduced_at", now):
                continue
            pairing = session.get(BuddyPairing, pairing_id)
            if pairing is None or pairing.buddy_id is None:
                continue
            newcomer_id, buddy_id = pairing.newcomer_id, pairing.buddy_id
            checklist = config_of(session, team_id).checklist
        to_newcomer = introduction(newcomer_id, buddy_id, checklist, BUDDY_WEEKS, to_newcomer=True)
        to_buddy = introduction(newcomer_id, buddy_id, checklist, BUDDY_WEEKS, to_newcomer=False)
        dm(slack, newcomer_id, to_newcomer, unfurl_links=False)
        dm(slack, buddy_id, to_buddy, unfurl_links=False)
        sent += 1
        logger.info("introduced newcomer %s to their buddy %s", newcomer_id, buddy_id)
    return sent


def tick(services: Services, client: WebClient, now: datetime, token_for: TokenLookup | None = None) -> int:
    """The scheduler's onboarding job: every workspace with a newcomer waiting or an introduction owed."""
    with services.store.session() as session:
        teams = teams_with_onboarding_owed(session, now)
    clients = WorkspaceClients(client, token_for)
    for team_id in teams:
        try:
            pair_waiting(clients(team_id), services, team_id)
        except Exception:
            logger.exception("onboarding for %s failed; the next tick tries again", team_id)
    return len(teams)


# --- App Home --------------------------------------------------------------------------------------------------


def home_shown(session: Session, team_id: str, user_id: str, now: datetime, *, admin: bool) -> OnboardingShown:
    pairing = pairing_of(session, team_id, user_id)
    own = pairing if pairing is not None and pairing.ends_at > now else None
    volunteer_row = session.get(BuddyVolunteer, (team_id, user_id))
    shown = OnboardingShown(
        buddy_id=own.buddy_id if own is not None and own.status == PAIRING_PAIRED else None,
        waiting=own is not None and own.status == PAIRING_WAITING,
        newcomers=newcomers_of(session, team_id, user_id, now),
        capacity=volunteer_row.capacity if volunteer_row is not None and volunteer_row.active else None,
    )
    if not admin:
        return shown
    config = config_of(session, team_id)
    return replace(
        shown,
        admin=True,
        channel_id=config.channel_id,
        team_join=config.team_join,
        checklist_items=len(checklist_lines(config.checklist)),
        volunteers=len(active_volunteers(session, team_id)),
        waiting_count=len(waiting_pairings(session, team_id, now)),
    )


# --- forget-user ----------------------------------------------------------------------------------------------


def forget(session: Session, team_id: str, user_id: str, forgotten_id: str) -> dict[str, int]:
    """forget-user: their volunteering and their own pairing go; where they were someone's buddy, the pairing
    stays (the newcomer is not paired again) with `forgotten_id` as the buddy."""
    counts = {}
    counts["buddy volunteering (deleted)"] = int(
        session.execute(
            delete(BuddyVolunteer).where(BuddyVolunteer.team_id == team_id, BuddyVolunteer.user_id == user_id)
        ).rowcount  # type: ignore[attr-defined]
    )
    counts["onboarding as a newcomer (deleted)"] = int(
        session.execute(
            delete(BuddyPairing).where(BuddyPairing.team_id == team_id, BuddyPairing.newcomer_id == user_id)
        ).rowcount  # type: ignore[attr-defined]
    )
    counts["onboarding as a buddy (anonymised)"] = int(
        session.execute(
            update(BuddyPairing)
            .where(BuddyPairing.team_id == team_id, BuddyPairing.buddy_id == user_id)
            .values(buddy_id=forgotten_id)
        ).rowcount  # type: ignore[attr-defined]
    )
    return counts
