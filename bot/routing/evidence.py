"""What PeerLearn knows about a question and the people who might answer it, for the ranker.

A few queries (declared topics; the people with the most expertise on each tag and their folded evidence,
person_evidence (with their text profile) and tag_evidence, kept by bot/routing/upkeep.py; tag frequencies;
recent DM load), never one query per person, each reading rows in proportion to the candidates, not to the
tags' history (no answer, question text or tag is read); what `users.info` said about people, asked again
only for those about to be DMed and only when older than PEERLEARN_PROFILE_MAX_AGE_HOURS; who may read a
private channel; what resolved a question ("This answers it")."""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import and_, func, select, union_all
from sqlalchemy.orm import Session

from bot.routing.planner import resolve_timezone
from bot.routing.ranker import TAG_WORD, Candidate, TagStats
from bot.routing.standing import RANK_EPOCH, Standing, TagStanding, TextProfile
from bot.search import KIND_LESSON, KIND_QUESTION
from bot.services import Services
from bot.slack_errors import SLACK_FAILURES, error_code
from bot.workspaces import WorkspaceClient
from models.evidence import PersonEvidence, TagEvidence
from models.expert import NOTIFY_OFF, ROUTE_SCHEDULED, Expertise, Person, RouteRequest, remember_profile
from models.lesson import Lesson
from models.question import Question
from models.tag_stats import question_count, related_tags, tag_counts

logger = logging.getLogger("peerlearn.routing")

MAX_LEARNED_CANDIDATES = 50  # per question tag: people known from their answers, the most expert on it first
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
    work_days: str | None = None  # as stored (bot/workdays.py)

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
            person.work_days,
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
    standing: dict[str, Standing]  # user -> their answers, folded (the tags the question's weights need)
    people: dict[str, PersonFacts]
    tag_stats: TagStats
    # tag -> who declared it or answered on it: everyone excluded (the asker) who did, everyone who declared
    # it, and the MAX_LEARNED_CANDIDATES others who answered most on it (enough to tell whether anyone did).
    coverage: dict[str, set[str]]

    @property
    def user_ids(self) -> set[str]:
        return set(self.declared) | set(self.standing)

    def candidate(self, user_id: str, **flags: bool) -> Candidate:
        """The ranker's view of one of them (flags: is_bot, is_paused, is_deactivated)."""
        return Candidate(
            user_id=user_id,
            declared_tags=frozenset(self.declared.get(user_id, ())),
            history=(),  # the standing holds all the ranker reads
            standing=self.standing.get(user_id) or Standing(as_of=RANK_EPOCH, profile=TextProfile()),
            **flags,
        )


def load_evidence(
    session: Session, team_id: str, tags: Sequence[str], text: str, now: datetime, exclude: Collection[str] = ()
) -> Evidence:
    """Declared experts and the people with the most expertise on each tag (top MAX_LEARNED_CANDIDATES by
    tag_evidence.rank_key, an index range scan per tag) and their standing: the rows read grow with the
    candidates, not with the tags' history."""
    declared: dict[str, set[str]] = defaultdict(set)
    coverage: dict[str, set[str]] = defaultdict(set)
    for user_id, tag in session.execute(
        select(Expertise.user_id, Expertise.tag).where(Expertise.team_id == team_id, Expertise.tag.in_(tags))
    ):
        declared[user_id].add(tag)
        coverage[tag].add(user_id)
    excluded = sorted(set(exclude))
    learned: set[str] = set()
    for user_id, tag in _top_on_tags(session, team_id, tags, excluded):
        learned.add(user_id)
        coverage[tag].add(user_id)
    if excluded:  # whether the asker (or anyone excluded) answered on the tags: their own rows
        for user_id, tag in session.execute(
            select(TagEvidence.user_id, TagEvidence.tag).where(
                TagEvidence.team_id == team_id, TagEvidence.user_id.in_(excluded), TagEvidence.tag.in_(tags)
            )
        ):
            coverage[tag].add(user_id)
    user_ids = sorted(({u for u in declared if u not in exclude}) | learned)
    if not user_ids:
        return Evidence({}, {}, {}, TagStats(question_count=0), dict(coverage))
    # Tag frequencies only weigh candidates against each other: none, nothing to weigh (three queries saved).
    tag_stats = _load_tag_stats(session, team_id, tags, text)
    people = {
        person.user_id: PersonFacts.of(person)
        for person in session.scalars(select(Person).where(Person.team_id == team_id, Person.user_id.in_(user_ids)))
    }
    return Evidence(
        declared={u: declared[u] for u in user_ids if u in declared},
        # The question's tags and every tag its weights may use (related, mentioned): those tag_stats counts.
        standing=_load_standing(session, team_id, user_ids, set(tags) | set(tag_stats.tag_counts)),
        people=people,
        tag_stats=tag_stats,
        coverage=dict(coverage),
    )


