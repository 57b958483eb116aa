"""What PeerLearn knows about a question and the people who might answer it, for the ranker.

A few aggregate queries (declared topics; answers with their accepted flag and helpful-vote counts; tag
frequencies; recent DM load), never one query per person; what `users.info` said about people, asked again
only for those about to be DMed and only when older than PEERLEARN_PROFILE_MAX_AGE_HOURS; who may read a
private channel; what resolved a question ("This answers it")."""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, case, func, select
from sqlalchemy.orm import Session

from bot.routing.planner import resolve_timezone
from bot.routing.ranker import TAG_WORD, AnswerRecord, RankingParams, TagStats
from bot.search import KIND_LESSON, KIND_QUESTION
from bot.services import Services
from bot.slack_errors import SLACK_FAILURES, error_code
from bot.workspaces import WorkspaceClient
from models.expert import NOTIFY_OFF, ROUTE_SCHEDULED, Expertise, Person, RouteRequest, remember_profile
from models.lesson import Lesson
from models.question import RESOLUTION_SIMILAR, STATUS_RESOLVED, VOTE_HELPFUL, Answer, Question, QuestionTag, Vote
from models.tag_stats import question_count, related_tags, tag_counts

logger = logging.getLogger("peerlearn.routing")

HISTORY_WINDOW = timedelta(days=365)  # older answers weigh < 1/16 at the ranker's 90-day half-life
MAX_LEARNED_CANDIDATES = 50  # people known only from their answers, the most active on the tags first
RELATED_TAGS_PER_TAG = 10  # co-asked tags loaded per question tag (the ranker uses the top few)
MAX_TEXT_WORDS = 200  # words of the question looked up as tags it mentions
RECENT_LOAD = timedelta(days=7)  # equal candidates: who had fewer DMs in this window goes first


# --- who may read a private channel -------------------------------------------------------------------------


def channel_members(slack: WorkspaceClient, channel_id: str) -> set[str] | None:
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


def reads_channel(slack: WorkspaceClient, user_id: str, channel_id: str, private: bool) -> bool:
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


def refresh_profiles(
    slack: WorkspaceClient, services: Services, team_id: str, user_ids: Iterable[str]
) -> dict[str, PersonFacts]:
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
    """Tag frequencies for the question's tags, the tags asked with them, and tags its text mentions: read from
    the counts kept as questions are stored (models/tag_stats.py), a few index lookups however many questions."""
    pairs: dict[tuple[str, str], int] = {}
    for tag, related, count in related_tags(session, team_id, tags, RELATED_TAGS_PER_TAG):
        a, b = sorted((tag, related))
        pairs[(a, b)] = count
    words = list(dict.fromkeys(TAG_WORD.findall(text.casefold())))[:MAX_TEXT_WORDS]
    names = set(tags) | {tag for pair in pairs for tag in pair} | set(words)
    counts = tag_counts(session, team_id, names)
    return TagStats(question_count=question_count(session, team_id), tag_counts=counts, pair_counts=pairs)


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
    earlier = earlier_item(session, kind, int(ref)) if ref.isdigit() else None
    if earlier is None:
        return (kind or KIND_QUESTION, question.channel_id, None)
    return (kind, earlier.channel_id, earlier.message_ts)


def earlier_item(session: Session, kind: str, ref_id: int) -> Question | Lesson | None:
    if kind == KIND_QUESTION:
        return session.get(Question, ref_id)
    if kind == KIND_LESSON:
        return session.get(Lesson, ref_id)
    return None
