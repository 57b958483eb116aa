"""App Home: what a person's Home tab shows, read from the store.

`gather_home` reads everything the tab shows in one short session (a handful of indexed queries) into plain
data (`HomeData`); bot/messages/home.py turns that into Block Kit.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from bot import stats
from bot.config import Settings
from models.expert import (
    NOTIFY_DAILY,
    NOTIFY_IMMEDIATE,
    NOTIFY_OFF,
    Person,
    declared_topics,
    open_questions_on_topics,
    routed_to,
)
from models.question import Question, open_questions_of
from models.top_helpers import Helper, top_helpers

NOTIFY_MODES = (NOTIFY_IMMEDIATE, NOTIFY_DAILY, NOTIFY_OFF)

MAX_OPEN = 5
MAX_ROUTED = 5
MAX_ON_TOPICS = 5
MAX_HELPERS = 5
TOPIC_QUESTIONS_MAX_AGE = timedelta(days=30)  # older open questions on your topics are not news any more
ADMIN_WINDOW = timedelta(days=30)


@dataclass(frozen=True)
class QuestionLine:
    text: str
    channel_id: str
    tags: tuple[str, ...]
    question_id: int | None = None
    asker_id: str | None = None

    @classmethod
    def of(cls, question: Question) -> QuestionLine:
        return cls(question.text, question.channel_id, tuple(question.tag_names), question.id, question.asker_id)


@dataclass(frozen=True)
class Preferences:
    notify_mode: str = NOTIFY_IMMEDIATE
    work_start_hour: int = 9
    work_end_hour: int = 18
    tz: str | None = None
    own_hours: bool = False  # False: the workspace's default hours apply


@dataclass(frozen=True)
class HomeData:
    user_id: str
    now: datetime
    open_questions: list[QuestionLine] = field(default_factory=list)
    more_open: bool = False
    routed: list[QuestionLine] = field(default_factory=list)
    on_topics: list[QuestionLine] = field(default_factory=list)
    topics: list[str] = field(default_factory=list)
    paused_until: datetime | None = None
    contributions: stats.PersonStats = field(default_factory=stats.PersonStats)
    helpers: list[Helper] = field(default_factory=list)
    preferences: Preferences = field(default_factory=Preferences)
    admin: stats.Report | None = None
    notice: str | None = None  # a one-off note, e.g. why a change was not saved


def preferences_of(person: Person | None, settings: Settings) -> Preferences:
    if person is None:
        return Preferences(work_start_hour=settings.work_start_hour, work_end_hour=settings.work_end_hour)
    own = person.work_start_hour is not None and person.work_end_hour is not None
    return Preferences(
        notify_mode=person.notify_mode if person.notify_mode in NOTIFY_MODES else NOTIFY_IMMEDIATE,
        work_start_hour=person.work_start_hour if person.work_start_hour is not None else settings.work_start_hour,
        work_end_hour=person.work_end_hour if person.work_end_hour is not None else settings.work_end_hour,
        tz=person.tz,
        own_hours=own,
    )


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
    say the person is a member of each before any of their questions is shown (bot.route.reads_channel)."""
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
) -> HomeData:
    """Everything the tab shows, read in the caller's session: questions from public channels and from the
    private channels in `readable_private`, those Slack says the person is a member of. The analytics section
    is only computed for people PeerLearn knows to be workspace admins or owners (`users.info`, refreshed when
    the tab opens)."""
    person = session.get(Person, (team_id, user_id))
    mine, routed_questions, on_topics = _listed(session, team_id, user_id, now, readable_private)
    routed = [QuestionLine.of(q) for q in routed_questions]
    paused = person.paused_until if person is not None and person.paused_until and person.paused_until > now else None
    admin = None
    if person is not None and person.is_admin:
        admin = stats.build_report(session, team_id, now - ADMIN_WINDOW, now, now)
    return HomeData(
        user_id=user_id,
        now=now,
        open_questions=[QuestionLine.of(q) for q in mine[:MAX_OPEN]],
        more_open=len(mine) > MAX_OPEN,
        routed=routed,
        on_topics=[QuestionLine.of(q) for q in on_topics],
        topics=declared_topics(session, team_id, user_id),
        paused_until=paused,
        contributions=stats.person_stats(session, team_id, user_id),
        helpers=top_helpers(session, team_id, *stats.month_of(now), limit=MAX_HELPERS)[0],
        preferences=preferences_of(person, settings),
        admin=admin,
        notice=notice,
    )
