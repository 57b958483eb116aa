"""Routing questions to experts, similar-question suggestions and escalation: the database and Slack side.

bot/routing.py ranks experts and plans DMs (pure); bot/search.py finds similar answered items. This module
loads the ranker's evidence with a few aggregate queries (declared topics; answers with their accepted flag
and helpful-vote counts; tag frequencies), never one query per person; keeps what `users.info` says about
people (time zone, bot, deactivated) in `people`, asking Slack again only for the people about to be DMed
and only when older than PEERLEARN_PROFILE_MAX_AGE_HOURS; records one RouteRequest per DM (sent now, or
scheduled for the expert's morning), sends the DMs that are due, and escalates.

Each question moves through `questions.escalation_level`, `next_escalation_at` saying when the next step
is due (the scheduler's `tick` takes due steps; the asker's buttons take the first one early):
  0  posted, nobody asked yet: routed at once when no similar earlier answer was found, when the asker
     clicks "Still need help", or when the grace period for reading the suggestions is over;
  1  round 1 DMed: still unanswered after the escalation period, the next experts are DMed (round 2);
  2  round 2 DMed: still unanswered after another period, a gentle bump in the thread;
  3  bumped: nothing more.
An answer in the thread clears `next_escalation_at` (stop_escalation); resolving the question cancels the
DMs still waiting to be sent (cancel_pending), and the DMs sent are redrawn to say how it was resolved (and
redrawn back if it is re-opened: redraw_routed_dms). After round 1 the asker is told who was asked and who
will be, and roughly when (routing_note).

Several replicas and restarts: all state is in the database. A step claims its question with a conditional
UPDATE (... WHERE escalation_level = <seen> AND status = 'open') in the transaction that records its DMs, and
every DM is claimed (status scheduled -> sent) by a conditional UPDATE before it is posted, so two replicas
never send the same DM. A process killed between a claim and its Slack call loses that one message rather
than sending it twice.
"""

from __future__ import annotations

import logging
import math
import re
from collections import defaultdict
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any

from slack_sdk import WebClient
from sqlalchemy import and_, case, exists, func, select, update
from sqlalchemy.orm import Session, aliased

from bot.config import Settings
from bot.messages.blocks import Message, ephemeral
from bot.messages.questions import resolution_text
from bot.messages.routing import (
    ROUTE_CLOSED_NOTE,
    ROUTE_DECLINED_NOTE,
    ROUTE_OPEN,
    ROUTE_TAKEN_NOTE,
    RoutedQuestion,
    bump_message,
    on_it_message,
    route_dm,
)
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
from bot.messages.suggestions import SimilarItem, similar_suggestions
from bot.routing import (
    AnswerRecord,
    Availability,
    Candidate,
    PlannedDM,
    RankingParams,
    ScoredExpert,
    TagStats,
    is_within_working_hours,
    next_working_start,
    plan_routing,
    rank_experts,
    resolve_timezone,
)
from bot.search import KIND_LESSON, KIND_QUESTION, search_similar
from bot.services import Services
from bot.slack_errors import SLACK_FAILURES, error_code, may_have_happened
from models.base import insert_if_new, insert_once, parse_row_id
from models.expert import (
    FORGOTTEN_USER_ID,
    NOTIFY_DAILY,
    NOTIFY_OFF,
    ROUTE_CANCELLED,
    ROUTE_DECLINED,
    ROUTE_SCHEDULED,
    ROUTE_SENT,
    ROUTE_TAKEN,
    Expertise,
    KnowledgeGap,
    Person,
    RouteRequest,
    remember_profile,
)
from models.lesson import Lesson
from models.question import (
    RESOLUTION_SIMILAR,
    STATUS_OPEN,
    STATUS_RESOLVED,
    VOTE_HELPFUL,
    Answer,
    Question,
    QuestionTag,
    Vote,
)
from models.workspace import Workspace

logger = logging.getLogger("peerlearn.route")

