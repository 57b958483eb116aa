"""The App Home tab as Block Kit (pure, within Slack's 100-block limit), its controls' action ids, and the notes
the tab shows when a change was refused.

Buttons and selects on the tab use the action ids below (handlers/home.py stores what they change and
publishes the tab again); "I'll take it" and "Not me" use the routing DM's own action ids
(bot.messages.routing.ACTION_TAKE_QUESTION / ACTION_DECLINE_QUESTION, value = question id), so one handler
serves both.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from bot import stats, stats_render
from bot.messages.blocks import (
    Block,
    actions,
    button,
    checkboxes,
    context,
    divider,
    fields_section,
    fit_view_blocks,
    header,
    mention,
    section,
    static_select,
)
from bot.messages.help import ASK_USAGE, TEACH_USAGE
from bot.messages.mentoring import MentoringHome, home_section, mentor_demand_line
from bot.messages.onboarding import OnboardingShown, onboarding_home
from bot.messages.routing import ACTION_DECLINE_QUESTION, ACTION_TAKE_QUESTION
from bot.messages.search import ACTION_HOME_SEARCH, Searched, home_search_blocks
from bot.messages.sessions import Proposal, SessionShown, home_proposals, home_sessions
from bot.messages.settings import SettingsShown, settings_section
from bot.messages.working_time import day_choices, days_text, hour_label, hours_text
from bot.text import escape_mrkdwn, format_tags, truncate
from bot.workdays import MONDAY_TO_FRIDAY
from models.expert import NOTIFY_DAILY, NOTIFY_IMMEDIATE, NOTIFY_OFF
from models.top_helpers import Helper

# Action ids of the Home tab's own controls (and bot.messages.search.ACTION_HOME_SEARCH, the search form).
HOME_EDIT_TOPICS = "home_edit_topics"  # opens the /teach topics form (bot.messages.forms.teach_modal)
HOME_PAUSE = "home_pause"  # static select: value a duration (bot.experts.parse_duration)
HOME_RESUME = "home_resume"
HOME_NOTIFY_MODE = "home_notify_mode"  # static select: NOTIFY_IMMEDIATE | NOTIFY_DAILY | NOTIFY_OFF
HOME_WORK_START = "home_work_start"  # static select: hour 0..23
HOME_WORK_END = "home_work_end"  # static select: hour 1..24
HOME_WORK_DAYS = "home_work_days"  # checkboxes: the days ticked, each a date.weekday() number "0".."6"

NOTIFY_CHOICES = {
    NOTIFY_IMMEDIATE: "DM me right away",
    NOTIFY_DAILY: "One daily summary",
    NOTIFY_OFF: "Don't DM me",
}
PAUSE_CHOICES = {"1d": "1 day", "7d": "1 week", "14d": "2 weeks", "30d": "30 days"}

MAX_OPEN = 5  # the person's own open questions listed
MAX_ADMIN_TAGS = 8
MAX_TREND_WEEKS = 6
QUESTION_CHARS = 300

SAME_HOURS = "Working hours can't start and end at the same hour, so they were not changed."
NO_WORK_DAYS = "Tick at least one working day (questions wait for one), so your days were not changed."
FORM_NOT_OPENED = "Slack didn't open the form; try again."


@dataclass(frozen=True)
class QuestionLine:
    text: str
    channel_id: str
    tags: tuple[str, ...]
    question_id: int | None = None
    asker_id: str | None = None


@dataclass(frozen=True)
class Preferences:
    notify_mode: str = NOTIFY_IMMEDIATE
    work_start_hour: int = 9
    work_end_hour: int = 18
    tz: str | None = None
    own_hours: bool = False  # False: the workspace's default hours apply
    work_days: frozenset[int] = MONDAY_TO_FRIDAY
    own_days: bool = False  # False: the workspace's default days apply


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
    workspace_settings: SettingsShown | None = None  # admins only
    notice: str | None = None  # a one-off note, e.g. why a change was not saved
    search: Searched | None = None  # the results of the search the person just ran from the tab
    sessions: list[SessionShown] = field(default_factory=list)  # upcoming lunch-and-learns they may see
    proposals: list[Proposal] = field(default_factory=list)  # admins: knowledge gaps with no session yet
    mentoring: MentoringHome | None = None  # their mentors and mentees (bot/messages/mentoring.py)
    onboarding: OnboardingShown | None = None  # their buddy or newcomers; admins: the onboarding settings


def unknown_choice(what: str, value: str) -> str:
    """The note when a control sent a value the tab never offered (`what`: "pause length", "hour"…)."""
    return f"Unknown {what} {value!r}."


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
    hours = hours_text(prefs.work_start_hour, prefs.work_end_hour)
    defaults = [what for what, own in (("hours", prefs.own_hours), ("days", prefs.own_days)) if not own]
    note = f"\n_The {' and '.join(defaults)} are the workspace's default until you choose yours._" if defaults else ""
    starts = {str(h): hour_label(h) for h in range(24)}
    ends = {str(h): hour_label(h) for h in range(1, 25)}
    return [
        header("Notifications"),
        section(
            "*Questions routed to you*: how should they reach you?",
            accessory=static_select(HOME_NOTIFY_MODE, NOTIFY_CHOICES, prefs.notify_mode),
        ),
        section(
            f"*Working hours*: {hours}, {days_text(prefs.work_days)}, in your time zone ({escape_mrkdwn(zone)}). "
            f"Outside them, questions wait until you are at work.{note}",
            accessory=checkboxes(HOME_WORK_DAYS, day_choices(), [str(day) for day in prefs.work_days]),
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
            f"*Answered*\n{o.answered} ({stats_render.rate_text(o.answer_rate)})",
            f"*Median to first answer*\n{stats_render.duration_text(o.median_first_answer)}",
            f"*Median to accepted answer*\n{stats_render.duration_text(o.median_accepted)}",
            f"*Answered by the knowledge base*\n{o.answered_by_knowledge_base}",
        ),
    ]
    asked_tags = [t for t in report.tags if t.figures.asked][:MAX_ADMIN_TAGS]
    if asked_tags:
        lines = [
            f"`#{t.tag}` {t.figures.asked} asked, {stats_render.rate_text(t.figures.answer_rate)} answered, "
            f"first answer {stats_render.duration_text(t.figures.median_first_answer)}, "
            f"{t.available_experts}/{t.experts} go-to people available"
            for t in asked_tags
        ]
        content.append(section("*By tag*\n" + "\n".join(lines)))
    # Mentoring's waiting requests are knowledge gaps too: said in the gaps' block (no block of their own
    # where the tab is at its largest).
    demand = f"\n{mentor_demand_line(report.mentor_demand)}" if report.mentor_demand else ""
    if report.gaps:
        gaps = ", ".join(f"`#{g.tag}` ({g.reason})" for g in report.gaps[:5])
        content.append(section(f"*Knowledge gaps*: {gaps}\n:bulb: {report.suggestion}{demand}"))
    elif demand:
        content.append(section(demand.strip()))
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
    if data.search is not None:
        content += [divider(), *home_search_blocks(data.search)]
    else:
        content.append(actions(button(":mag: Search answers", ACTION_HOME_SEARCH), block_id="home_search"))
    content += home_sessions(data.sessions)  # lunch-and-learns (bot/messages/sessions.py): at most 1 block
    for part in (_my_questions, _waiting, _topics, _my_stats, _helpers, _notifications):
        content += [divider(), *part(data)]
    content += home_section(data.mentoring)
    if data.workspace_settings is not None:
        content += [divider(), *settings_section(data.workspace_settings)]
    content += onboarding_home(data.onboarding)
    if data.admin is not None:
        content += [divider(), *_admin(data.admin), *home_proposals(data.proposals)]  # proposals: at most 4
    content += [divider(), section(ASK_USAGE), section(TEACH_USAGE)]
    return {"type": "home", "blocks": fit_view_blocks(content)}
