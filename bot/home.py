"""App Home: the person's Home tab, read from the store and published, and what its controls change.

`gather_home` reads everything the tab shows in one short session (a handful of indexed queries) into plain
data (`HomeData`); bot/messages/home.py turns that into Block Kit and `publish_home` sends it. Each control's
change (pause, working hours and days, notifications) is stored before the ack; handlers/home.py wires them to
the tab.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection
from datetime import datetime, timedelta

from slack_sdk import WebClient
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from bot import mentoring, onboarding, sessions, stats
from bot.config import Settings
from bot.experts import InvalidTeach, parse_duration, pause, resume
from bot.messages.home import (
    MAX_OPEN,
    NO_WORK_DAYS,
    SAME_HOURS,
    HomeData,
    Preferences,
    QuestionLine,
    home_view,
    unknown_choice,
)
from bot.messages.search import Searched
from bot.messages.settings import MAX_CHANGES_SHOWN, ChangeShown, SettingsShown
from bot.routing import evidence
from bot.services import Services
from bot.slack_errors import SLACK_FAILURES, error_code
from bot.workdays import DAYS_IN_WEEK, days_as_text, days_from_text
from bot.workspace_settings import effective_settings
from bot.workspaces import WorkspaceClient
from models.expert import (
    NOTIFY_DAILY,
    NOTIFY_IMMEDIATE,
    NOTIFY_OFF,
    Person,
    declared_topics,
    ensure_person,
    open_questions_on_topics,
    remember_profile,
    routed_to,
)
from models.question import Question, open_questions_of
from models.top_helpers import top_helpers
from models.workspace_settings import recent_changes

logger = logging.getLogger("peerlearn.home")

NOTIFY_MODES = (NOTIFY_IMMEDIATE, NOTIFY_DAILY, NOTIFY_OFF)

MAX_ROUTED = 5
MAX_ON_TOPICS = 5
MAX_HELPERS = 5
TOPIC_QUESTIONS_MAX_AGE = timedelta(days=30)  # older open questions on your topics are not news any more
ADMIN_WINDOW = timedelta(days=30)


def preferences_of(person: Person | None, settings: Settings) -> Preferences:
    if person is None:
        return Preferences(
            work_start_hour=settings.work_start_hour, work_end_hour=settings.work_end_hour, work_days=settings.work_days
        )
    own = person.work_start_hour is not None and person.work_end_hour is not None
    own_days = days_from_text(person.work_days)
    return Preferences(
        notify_mode=person.notify_mode if person.notify_mode in NOTIFY_MODES else NOTIFY_IMMEDIATE,
        work_start_hour=person.work_start_hour if person.work_start_hour is not None else settings.work_start_hour,
        work_end_hour=person.work_end_hour if person.work_end_hour is not None else settings.work_end_hour,
        tz=person.tz,
        own_hours=own,
        work_days=own_days or settings.work_days,
        own_days=own_days is not None,
    )


def _line(question: Question) -> QuestionLine:
    return QuestionLine(question.text, question.channel_id, tuple(question.tag_names), question.id, question.asker_id)


def _listed(
    session: Session, team_id: str, user_id: str, now: datetime, readable_private: Collection[str] | None
) -> tuple[list[Question], list[Question], list[Question]]:
    """The questions the tab lists: the person's own open ones (one more than shown), those routed to them,
    and open ones on their topics; in public channels and `readable_private` (None: in any channel)."""
    mine = open_questions_of(session, team_id, user_id, readable_private=readable_private, limit=MAX_OPEN + 1)
    routed = routed_to(session, team_id, user_id, readable_private=readable_private, limit=MAX_ROUTED)
    on_topics = open_questions_on_topics(
        session, team_id, user_id, now - TOPIC_QUESTIONS_MAX_AGE, readable_private=readable_private, limit=MAX_ON_TOPICS
    )
    return mine, [question for question, _request in routed], on_topics


def private_channels_listed(session: Session, team_id: str, user_id: str, now: datetime) -> set[str]:
    """The private channels (or not yet known to be public) of the questions the tab could list: Slack must
    say the person is a member of each before any of their questions is shown (bot.routing.evidence.reads_channel)."""
    return {
        question.channel_id
        for questions in _listed(session, team_id, user_id, now, None)
        for question in questions
        if question.channel_private
    }


def gather_home(
    session: Session,
    settings: Settings,
    team_id: str,
    user_id: str,
    now: datetime,
    notice: str | None = None,
    *,
    readable_private: Collection[str],
    search: Searched | None = None,
) -> HomeData:
    """Everything the tab shows, read in the caller's session: questions from public channels and from the
    private channels in `readable_private`, those Slack says the person is a member of. The analytics and
    workspace settings sections are only computed for people PeerLearn knows to be workspace admins or owners
    (`users.info`, refreshed when the tab opens). `settings`: the environment's; the workspace's own apply."""
    person = session.get(Person, (team_id, user_id))
    mine, routed_questions, on_topics = _listed(session, team_id, user_id, now, readable_private)
    routed = [_line(q) for q in routed_questions]
    paused = person.paused_until if person is not None and person.paused_until and person.paused_until > now else None
    admin = shown = None
    proposals = []
    workspace = effective_settings(session, team_id, settings)
    if person is not None and person.is_admin and not person.deleted:
        admin = stats.build_report(session, team_id, now - ADMIN_WINDOW, now, now)
        proposals = sessions.proposals(session, team_id, admin.gaps)
        changes = recent_changes(session, team_id, MAX_CHANGES_SHOWN)
        shown = SettingsShown(
            workspace,
            [ChangeShown(c.user_id, c.changed_at, c.setting, c.old_value, c.new_value) for c in changes],
        )
    return HomeData(
        user_id=user_id,
        now=now,
        open_questions=[_line(q) for q in mine[:MAX_OPEN]],
        more_open=len(mine) > MAX_OPEN,
        routed=routed,
        on_topics=[_line(q) for q in on_topics],
        topics=declared_topics(session, team_id, user_id),
        paused_until=paused,
        contributions=stats.person_stats(session, team_id, user_id),
        helpers=top_helpers(session, team_id, *stats.month_of(now), limit=MAX_HELPERS)[0],
        preferences=preferences_of(person, workspace),
        admin=admin,
        workspace_settings=shown,
        notice=notice,
        search=search,
        sessions=sessions.home_upcoming(session, team_id, user_id, now),
        proposals=proposals,
        mentoring=mentoring.home_data(session, team_id, user_id),
        onboarding=onboarding.home_shown(session, team_id, user_id, now, admin=shown is not None),
    )


# --- publishing the tab (after the ack: it calls Slack) -------------------------------------------------


# (session, team_id, user_id, chosen value, services) -> a notice for the tab, or None
Change = Callable[[Session, str, str, str, Services], str | None]


def publish_home(
    client: WebClient,
    services: Services,
    team_id: str,
    user_id: str,
    notice: str | None = None,
    search: Searched | None = None,
) -> None:
    """Build the person's tab from the store and publish it (call after the ack: it calls Slack). Questions from
    a private channel are listed only once Slack said the person is a member of it. `search`: the results of
    the search the person just ran from the tab, shown at its top until it is published again."""
    now = services.clock.now()
    try:
        with services.store.session() as session:
            private = private_channels_listed(session, team_id, user_id, now)
        slack = WorkspaceClient(client)
        readable = {channel for channel in private if evidence.reads_channel(slack, user_id, channel, private=True)}
        with services.store.session() as session:
            data = gather_home(
                session, services.settings, team_id, user_id, now, notice, readable_private=readable, search=search
            )
    except SQLAlchemyError:
        logger.exception("could not read App Home data for %s", user_id)
        return
    try:
        client.views_publish(user_id=user_id, view=home_view(data))
    except SLACK_FAILURES as exc:
        logger.warning("could not publish App Home for %s: %s", user_id, error_code(exc))


def refresh_profile(client: WebClient, services: Services, team_id: str, user_id: str) -> None:
    """Remember whether the person is a workspace admin (the analytics section), and their time zone."""
    try:
        user = client.users_info(user=user_id)["user"]
    except SLACK_FAILURES as exc:
        logger.warning("users.info for %s failed: %s; using what PeerLearn knew", user_id, error_code(exc))
        return
    with services.store.session() as session:
        remember_profile(session, team_id, user, services.clock.now())


# --- what each control changes (stored before the ack) ---------------------------------------------


def set_pause(session: Session, team_id: str, user_id: str, value: str, services: Services) -> str | None:
    try:
        duration = parse_duration(value)
    except InvalidTeach:
        return unknown_choice("pause length", value)
    pause(session, team_id, user_id, duration, services.clock.now())
    return None


def set_resume(session: Session, team_id: str, user_id: str, value: str, services: Services) -> str | None:
    resume(session, team_id, user_id)
    return None


def set_notify_mode(session: Session, team_id: str, user_id: str, value: str, services: Services) -> str | None:
    if value not in NOTIFY_MODES:
        return unknown_choice("notification choice", value)
    ensure_person(session, team_id, user_id).notify_mode = value
    return None


def set_hours(which: str) -> Change:
    def change(session: Session, team_id: str, user_id: str, value: str, services: Services) -> str | None:
        person = ensure_person(session, team_id, user_id)
        prefs = preferences_of(person, effective_settings(session, team_id, services.settings))
        start, end = prefs.work_start_hour, prefs.work_end_hour
        try:
            hour = int(value)
        except ValueError:
            return unknown_choice("hour", value)
        if which == "start":
            start = hour
        else:
            end = hour
        if not (0 <= start <= 23 and 1 <= end <= 24):
            return unknown_choice("hour", value)
        if start == end:
            return SAME_HOURS
        # Both are stored: the tab showed the defaults as the other end, so that is what the person chose.
        person.work_start_hour, person.work_end_hour = start, end
        return None

    return change


def set_work_days(session: Session, team_id: str, user_id: str, value: str, services: Services) -> str | None:
    """`value`: the days ticked, comma-separated date.weekday() numbers (handlers/home.py chosen_value)."""
    ticked = [part for part in value.split(",") if part]
    if not all(part.isascii() and part.isdigit() and int(part) < DAYS_IN_WEEK for part in ticked):
        return unknown_choice("working day", value)
    if not ticked:
        return NO_WORK_DAYS
    ensure_person(session, team_id, user_id).work_days = days_as_text(int(part) for part in ticked)
    return None