LEVEL_NEW, LEVEL_ROUND_1, LEVEL_ROUND_2, LEVEL_BUMPED = 0, 1, 2, 3
SIMILAR_LIMIT = 3  # suggestions shown to the asker
HISTORY_WINDOW = timedelta(days=365)  # older answers weigh < 1/16 at the ranker's 90-day half-life
MAX_LEARNED_CANDIDATES = 50  # people known only from their answers, the most active on the tags first
RELATED_TAGS_PER_TAG = 10  # co-asked tags loaded per question tag (the ranker uses the top few)
MAX_TEXT_WORDS = 200  # words of the question looked up as tags it mentions
MAX_PROFILE_ROUNDS = 4  # plan, refresh the planned people's profiles, plan again
RECENT_LOAD = timedelta(days=7)  # equal candidates: who had fewer DMs in this window goes first
MAX_DUE = 200  # steps and DMs taken per tick; the next tick takes the rest
_TAG_WORD = re.compile(r"[a-z0-9][a-z0-9.+#_-]*[a-z0-9+#]|[a-z0-9]")  # as bot.routing reads tags in text


# --- Slack, on behalf of one workspace ------------------------------------------------------------------------


TokenLookup = Callable[[str], str | None]


@dataclass(frozen=True)
class Slack:
    """A WebClient and the arguments that make its calls for one workspace (its token, with "Add to Slack").

    In a listener, Bolt's client already carries the workspace's token; a tick passes it per workspace."""

    client: WebClient
    auth: Mapping[str, Any] = field(default_factory=dict)


def slack_for(client: WebClient, token_for: TokenLookup | None = None) -> Callable[[str], Slack]:
    def lookup(team_id: str) -> Slack:
        token = token_for(team_id) if token_for else None
        return Slack(client, {"token": token} if token else {})

    return lookup


def permalink(slack: Slack, channel_id: str, message_ts: str | None) -> str | None:
    if not message_ts:
        return None
    try:
        return str(slack.client.chat_getPermalink(channel=channel_id, message_ts=message_ts, **slack.auth)["permalink"])
    except SLACK_FAILURES as exc:
        logger.warning("no permalink for %s in %s: %s", message_ts, channel_id, error_code(exc))
        return None


def tell(slack: Slack, *, channel_id: str, user_id: str, message: Message) -> bool:
    """An ephemeral note in the channel, or a DM when the channel won't take it; False when neither worked."""
    try:
        slack.client.chat_postEphemeral(channel=channel_id, user=user_id, **message.as_kwargs(), **slack.auth)
        return True
    except SLACK_FAILURES as exc:
        logger.info("ephemeral to %s in %s failed (%s); sending a DM", user_id, channel_id, error_code(exc))
    try:
        dm = slack.client.conversations_open(users=user_id, **slack.auth)["channel"]["id"]
        slack.client.chat_postMessage(channel=dm, **message.as_kwargs(), **slack.auth)
        return True
    except SLACK_FAILURES as exc:
        logger.warning("could not reach %s at all: %s", user_id, error_code(exc))
        return False


def channel_members(slack: Slack, channel_id: str) -> set[str] | None:
    """Members of a (private) channel; None when Slack won't say, and then nobody outside is DMed."""
    members: set[str] = set()
    cursor: str | None = None
    try:
        while True:
            page = slack.client.conversations_members(channel=channel_id, limit=1000, cursor=cursor, **slack.auth)
            members.update(page.get("members") or [])
            cursor = (page.get("response_metadata") or {}).get("next_cursor") or None
            if not cursor:
                return members
    except SLACK_FAILURES as exc:
        logger.warning(
            "conversations.members for %s failed: %s; no expert is DMed about it", channel_id, error_code(exc)
        )
        return None


def reads_channel(slack: Slack, user_id: str, channel_id: str, private: bool) -> bool:
    """The membership rule (as routing applies it): anyone may see a public channel's question; a private
    channel's only its members, as Slack lists them (nobody, when Slack won't say)."""
    return not private or user_id in (channel_members(slack, channel_id) or set())


# --- what PeerLearn knows about a question and the people ---------------------------------------------------


@dataclass(frozen=True, slots=True)
class QuestionFacts:
    id: int
    team_id: str
    channel_id: str
    channel_private: bool
    asker_id: str
    text: str
    tags: tuple[str, ...]
    message_ts: str | None
    status: str
    level: int

    @classmethod
    def of(cls, question: Question) -> QuestionFacts:
        return cls(
            question.id,
            question.team_id,
            question.channel_id,
            question.channel_private,
            question.asker_id,
            question.text,
            tuple(question.tag_names),
            question.message_ts,
            question.status,
            question.escalation_level,
        )


def load_question(session: Session, question_id: int) -> QuestionFacts | None:
    question = session.get(Question, question_id)
    return QuestionFacts.of(question) if question is not None else None


