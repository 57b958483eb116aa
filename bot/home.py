"""App Home: what a person sees on PeerLearn's Home tab.

`gather_home` reads everything the tab shows in one short session (a handful of indexed queries) into plain
data (`HomeData`); `home_view` turns that into Block Kit, purely, within Slack's 100-block limit.

Buttons and selects on the tab use the action ids below (handlers/home.py stores what they change and
publishes the tab again); "I'll take it" and "Not me" use the routing DM's own action ids
(bot.blocks.ACTION_TAKE_QUESTION / ACTION_DECLINE_QUESTION, value = question id), so one handler serves both.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from bot import stats
from bot.blocks import (
    ACTION_DECLINE_QUESTION,
    ACTION_TAKE_QUESTION,
    ASK_USAGE,
    BUTTON_LIMIT,
    TEACH_USAGE,
    Block,
    actions,
    button,
    context,
    divider,
    fit_view_blocks,
    header,
    mention,
    mrkdwn,
    plain,
    section,
)
from bot.config import Settings
from bot.tags import escape_mrkdwn, format_tags, truncate
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

# Action ids of the Home tab's own controls.
HOME_EDIT_TOPICS = "home_edit_topics"  # opens the /teach topics form (bot.blocks.teach_modal)
HOME_PAUSE = "home_pause"  # static select: value a duration (bot.experts.parse_duration)
HOME_RESUME = "home_resume"
HOME_NOTIFY_MODE = "home_notify_mode"  # static select: NOTIFY_IMMEDIATE | NOTIFY_DAILY | NOTIFY_OFF
HOME_WORK_START = "home_work_start"  # static select: hour 0..23
HOME_WORK_END = "home_work_end"  # static select: hour 1..24

NOTIFY_CHOICES = {
    NOTIFY_IMMEDIATE: "DM me right away",
    NOTIFY_DAILY: "One daily summary",
    NOTIFY_OFF: "Don't DM me",
}
PAUSE_CHOICES = {"1d": "1 day", "7d": "1 week", "14d": "2 weeks", "30d": "30 days"}

MAX_OPEN = 5
MAX_ROUTED = 5
MAX_ON_TOPICS = 5
MAX_HELPERS = 5
MAX_ADMIN_TAGS = 8
MAX_TREND_WEEKS = 6
TOPIC_QUESTIONS_MAX_AGE = timedelta(days=30)  # older open questions on your topics are not news any more
ADMIN_WINDOW = timedelta(days=30)
QUESTION_CHARS = 300


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
        notify_mode=person.notify_mode if person.notify_mode in NOTIFY_CHOICES else NOTIFY_IMMEDIATE,
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


# --- Block Kit (pure) ---------------------------------------------------------------------------------


def option(label: str, value: str) -> dict[str, Any]:
    return {"text": plain(label, BUTTON_LIMIT), "value": value[:150]}


def static_select(
    action_id: str, choices: dict[str, str], initial: str | None = None, placeholder: str = "Choose…"
) -> Block:
    element: Block = {
        "type": "static_select",
        "action_id": action_id,
        "placeholder": plain(placeholder, 150),
        "options": [option(label, value) for value, label in list(choices.items())[:100]],
    }
    if initial in choices:
        element["initial_option"] = option(choices[initial], initial)  # type: ignore[index]
    return element


def fields_section(*texts: str) -> Block:
    return {"type": "section", "fields": [mrkdwn(t) for t in texts[:10]]}


def hour_label(hour: int) -> str:
    return "midnight" if hour in (0, 24) else f"{hour:02d}:00"


def _question_text(line: QuestionLine, with_asker: bool = False) -> str:
    tags = f"  {format_tags(line.tags)}" if line.tags else ""
    asker = f" · asked by {mention(line.asker_id)}" if with_asker and line.asker_id else ""
    return f"• {truncate(escape_mrkdwn(line.text), QUESTION_CHARS)} in <#{line.channel_id}>{tags}{asker}"


def _take(line: QuestionLine) -> Block:
    return button("I'll take it", ACTION_TAKE_QUESTION, str(line.question_id), style="primary")


def _my_questions(data: HomeData) -> list[Block]:
    content = [header("My open questions")]
    if not data.open_questions:
        return [*content, context("Nothing open. Ask something with `/ask How do I …? #tag`.")]
    content += [section(_question_text(line)) for line in data.open_questions]
    if data.more_open:
        content.append(context(f"Showing your {MAX_OPEN} newest open questions."))
    return content


def _waiting(data: HomeData) -> list[Block]:
    content = [header("Waiting for your expertise")]
    for line in data.routed:
        content.append(section(_question_text(line, with_asker=True) + "\n_PeerLearn asked you about this one._"))
        decline = button("Not me", ACTION_DECLINE_QUESTION, str(line.question_id))
        content.append(actions(_take(line), decline, block_id=f"home_routed_{line.question_id}"))
    for line in data.on_topics:
        content.append(section(_question_text(line, with_asker=True), accessory=_take(line)))
    if not data.routed and not data.on_topics:
        hint = (
            "Nothing waiting. Open questions on your topics show up here."
            if data.topics
            else "Nothing waiting. Declare topics below and matching questions show up here."
        )
        content.append(context(hint))
    return content


def _topics(data: HomeData) -> list[Block]:
    if data.topics:
        text = f"You are a go-to person for {format_tags(data.topics)}."
    else:
        text = "You are not a go-to person for any topic yet. Add topics and matching questions can reach you."
    if data.paused_until:
        text += f"\n:zzz: Paused until {data.paused_until:%a %d %b %H:%M} UTC: no questions are routed to you."
    controls = [button("Edit topics", HOME_EDIT_TOPICS, style=None if data.topics else "primary")]
    if data.paused_until:
        controls.append(button("Resume now", HOME_RESUME, "resume"))
    else:
        controls.append(static_select(HOME_PAUSE, PAUSE_CHOICES, placeholder="Pause for…"))
    return [header("My topics"), section(text), actions(*controls, block_id="home_topics")]


def _my_stats(data: HomeData) -> list[Block]:
    s = data.contributions
    return [
        header("My contributions"),
        fields_section(
            f"*Answers*\n{s.answers}",
            f"*Accepted answers*\n{s.accepted}",
            f"*Helpful votes received*\n{s.helpful_votes}",
            f"*Lessons shared*\n{s.lessons}",
        ),
    ]


def _helpers(data: HomeData) -> list[Block]:
    content = [header(f"Top helpers in {data.now:%B}")]
    if not data.helpers:
        return [*content, context("No accepted or helpful answers yet this month. Be the first!")]
    lines = [
        f"{i}. {mention(h.user_id)}: {h.accepted} accepted, {h.helpful} voted helpful"
        for i, h in enumerate(data.helpers, start=1)
    ]
    return [*content, section("\n".join(lines))]


def _notifications(data: HomeData) -> list[Block]:
    prefs = data.preferences
    zone = prefs.tz or "UTC"
    hours = f"{hour_label(prefs.work_start_hour)}–{hour_label(prefs.work_end_hour)}"
    note = "" if prefs.own_hours else " (the workspace's default)"
    starts = {str(h): hour_label(h) for h in range(24)}
    ends = {str(h): hour_label(h) for h in range(1, 25)}
    return [
        header("Notifications"),
        section(
            "*Questions routed to you*: how should they reach you?",
            accessory=static_select(HOME_NOTIFY_MODE, NOTIFY_CHOICES, prefs.notify_mode),
        ),
        section(
            f"*Working hours*: {hours}{note}, Monday to Friday, in your time zone ({escape_mrkdwn(zone)}). "
            "Outside them, questions wait for your morning."
        ),
        actions(
            static_select(HOME_WORK_START, starts, str(prefs.work_start_hour), placeholder="Start"),
            static_select(HOME_WORK_END, ends, str(prefs.work_end_hour), placeholder="End"),
            block_id="home_hours",
        ),
    ]


def _admin(report: stats.Report) -> list[Block]:
    o = report.overall
    days = round((report.until - report.since) / timedelta(days=1))
    content = [
        header(f"Programme analytics (last {days} days)"),
        fields_section(
            f"*Questions asked*\n{o.asked}",
            f"*Answered*\n{o.answered} ({stats.rate_text(o.answer_rate)})",
            f"*Median to first answer*\n{stats.duration_text(o.median_first_answer)}",
            f"*Median to accepted answer*\n{stats.duration_text(o.median_accepted)}",
        ),
    ]
    asked_tags = [t for t in report.tags if t.figures.asked][:MAX_ADMIN_TAGS]
    if asked_tags:
        lines = [
            f"`#{t.tag}` {t.figures.asked} asked, {stats.rate_text(t.figures.answer_rate)} answered, "
            f"first answer {stats.duration_text(t.figures.median_first_answer)}, "
            f"{t.available_experts}/{t.experts} go-to people available"
            for t in asked_tags
        ]
        content.append(section("*By tag*\n" + "\n".join(lines)))
    if report.gaps:
        gaps = ", ".join(f"`#{g.tag}` ({g.reason})" for g in report.gaps[:5])
        content.append(section(f"*Knowledge gaps*: {gaps}\n:bulb: {report.suggestion}"))
    trend = report.trend[-MAX_TREND_WEEKS:]
    if trend:
        weeks = " · ".join(f"{w.start:%d %b}: {w.figures.asked}" for w in trend)
        content.append(context(f"Questions per week: {weeks}. `make stats` has every figure."))
    return content


def home_view(data: HomeData) -> Block:
    content: list[Block] = [
        header("PeerLearn"),
        section(f"Hi {mention(data.user_id)}! Ask your colleagues with `/ask`, share what you know with `/teach`."),
    ]
    if data.notice:
        content.append(context(f":warning: {data.notice}"))
    for part in (_my_questions, _waiting, _topics, _my_stats, _helpers, _notifications):
        content += [divider(), *part(data)]
    if data.admin is not None:
        content += [divider(), *_admin(data.admin)]
    content += [divider(), section(ASK_USAGE), section(TEACH_USAGE)]
    return {"type": "home", "blocks": fit_view_blocks(content)}