def _top_on_tags(session: Session, team_id: str, tags: Sequence[str], exclude: Sequence[str]) -> list[tuple[str, str]]:
    """(user, tag): the MAX_LEARNED_CANDIDATES people with the most expertise on each tag, not excluded. One
    query: a LIMIT per tag over ix_tag_evidence_team_tag_rank."""
    if not tags:
        return []
    per_tag = [
        select(TagEvidence.user_id, TagEvidence.tag)
        .where(TagEvidence.team_id == team_id, TagEvidence.tag == tag, TagEvidence.user_id.not_in(exclude))
        .order_by(TagEvidence.rank_key.desc(), TagEvidence.user_id)
        .limit(MAX_LEARNED_CANDIDATES)
        .subquery()
        for tag in sorted(set(tags))
    ]
    query = union_all(*(select(top.c.user_id, top.c.tag) for top in per_tag))
    return [(user_id, tag) for user_id, tag in session.execute(query)]


def _load_standing(
    session: Session, team_id: str, user_ids: Sequence[str], tags: Collection[str]
) -> dict[str, Standing]:
    """Each candidate's person_evidence row (with its text profile) and their tag_evidence rows on `tags` (rows
    a refresh wrote together, so they share one as_of). Columns, not ORM objects: a /ask reads thousands of
    tag_evidence rows, and building an object per row cost more than the database's work."""
    on_tags: dict[str, dict[str, TagStanding]] = defaultdict(dict)
    if tags:
        t = TagEvidence
        for user_id, tag, answers, accepted, helpful_votes, expertise in session.execute(
            select(t.user_id, t.tag, t.answers, t.accepted, t.helpful_votes, t.expertise).where(
                t.team_id == team_id, t.user_id.in_(user_ids), t.tag.in_(sorted(tags))
            )
        ):
            on_tags[user_id][tag] = TagStanding(answers, accepted, helpful_votes, expertise)
    p = PersonEvidence
    return {
        row.user_id: Standing(
            as_of=row.as_of,
            answers=row.answers,
            helpful_votes=row.helpful_votes,
            accepted=row.accepted,
            last_answered_at=row.last_answered_at,
            activity=row.activity,
            engagement=row.engagement,
            accepted_recent=row.accepted_recent,
            tags=on_tags.get(row.user_id, {}),
            profile=TextProfile.from_json(row.text_profile) if row.text_profile else TextProfile(),
        )
        for row in session.execute(
            select(
                p.user_id,
                p.as_of,
                p.answers,
                p.helpful_votes,
                p.accepted,
                p.last_answered_at,
                p.activity,
                p.engagement,
                p.accepted_recent,
                p.text_profile,
            ).where(p.team_id == team_id, p.user_id.in_(user_ids))
        )
    }


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
    """Each condition an index range over ix_route_requests_team_expert_sent_send (team, expert, sent_at,
    send_at): the rows read are the candidates' DMs of the last days, not every DM they ever got."""
    if not user_ids:
        return DMLoad({}, {}, {})
    mine = and_(RouteRequest.team_id == team_id, RouteRequest.expert_id.in_(user_ids))
    unsent = RouteRequest.sent_at.is_(None)
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
            # A scheduled DM has not been sent (delivery sets sent_at as it marks it sent): `unsent` narrows
            # the scan to the index's NULL range.
            select(RouteRequest.expert_id, func.count())
            .where(mine, unsent, RouteRequest.status == ROUTE_SCHEDULED)
            .group_by(RouteRequest.expert_id)
        )
    }
    # When a DM counts: when it was sent, or, not sent yet, when it is due (coalesce(sent_at, send_at)), as
    # two ranges an index serves (a coalesce in the condition would read all of the candidates' DMs).
    since = now - RECENT_LOAD
    windows = union_all(
        select(RouteRequest.expert_id, RouteRequest.sent_at.label("at")).where(mine, RouteRequest.sent_at >= since),
        select(RouteRequest.expert_id, RouteRequest.send_at.label("at")).where(
            mine, unsent, RouteRequest.send_at >= since
        ),
    ).subquery()
    recent = {
        user_id: (int(count), last)
        for user_id, count, last in session.execute(
            select(windows.c.expert_id, func.count(), func.max(windows.c.at)).group_by(windows.c.expert_id)
        )
    }
    return DMLoad(dict(sent), pending, recent)


def earlier_answer(session: Session, question_id: int) -> tuple[str, str, str | None] | None:
    """For a question resolved with "This answers it": (kind, channel, message ts) of what answered it."""
    question = session.get(Question, question_id)
    if question is None or not question.answered_by_earlier:
        return None
    ref = question.earlier_ref
    earlier = earlier_item(session, *ref) if ref is not None else None
    if ref is None or earlier is None:
        return (ref[0] if ref else KIND_QUESTION, question.channel_id, None)
    return (ref[0], earlier.channel_id, earlier.message_ts)


def earlier_item(session: Session, kind: str, ref_id: int) -> Question | Lesson | None:
    if kind == KIND_QUESTION:
        return session.get(Question, ref_id)
    if kind == KIND_LESSON:
        return session.get(Lesson, ref_id)
    return None