@dataclass(frozen=True, slots=True)
class PersonFacts:
    """The `people` row of a candidate, read once (rows never leave their session)."""

    user_id: str
    tz: str | None = None
    is_bot: bool = False
    deleted: bool = False
    paused_until: datetime | None = None
    notify_mode: str | None = None
    work_start_hour: int | None = None
    work_end_hour: int | None = None
    profile_fetched_at: datetime | None = None

    @classmethod
    def of(cls, person: Person) -> PersonFacts:
        return cls(
            person.user_id,
            person.tz,
            person.is_bot,
            person.deleted,
            person.paused_until,
            person.notify_mode,
            person.work_start_hour,
            person.work_end_hour,
            person.profile_fetched_at,
        )

    def is_paused(self, now: datetime) -> bool:
        return self.paused_until is not None and self.paused_until > now

    def why_not_routable(self, now: datetime) -> str | None:
        """Why no DM may reach this person now (None: it may)."""
        if self.deleted:
            return "deactivated"
        if self.is_bot:
            return "a bot"
        if self.is_paused(now):
            return "paused"
        if self.notify_mode == NOTIFY_OFF:
            return "asked for no DMs"
        return None


def needs_profile(person: PersonFacts | None, now: datetime, max_age: timedelta) -> bool:
    return person is None or person.profile_fetched_at is None or now - person.profile_fetched_at >= max_age


def refresh_profiles(slack: Slack, services: Services, team_id: str, user_ids: Iterable[str]) -> dict[str, PersonFacts]:
    """Ask Slack (users.info) about these people and remember it. A user Slack doesn't know is deactivated."""
    fetched: dict[str, PersonFacts] = {}
    for user_id in user_ids:
        try:
            user = slack.client.users_info(user=user_id, **slack.auth)["user"]
        except SLACK_FAILURES as exc:
            code = error_code(exc)
            if code != "user_not_found":
                logger.warning("users.info for %s failed: %s; routing with what PeerLearn knew", user_id, code)
                continue
            user = {"id": user_id, "deleted": True}
        with services.store.session() as session:
            fetched[user_id] = PersonFacts.of(remember_profile(session, team_id, user, services.clock.now()))
    return fetched


# --- evidence: a few aggregate queries ------------------------------------------------------------------------


@dataclass
class Evidence:
    """What the ranker needs about the people who might know a question's tags."""

    declared: dict[str, set[str]]  # user -> the question's tags they declared
    history: dict[str, list[AnswerRecord]]  # user -> their answers in HISTORY_WINDOW
    people: dict[str, PersonFacts]
    tag_stats: TagStats
    coverage: dict[str, set[str]]  # tag -> everyone who declared it or answered on it

    @property
    def user_ids(self) -> set[str]:
        return set(self.declared) | set(self.history)


def _accepted(answer: type[Answer] = Answer) -> Any:
    return case((Question.accepted_answer_id == answer.id, 1), else_=0)


def load_evidence(
    session: Session, team_id: str, tags: Sequence[str], text: str, now: datetime, exclude: Collection[str] = ()
) -> Evidence:
    since = now - HISTORY_WINDOW
    declared: dict[str, set[str]] = defaultdict(set)
    coverage: dict[str, set[str]] = defaultdict(set)
    for user_id, tag in session.execute(
        select(Expertise.user_id, Expertise.tag).where(Expertise.team_id == team_id, Expertise.tag.in_(tags))
    ):
        declared[user_id].add(tag)
        coverage[tag].add(user_id)

    # Who answered on these tags, and how much (one GROUP BY): the most active become candidates.
    weight: dict[str, float] = defaultdict(float)
    for user_id, tag, answers, accepted in session.execute(
        select(Answer.user_id, QuestionTag.tag, func.count(Answer.id), func.sum(_accepted()))
        .join(QuestionTag, QuestionTag.question_id == Answer.question_id)
        .join(Question, Question.id == Answer.question_id)
        .where(
            QuestionTag.team_id == team_id,
            QuestionTag.tag.in_(tags),
            Answer.deleted_at.is_(None),
            Answer.created_at >= since,
        )
        .group_by(Answer.user_id, QuestionTag.tag)
    ):
        coverage[tag].add(user_id)
        weight[user_id] += answers + (accepted or 0)
    learned = sorted((u for u in weight if u not in exclude and u not in declared), key=lambda u: (-weight[u], u))
    user_ids = sorted(({u for u in declared if u not in exclude}) | set(learned[:MAX_LEARNED_CANDIDATES]))

    history = _load_history(session, team_id, user_ids, since) if user_ids else {}
    people = (
        {
            person.user_id: PersonFacts.of(person)
            for person in session.scalars(select(Person).where(Person.team_id == team_id, Person.user_id.in_(user_ids)))
        }
        if user_ids
        else {}
    )
    return Evidence(
        declared={u: declared[u] for u in user_ids if u in declared},
        history={u: history.get(u, []) for u in user_ids},
        people=people,
        # Tag frequencies only weigh candidates against each other: none, nothing to weigh (three queries saved).
        tag_stats=_load_tag_stats(session, team_id, tags, text) if user_ids else TagStats(question_count=0),
        coverage=dict(coverage),
    )


def _load_history(
    session: Session, team_id: str, user_ids: Sequence[str], since: datetime
) -> dict[str, list[AnswerRecord]]:
    """Every answer of these people since `since`: its question's tags, accepted or not, helpful votes."""
    live = and_(
        Answer.team_id == team_id,
        Answer.user_id.in_(user_ids),
        Answer.deleted_at.is_(None),
        Answer.created_at >= since,
    )
    rows = session.execute(
        select(Answer.id, Answer.user_id, Answer.question_id, Answer.created_at, _accepted(), func.count(Vote.id))
        .join(Question, Question.id == Answer.question_id)
        .outerjoin(Vote, and_(Vote.answer_id == Answer.id, Vote.kind == VOTE_HELPFUL))
        .where(live)
        .group_by(Answer.id, Answer.user_id, Answer.question_id, Answer.created_at, Question.accepted_answer_id)
    ).all()
    tags_of: dict[int, set[str]] = defaultdict(set)
    answered = select(Answer.question_id).where(live).scalar_subquery()
    for question_id, tag in session.execute(
        select(QuestionTag.question_id, QuestionTag.tag).where(QuestionTag.question_id.in_(answered))
    ):
        tags_of[question_id].add(tag)
    texts = _recent_texts(session, live)
    history: dict[str, list[AnswerRecord]] = defaultdict(list)
    for answer_id, user_id, question_id, created_at, accepted, votes in rows:
        question_text, answer_text = texts.get(answer_id, ("", ""))
        history[user_id].append(
            AnswerRecord(
                tags=frozenset(tags_of.get(question_id, ())),
                answered_at=created_at,
                accepted=bool(accepted),
                helpful_votes=int(votes or 0),
                question_text=question_text,
                answer_text=answer_text,
            )
        )
    return history


def _recent_texts(session: Session, live: Any) -> dict[int, tuple[str, str]]:
    """The texts of each person's most recent answers (and of the questions they answered): what the
    ranker's text feature describes a person by. One windowed query, however many people."""
    recent = (
        select(
            Answer.id.label("answer_id"),
            Answer.question_id.label("question_id"),
            Answer.text.label("answer_text"),
            func.row_number().over(partition_by=Answer.user_id, order_by=Answer.created_at.desc()).label("n"),
        )
        .where(live)
        .subquery()
    )
    rows = session.execute(
        select(recent.c.answer_id, Question.text, recent.c.answer_text)
        .join(Question, Question.id == recent.c.question_id)
        .where(recent.c.n <= RankingParams().text_records)
    )
    return {answer_id: (question_text or "", answer_text or "") for answer_id, question_text, answer_text in rows}


def _load_tag_stats(session: Session, team_id: str, tags: Sequence[str], text: str) -> TagStats:
    """Tag frequencies for the question's tags, the tags asked with them, and tags its text mentions."""
    other = aliased(QuestionTag)
    pair_rows = session.execute(
        select(QuestionTag.tag, other.tag, func.count())
        .join(other, and_(other.question_id == QuestionTag.question_id, other.tag != QuestionTag.tag))
        .where(QuestionTag.team_id == team_id, QuestionTag.tag.in_(tags))
        .group_by(QuestionTag.tag, other.tag)
    ).all()
    by_tag: dict[str, list[tuple[int, str]]] = defaultdict(list)
    for tag, related, count in pair_rows:
        by_tag[tag].append((int(count), related))
    pairs: dict[tuple[str, str], int] = {}
    for tag, counted in by_tag.items():
        for count, related in sorted(counted, key=lambda item: (-item[0], item[1]))[:RELATED_TAGS_PER_TAG]:
            a, b = sorted((tag, related))
            pairs[(a, b)] = count
    words = list(dict.fromkeys(_TAG_WORD.findall(text.casefold())))[:MAX_TEXT_WORDS]
    names = set(tags) | {tag for pair in pairs for tag in pair} | set(words)
    counts = {
        tag: int(count)
        for tag, count in session.execute(
            select(QuestionTag.tag, func.count())
            .where(QuestionTag.team_id == team_id, QuestionTag.tag.in_(sorted(names)))
            .group_by(QuestionTag.tag)
        )
    }
    total = session.scalar(select(func.count(Question.id)).where(Question.team_id == team_id)) or 0
    return TagStats(question_count=int(total), tag_counts=counts, pair_counts=pairs)


@dataclass(frozen=True)
class DMLoad:
    """How many DMs each candidate got lately (their daily cap, and fairness between equals)."""

    sent_recently: Mapping[str, list[datetime]]  # sent_at of DMs in the last 25 h (any local "today")
    pending: Mapping[str, int]  # DMs scheduled, not sent yet
    recent: Mapping[str, tuple[int, datetime | None]]  # (count, last) over RECENT_LOAD

    def counts_today(self, now: datetime, people: Mapping[str, PersonFacts]) -> dict[str, int]:
        """DMs sent since midnight in each person's own time zone, plus those waiting to be sent: a DM
        scheduled for their morning counts already, so a night of questions never exceeds the cap."""
        counts: dict[str, int] = {}
        for user_id in set(self.sent_recently) | set(self.pending):
            person = people.get(user_id)
            zone = resolve_timezone(person.tz if person else None)
            midnight = now.astimezone(zone).replace(hour=0, minute=0, second=0, microsecond=0)
            today = sum(1 for sent in self.sent_recently.get(user_id, ()) if sent >= midnight)
            counts[user_id] = today + self.pending.get(user_id, 0)
        return counts


def load_dm_load(session: Session, team_id: str, user_ids: Sequence[str], now: datetime) -> DMLoad:
    if not user_ids:
        return DMLoad({}, {}, {})
    mine = and_(RouteRequest.team_id == team_id, RouteRequest.expert_id.in_(user_ids))
    sent: dict[str, list[datetime]] = defaultdict(list)
    for user_id, sent_at in session.execute(
        select(RouteRequest.expert_id, RouteRequest.sent_at).where(
            mine, RouteRequest.sent_at >= now - timedelta(hours=25)
        )
    ):
        if sent_at is not None:
            sent[user_id].append(sent_at)
    pending = {
        user_id: int(count)
        for user_id, count in session.execute(
            select(RouteRequest.expert_id, func.count())
            .where(mine, RouteRequest.status == ROUTE_SCHEDULED)
            .group_by(RouteRequest.expert_id)
        )
    }
    when = func.coalesce(RouteRequest.sent_at, RouteRequest.send_at)
    recent = {
        user_id: (int(count), last)
        for user_id, count, last in session.execute(
            select(RouteRequest.expert_id, func.count(), func.max(when))
            .where(mine, when >= now - RECENT_LOAD)
            .group_by(RouteRequest.expert_id)
        )
    }
    return DMLoad(dict(sent), pending, recent)


# --- pure decisions ---------------------------------------------------------------------------------------------


def _valid_hours(start: int | None, end: int | None) -> bool:
    return start is not None and end is not None and 0 <= start <= 23 and 1 <= end <= 24 and start != end


def availability_of(person: PersonFacts | None, settings: Settings) -> Availability | None:
    """A person's working hours in their zone (their own hours, or the workspace default); None when
    PeerLearn knows neither their zone nor hours of their own: they count as available."""
    if person is None:
        return None
    own = _valid_hours(person.work_start_hour, person.work_end_hour)
    if not own and not person.tz:
        return None
    if own:
        start, end = person.work_start_hour, person.work_end_hour
    elif _valid_hours(settings.work_start_hour, settings.work_end_hour):
        start, end = settings.work_start_hour, settings.work_end_hour
    else:
        return None
    assert start is not None and end is not None
    return Availability(tz_name=person.tz or "UTC", start_hour=start, end_hour=end)


def next_summary_time(now: datetime, availability: Availability | None) -> datetime:
    """When a daily-summary person's next summary goes out: the start of their next working shift that
    begins after `now` (tomorrow morning when they are at work now)."""
    hours = availability or Availability()
    moment = now
    for _ in range(100):  # a shift is at most 23 h long
        if not is_within_working_hours(moment, hours.tz_name, hours.start_hour, hours.end_hour):
            break
        moment += timedelta(minutes=30)
    return next_working_start(moment, hours.tz_name, hours.start_hour, hours.end_hour)


def spread_ties(
    ranked: Sequence[ScoredExpert], recent: Mapping[str, tuple[int, datetime | None]]
) -> list[ScoredExpert]:
    """Among experts the ranker cannot tell apart, who had fewer DMs lately (then the longest ago) goes
    first, so equal experts take turns instead of the first user id always winning the tie."""
    never = datetime.min.replace(tzinfo=UTC)
    result: list[ScoredExpert] = []
    start = 0
    while start < len(ranked):
        end = start + 1
        while end < len(ranked) and _tied(ranked[start], ranked[end]):
            end += 1
        group = ranked[start:end]
        result += sorted(
            group,
            key=lambda e: (
                recent.get(e.user_id, (0, None))[0],
                recent.get(e.user_id, (0, None))[1] or never,
                e.user_id,
            ),
        )
        start = end
    return result


def _tied(a: ScoredExpert, b: ScoredExpert) -> bool:
    return math.isclose(a.score, b.score, rel_tol=1e-9, abs_tol=1e-12) and math.isclose(
        a.expertise, b.expertise, rel_tol=1e-9, abs_tol=1e-12
    )


def escalation_period(settings: Settings, workspace_hours: int | None) -> timedelta:
    hours = workspace_hours if workspace_hours and workspace_hours > 0 else settings.escalation_hours
    return timedelta(hours=hours)


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


def plan_question(
    slack: Slack, services: Services, facts: QuestionFacts, now: datetime, *, top_n: int, exclude: Collection[str]
) -> RoutingPlan:
    """Rank and plan who to DM about a question, and when. Asks Slack about the planned people only."""
    settings = services.settings
    tags = list(facts.tags)
    if not tags or top_n <= 0:
        return RoutingPlan([], {})
    excluded = set(exclude) | {facts.asker_id, FORGOTTEN_USER_ID}
    with services.store.session() as session:
        evidence = load_evidence(session, facts.team_id, tags, facts.text, now, excluded)
        load = load_dm_load(session, facts.team_id, sorted(evidence.user_ids), now)
    members = None  # a private channel's members (None: Slack wouldn't say, and then nobody is DMed)
    if facts.channel_private and evidence.user_ids:
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
            if user_id in excluded or not may_see(user_id):
                continue
            if person is not None and person.notify_mode == NOTIFY_OFF:
                continue
            # What Slack said is trusted while fresh; a stale "deactivated" is asked again if they would be DMed.
            known = person is not None and (user_id in asked_slack or not needs_profile(person, now, max_age))
            candidates.append(
                Candidate(
                    user_id=user_id,
                    declared_tags=frozenset(evidence.declared.get(user_id, ())),
                    history=tuple(evidence.history.get(user_id, ())),
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
    return RoutingPlan(
        planned, {dm.user_id: reasons.get(dm.user_id, "") for dm in planned}, gaps, alone, alone_here, unavailable
    )


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


def _already_involved(session: Session, question_id: int) -> set[str]:
    """People asked about this question already (in any state) or who answered it: not asked again."""
    asked = session.scalars(select(RouteRequest.expert_id).where(RouteRequest.question_id == question_id))
    answered = session.scalars(
        select(Answer.user_id).where(Answer.question_id == question_id, Answer.deleted_at.is_(None))
    )
    return set(asked) | set(answered)


def _record_dms(session: Session, facts: QuestionFacts, plan: RoutingPlan, round_number: int) -> list[str]:
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
    slack: Slack,
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
        involved = _already_involved(session, question_id)
        workspace = session.get(Workspace, facts.team_id)
        period = escalation_period(services.settings, workspace.escalation_hours if workspace else None)
    round_number = from_level + 1
    plan = plan_question(slack, services, facts, now, top_n=services.settings.route_top_n, exclude=involved)
    with services.store.session() as session:
        if not claim_step(session, question_id, from_level, now + period, due_by):
            logger.info("question %s: round %s taken by another replica", question_id, round_number)
            return None
        asked = _record_dms(session, facts, plan, round_number)
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
    slack: Slack,
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
    asked = [  # a DM went out (whatever they answered since), or is going out now
        user_id
        for user_id, status, sent_at, at in requests
        if sent_at is not None or (status == ROUTE_SCHEDULED and at <= now)
    ]
    zone = asker_zone(slack, services, facts, asker_facts, now) if waiting else UTC
    parts = [routing_plan_text(asked, [(user_id, roughly_when(now, at, zone)) for user_id, at in waiting])]
    if plan is not None:
        if not facts.tags:
            parts.append(NO_TAGS_NOTE)
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
    slack: Slack, services: Services, facts: QuestionFacts, known: PersonFacts | None, now: datetime
) -> tzinfo:
    """The asker's time zone, from what Slack said about them (`known`, asked again when that is stale);
    UTC when nobody knows."""
    if needs_profile(known, now, timedelta(hours=services.settings.profile_max_age_hours)):
        known = refresh_profiles(slack, services, facts.team_id, [facts.asker_id]).get(facts.asker_id, known)
    return resolve_timezone(known.tz if known else None)


def still_need_help(slack: Slack, services: Services, question_id: int) -> str:
    """The asker's "Still need help" after its click was stored: round 1 now unless it was taken already
    (by the tick, or a double click), and what to tell the asker either way."""
    step = route_round(slack, services, question_id, LEVEL_NEW, tell_asker=False)
    if step is not None:
        return step.note or NOBODY_ASKED_NOTE
    with services.store.session() as session:
        facts = load_question(session, question_id)
    note = routing_note(slack, services, facts, services.clock.now()) if facts is not None else None
    return note or NOBODY_ASKED_NOTE


def route_now(slack: Slack, services: Services, question_id: int) -> StepOutcome | None:
    """Round 1 right away (no similar answers, or "Still need help"); None when it happened already."""
    return route_round(slack, services, question_id, LEVEL_NEW)


def bump(slack: Slack, services: Services, question_id: int, due_by: datetime) -> StepOutcome | None:
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


def take_step(slack: Slack, services: Services, question_id: int, now: datetime) -> StepOutcome | None:
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
    workspace_slack = slack_for(client, token_for)
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


# --- sending DMs -----------------------------------------------------------------------------------------------


def send_due_dms(
    workspace_slack: Callable[[str], Slack], services: Services, now: datetime, *, question_id: int | None = None
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
    slack: Slack,
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

    def with_link(self, slack: Slack) -> Resolved:
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
    slack: Slack, services: Services, question_id: int, resolutions: dict[int, Resolved | None] | None = None
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


def redraw_dm(slack: Slack, services: Services, team_id: str, expert_id: str, question_id: int) -> None:
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
    slack: Slack,
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


# --- the buttons: stored before the ack (DB only), Slack after it ---------------------------------------------

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


def take_question(session: Session, team_id: str, question_id: int, user_id: str, now: datetime) -> ButtonOutcome:
    """An expert's "I'll take it" (from a DM, an ephemeral or the App Home): idempotent, a double click
    changes nothing.
    Pending DMs to others are cancelled: someone is on it."""
    question = _open_question(session, team_id, question_id)
    if question is None:
        return ButtonOutcome(CLOSED, question_id)
    if question.asker_id == user_id:
        return ButtonOutcome(OWN, question_id)
    if question.status != STATUS_OPEN:
        return ButtonOutcome(CLOSED, question_id)
    request = _request_of(session, question_id, user_id)
    if request is None:
        request = RouteRequest(
            team_id=team_id,
            question_id=question_id,
            expert_id=user_id,
            round=max(question.escalation_level, 1),
            status=ROUTE_TAKEN,
            reason="took it without being asked",
            send_at=now,
        )
        if insert_once(session, request):
            cancel_pending(session, question_id)
            return ButtonOutcome(TAKEN, question_id, request.round)
        request = _request_of(session, question_id, user_id)  # a double click inserted it meanwhile
        assert request is not None
    if _set_status(session, request.id, ROUTE_TAKEN, (ROUTE_SCHEDULED, ROUTE_SENT, ROUTE_DECLINED)):
        cancel_pending(session, question_id)
        return ButtonOutcome(TAKEN, question_id, request.round, was_routed=True)
    return ButtonOutcome(ALREADY, question_id, request.round)


def decline_question(session: Session, team_id: str, question_id: int, user_id: str, now: datetime) -> ButtonOutcome:
    """An expert's "Not me": this person is not asked about it again; when they had been asked, someone else is."""
    question = _open_question(session, team_id, question_id)
    if question is None:
        return ButtonOutcome(CLOSED, question_id)
    if question.asker_id == user_id:
        return ButtonOutcome(OWN, question_id)
    if question.status != STATUS_OPEN:
        return ButtonOutcome(CLOSED, question_id)
    request = _request_of(session, question_id, user_id)
    if request is None:
        declined = RouteRequest(
            team_id=team_id,
            question_id=question_id,
            expert_id=user_id,
            round=max(question.escalation_level, 1),
            status=ROUTE_DECLINED,
            reason="passed without being asked",
            send_at=now,
        )
        inserted = insert_once(session, declined)
        return ButtonOutcome(DECLINED if inserted else ALREADY, question_id, declined.round)
    if _set_status(session, request.id, ROUTE_DECLINED, (ROUTE_SCHEDULED, ROUTE_SENT, ROUTE_TAKEN)):
        return ButtonOutcome(DECLINED, question_id, request.round, was_routed=True)
    return ButtonOutcome(ALREADY, question_id, request.round)


def parse_earlier(value: str) -> tuple[int, str, int] | None:
    """The value of a "This answers it" button: "<question id>:<kind>:<item id>"
    (bot.messages.suggestions.similar_answer_value)."""
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
    earlier = _item(session, kind, ref_id)
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


def after_take(slack: Slack, services: Services, outcome: ButtonOutcome, team_id: str, user_id: str) -> None:
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


def after_decline(slack: Slack, services: Services, outcome: ButtonOutcome, team_id: str, user_id: str) -> None:
    """Slack side of "Not me": the DM redrawn, and the next candidate asked (once: only the click that
    changed the request gets here with DECLINED)."""
    redraw_dm(slack, services, team_id, user_id, outcome.question_id)
    if outcome.result == DECLINED and outcome.was_routed:
        route_replacement(slack, services, outcome.question_id, outcome.round)


def route_replacement(slack: Slack, services: Services, question_id: int, round_number: int) -> list[str]:
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
        involved = _already_involved(session, question_id)
    plan = plan_question(slack, services, facts, now, top_n=1, exclude=involved)
    with services.store.session() as session:
        asked = _record_dms(session, facts, plan, round_number)
    logger.info("question %s: asked %s instead", question_id, ", ".join(asked) or "nobody")
    send_due_dms(lambda _team: slack, services, now, question_id=question_id)
    return asked


# --- similar questions ----------------------------------------------------------------------------------------


def suggest_or_route(slack: Slack, services: Services, question_id: int) -> list[SimilarItem]:
    """Right after a question is posted: show the asker up to three similar answered questions and lessons
    (never from a private channel other than this one) and let routing wait for their answer or the grace
    period; with nothing similar, route at once. Returns what was suggested."""
    with services.store.session() as session:
        facts = load_question(session, question_id)
        if facts is None or facts.status != STATUS_OPEN or facts.level != LEVEL_NEW:
            return []
        hits = search_similar(
            session,
            team_id=facts.team_id,
            text=facts.text,
            tags=facts.tags,
            viewer_channel_id=facts.channel_id,
            limit=SIMILAR_LIMIT,
            exclude_question_id=facts.id,
        )
    items = [
        SimilarItem(
            kind=hit.kind,
            ref_id=hit.id,
            text=hit.text,
            author_id=hit.author_id,
            answer_text=hit.answer_text,
            answer_user_id=hit.answer_user_id,
            link=permalink(slack, hit.channel_id, hit.message_ts),
        )
        for hit in hits
    ]
    if items:
        message = similar_suggestions(question_id, items, services.settings.similar_grace_minutes)
        if tell(slack, channel_id=facts.channel_id, user_id=facts.asker_id, message=message):
            return items
        # The asker can't see them: don't make them wait for nothing.
    route_now(slack, services, question_id)
    return []


def earlier_answer(session: Session, question_id: int) -> tuple[str, str, str | None] | None:
    """For a question resolved with "This answers it": (kind, channel, message ts) of what answered it."""
    question = session.get(Question, question_id)
    if (
        question is None
        or question.status != STATUS_RESOLVED
        or question.accepted_answer_id is not None
        or question.resolution != RESOLUTION_SIMILAR
    ):
        return None
    kind, _, ref = (question.resolution_ref or "").partition(":")
    earlier = _item(session, kind, int(ref)) if ref.isdigit() else None
    if earlier is None:
        return (kind or KIND_QUESTION, question.channel_id, None)
    return (kind, earlier.channel_id, earlier.message_ts)


def _item(session: Session, kind: str, ref_id: int) -> Question | Lesson | None:
    if kind == KIND_QUESTION:
        return session.get(Question, ref_id)
    if kind == KIND_LESSON:
        return session.get(Lesson, ref_id)
    return None
