"""Who to DM about a question, and when: ranking experts, working hours, daily caps.

Pure code: no database, no Slack. The caller loads the evidence below from its tables and passes it in.

What the database supplies, per candidate (``Candidate``):
  * ``declared_tags``: the tags from the user's ``/teach #tag`` declarations;
  * ``standing``: their answers folded into per-person and per-(person, tag) sums, and their most recent
    ``text_records`` answers into a text profile (``TextProfile``: what the text and hour features read) (bot/
    routing/standing.py; the tables person_evidence and tag_evidence keep them up to date);
  * ``history``: their answers, one ``AnswerRecord`` each: the answered question's tags, when it was answered,
    whether it was accepted, its helpful votes and, optionally, the answered question's text and the answer's
    own text. Without a ``standing``, ``history`` is taken as every answer and folded here (``standing_of``);
    without a standing's profile, its most recent ``text_records`` are (``text_profile``): tests may pass
    either;
  * ``is_bot`` / ``is_paused`` / ``is_deactivated``: such users are never routed to.
Optionally ``TagStats`` (questions per tag and per pair of tags: two GROUP BYs) for tag specificity and
related tags; without it the ranker counts tags over the candidates' own answers. For planning: each
user's DM count today and working hours (``Availability``: IANA zone, start and end hour).

How a candidate is scored, and why
----------------------------------
The score estimates how likely this person is to give the accepted answer, now: a log-linear model
(conditional logit: ``softmax(score)`` over the candidates of one question is that probability) over
eight features of the evidence, each with a reason to predict it:

* **expertise** on the question's tags: each declared tag counts like ``declared_weight`` answers; each
  past answer counts by the share of the question's tag weight it covers, where rare tags weigh more
  (IDF), is worth more when accepted or voted helpful, and fades with a 90-day half-life. Tags only
  mentioned in the question text, and tags often asked together with the question's tags, count at a
  reduced weight. This is also ``ScoredExpert.expertise``: 0 when nothing ties someone to the tags.
* **activity** (answers with a 2-day half-life) and **engagement** (30-day half-life): who is answering
  this week, and this month. On Stack Exchange the accepted answer is the first one four times in five,
  so who is around right now matters as much as who knows most.
* **silence**: days since the last answer. People drift away; a long silence says more than a low count.
* **text**: BM25 of the question's words against what the person recently engaged with (the texts of
  their last ``text_records`` answers and of the questions those answered), scaled to 0..1. It reaches
  people whose words match even when the tags do not, and it is the only topical evidence when a
  question has no tags.
* **votes** (mean helpful votes per answer) and **accepted** (accepted answers, 60-day half-life):
  answers that people found good.
* **hour**: the share of the person's most recent ``text_records`` answers given in the hours of the day that
  start now (UTC), so someone who usually answers in the evening ranks higher in the evening.

The weights (``LEARNED_WEIGHTS``) were fitted, not tuned by hand: by maximum likelihood with an L2 penalty
on the history part of the Stack Exchange time split, never on its test questions; reproduce them with
``python bench/routing.py --data DIR --fit`` (bench/routing.py documents the protocol).

Candidates with any expertise on the question's tags (``expertise > 0``) rank above those with none: a
``/teach`` declaration or answers on the tag are a promise the ranker keeps (on the benchmark's history
the rule left P@1 unchanged and cost 0.005 of MRR and 0.015 of Hit@5). Those with none still rank, so a
question on a brand-new tag can reach an active helper, and ``ScoredExpert.expertise == 0`` lets the
caller filter them. Ties break on expertise, then user id, so the order never depends on the input order.

Cost: per candidate, their standing's sums for the question's tags and its text profile, in which only the
question's words are looked up (figures in bench/RESULTS.md, routing's reads).
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import astuple, dataclass, field, fields
from datetime import UTC, datetime

from bot.routing.standing import (
    AnswerRecord,
    EvidenceParams,
    Standing,
    TextProfile,
    age_days,
    normalize_tags,
    standing_of,
    text_profile,
    text_terms,
)

# --------------------------------------------------------------------------------------------------
# Evidence and results
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Candidate:
    """A workspace member the bot could DM, with the evidence of what they know."""

    user_id: str
    declared_tags: frozenset[str] = frozenset()
    history: tuple[AnswerRecord, ...] = ()  # every answer; read only for what the standing lacks
    is_bot: bool = False
    is_paused: bool = False
    is_deactivated: bool = False
    standing: Standing | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "declared_tags", normalize_tags(self.declared_tags))
        object.__setattr__(self, "history", tuple(self.history))

    @property
    def is_routable(self) -> bool:
        return not (self.is_bot or self.is_paused or self.is_deactivated)


@dataclass(frozen=True, slots=True)
class TagStats:
    """Tag frequencies over the workspace's questions.

    ``tag_counts`` (questions per tag) gives tag specificity (IDF); ``pair_counts`` (questions carrying both
    tags, keyed by the alphabetically ordered pair) gives related tags. Both are GROUP BY queries, or build
    them with ``from_tag_sets`` from every question's tag set.
    """

    question_count: int
    tag_counts: Mapping[str, int] = field(default_factory=dict)
    pair_counts: Mapping[tuple[str, str], int] = field(default_factory=dict)

    @classmethod
    def from_tag_sets(cls, tag_sets: Iterable[Iterable[str]]) -> TagStats:
        counts: Counter[str] = Counter()
        pairs: Counter[tuple[str, str]] = Counter()
        total = 0
        for tags in tag_sets:
            ordered = sorted(normalize_tags(tags))
            total += 1
            counts.update(ordered)
            pairs.update((a, b) for i, a in enumerate(ordered) for b in ordered[i + 1 :])
        return cls(total, dict(counts), dict(pairs))

    def idf(self, tag: str) -> float:
        # Smoothed and shifted so that even a tag on every question keeps a positive weight.
        return math.log((self.question_count + 1) / (self.tag_counts.get(tag, 0) + 1)) + 1.0

    def related(self, tag: str, limit: int) -> list[tuple[str, float]]:
        """The ``limit`` tags most often asked with ``tag``, with P(other tag | tag), most related first."""
        count = self.tag_counts.get(tag, 0)
        if count == 0:
            return []
        together = [(b if a == tag else a, n / count) for (a, b), n in self.pair_counts.items() if tag in (a, b)]
        together.sort(key=lambda item: (-item[1], item[0]))
        return together[:limit]


@dataclass(frozen=True, slots=True)
class FeatureWeights:
    """How much each feature (see the module docstring) adds to the score, per unit of the feature."""

    expertise: float  # times log(expertise_prior + expertise)
    activity: float  # times log(activity_floor + answers at a 2-day half-life)
    engagement: float  # times log(activity_floor + answers at a 30-day half-life)
    silence: float  # times log(days since the last answer + 0.01), capped at silence_cap_days
    text: float  # times the BM25 text match, scaled to 0..1
    votes: float  # times log(1 + mean helpful votes per answer)
    accepted: float  # times log(accepted_floor + accepted answers at a 60-day half-life)
    hour: float  # times log(smoothed share of answers in the next hour_window_hours of the day)


FEATURE_NAMES: tuple[str, ...] = tuple(f.name for f in fields(FeatureWeights))

# Fitted by `python bench/routing.py --data ../shared/data/stackexchange-cardano --fit`: conditional-logit
# maximum likelihood (Newton's method; L2 penalty 0.3 on standardized features, the best held-out
# log-likelihood in a 4-fold cross-validation over time) on the 258 questions of the history part's rolling
# split (195 with the target among the candidates), each learning only from the answers posted before it.
# The test questions were not used. Values are per raw feature unit, rounded to two significant digits.
# Per standard deviation of each feature, the largest are activity, silence (negative), text and expertise.
# Since the ranker reads the text profile (issue 21; the hour feature now reads the 30 most recent answers),
# the same fit gives hour 0.078, votes 0.16, accepted 0.091. Weights fitted on all eight dev sites together
# (`bench/routing.py --fit-sites`, leave-one-site-out cross-validation, with or without a semantic-similarity
# feature) were measured and not adopted: they held on 4 of 8 sites and moved no test figure beyond noise
# (bench/RESULTS.md).
LEARNED_WEIGHTS = FeatureWeights(
    expertise=0.35,
    activity=0.27,
    engagement=0.16,
    silence=-0.26,
    text=5.9,
    votes=0.15,
    accepted=0.09,
    hour=0.13,
)


@dataclass(frozen=True, slots=True)
class RankingParams:
    # How the expertise feature is computed (these shape the evidence; the weights combine the features).
    expertise_half_life_days: float = 90.0
    accepted_bonus: float = 1.0  # an accepted answer counts as 1 + this
    helpful_vote_weight: float = 0.5  # times log(1 + votes): the first votes say the most
    declared_weight: float = 2.0  # a /teach declaration counts like this many answers on the tag
    mentioned_tag_weight: float = 0.25  # a known tag named in the question text, relative to a set tag
    related_tag_weight: float = 0.5  # times P(related | asked tag): answers on #sql say something about #postgres
    related_tags_per_tag: int = 3
    expertise_prior: float = 0.1  # smoothing: some expertise is much better than none, not infinitely
    # The other features.
    activity_half_life_days: float = 2.0
    engagement_half_life_days: float = 30.0
    activity_floor: float = 0.01  # ~ one answer 13 days ago at a 2-day half-life
    accepted_half_life_days: float = 60.0
    accepted_floor: float = 0.05
    silence_cap_days: float = 365.0  # also the silence of someone who never answered
    text_records: int = 30  # the most recent answers whose texts describe a person
    hour_window_hours: float = 6.0  # half the accepted answers come within ~6 hours of the question
    weights: FeatureWeights = LEARNED_WEIGHTS

    @property
    def evidence(self) -> EvidenceParams:
        """The parameters that shape a standing's sums (a stored standing was folded with the defaults)."""
        return EvidenceParams(
            expertise_half_life_days=self.expertise_half_life_days,
            accepted_bonus=self.accepted_bonus,
            helpful_vote_weight=self.helpful_vote_weight,
            activity_half_life_days=self.activity_half_life_days,
            engagement_half_life_days=self.engagement_half_life_days,
            accepted_half_life_days=self.accepted_half_life_days,
            text_records=self.text_records,
        )


DEFAULT_PARAMS = RankingParams()


@dataclass(frozen=True, slots=True)
class ScoredExpert:
    user_id: str
    score: float
    reason: str  # e.g. "declared #postgres; 3 accepted answers on #postgres; last answered 2 days ago"
    expertise: float  # 0.0 when nothing ties them to the question's tags
    activity: float


# --------------------------------------------------------------------------------------------------
# Ranking
# --------------------------------------------------------------------------------------------------


def rank_experts(
    question_tags: Iterable[str],
    candidates: Iterable[Candidate],
    now: datetime,
    *,
    question_text: str = "",
    exclude: Collection[str] = frozenset(),
    tag_stats: TagStats | None = None,
    params: RankingParams = DEFAULT_PARAMS,
) -> list[ScoredExpert]:
    """Rank routable candidates (not excluded, e.g. the asker) for a question, best first."""
    assessed = _assess_all(question_tags, candidates, now, question_text, exclude, tag_stats, params)
    weights = astuple(params.weights)
    for assessment in assessed:
        assessment.score = sum(w * x for w, x in zip(weights, assessment.features, strict=True))
    assessed.sort(key=_Assessment.sort_key)
    return [a.to_scored_expert(now) for a in assessed]


def feature_vectors(
    question_tags: Iterable[str],
    candidates: Iterable[Candidate],
    now: datetime,
    *,
    question_text: str = "",
    exclude: Collection[str] = frozenset(),
    tag_stats: TagStats | None = None,
    params: RankingParams = DEFAULT_PARAMS,
) -> dict[str, tuple[float, ...]]:
    """Each routable candidate's features, in ``FEATURE_NAMES`` order: what ``rank_experts`` weighs.

    For fitting the weights (bench/routing.py --fit) and for explaining a ranking.
    """
    assessed = _assess_all(question_tags, candidates, now, question_text, exclude, tag_stats, params)
    return {a.user_id: a.features for a in assessed}


def _assess_all(
    question_tags: Iterable[str],
    candidates: Iterable[Candidate],
    now: datetime,
    question_text: str,
    exclude: Collection[str],
    tag_stats: TagStats | None,
    params: RankingParams,
) -> list[_Assessment]:
    require_aware(now)
    eligible = _eligible(candidates, exclude)
    if tag_stats is None:
        tag_stats = TagStats.from_tag_sets(record.tags for c in eligible for record in c.history)
    weights = _query_tag_weights(question_tags, question_text, tag_stats, params)
    evidence = params.evidence
    standings = [c.standing or standing_of(c.history, params=evidence) for c in eligible]
    profiles = [
        standing.profile if standing.profile is not None else text_profile(candidate.history, params.text_records)
        for candidate, standing in zip(eligible, standings, strict=True)
    ]
    similarity = _text_similarity(question_text, eligible, profiles)
    return [
        _assess(c, standing, profile, weights, now, similarity.get(c.user_id, 0.0), params)
        for c, standing, profile in zip(eligible, standings, profiles, strict=True)
    ]


def _eligible(candidates: Iterable[Candidate], exclude: Collection[str]) -> list[Candidate]:
    seen: set[str] = set(exclude)
    eligible = []
    for candidate in candidates:
        if candidate.is_routable and candidate.user_id not in seen:
            seen.add(candidate.user_id)  # a duplicate row must not count twice
            eligible.append(candidate)
    return eligible


# A tag-shaped word: "cardano-cli", "node.js", "c#", "c++".
TAG_WORD = re.compile(r"[a-z0-9][a-z0-9.+#_-]*[a-z0-9+#]|[a-z0-9]")  # a tag as written in a question's text


def _query_tag_weights(
    question_tags: Iterable[str], question_text: str, stats: TagStats, params: RankingParams
) -> dict[str, float]:
    """Weight of each tag for this question: its IDF, scaled down for tags the asker did not set.

    Besides the question's own tags: known tags mentioned in its text, and the tags most often asked
    together with its tags. Both help when a question is under-tagged or its tags have little history.
    """
    asked = normalize_tags(question_tags)
    extra: dict[str, float] = {}
    for tag in set(TAG_WORD.findall(question_text.casefold())) & stats.tag_counts.keys():
        extra[tag] = params.mentioned_tag_weight
    for tag in asked:
        for other, probability in stats.related(tag, params.related_tags_per_tag):
            extra[other] = max(extra.get(other, 0.0), params.related_tag_weight * probability)
    weights = {tag: share * stats.idf(tag) for tag, share in extra.items() if tag not in asked}
    weights.update((tag, stats.idf(tag)) for tag in asked)
    return weights


# --- text similarity ---------------------------------------------------------------------------------

_BM25_K1 = 1.2  # the usual BM25 constants: term-count saturation and length normalization
_BM25_B = 0.75


def _text_similarity(
    question_text: str, eligible: Sequence[Candidate], profiles: Sequence[TextProfile]
) -> dict[str, float]:
    """BM25 of the question's words against each person's recent texts, scaled to 0..1.

    A person's text is their ``text_records`` most recent answers with the questions they answered (their
    ``TextProfile``), taken as one document. Document frequencies count those same answer records, so no
    corpus statistics are needed, and only the question's own words are looked up in each profile.
    1.0 would be a person whose text is full of every question word.
    """
    query = list(text_terms(question_text))
    if not query:
        return {}
    matches: dict[str, tuple[dict[str, int], int]] = {}
    document_frequency: Counter[str] = Counter()
    documents = 0
    for candidate, profile in zip(eligible, profiles, strict=True):
        if not profile.words:
            continue
        documents += profile.documents
        matched: dict[str, int] = {}
        for term in query:
            entry = profile.terms.get(term)
            if entry is not None:
                matched[term] = entry[0]
                document_frequency[term] += entry[1]
        matches[candidate.user_id] = (matched, profile.words)
    known = [term for term in query if term in document_frequency]
    if not known:
        return {}

    def idf(term: str) -> float:
        df = document_frequency[term]
        return math.log(1.0 + (documents - df + 0.5) / (df + 0.5))

    weights = {term: idf(term) for term in known}
    best = sum(weights.values()) * (_BM25_K1 + 1.0)
    average_length = sum(length for _, length in matches.values()) / len(matches)
    similarity = {}
    for user_id, (matched, length) in matches.items():
        saturation = _BM25_K1 * (1.0 - _BM25_B + _BM25_B * length / average_length)
        score = sum(weights[t] * c * (_BM25_K1 + 1.0) / (c + saturation) for t, c in matched.items())
        similarity[user_id] = score / best
    return similarity


# --- one candidate -----------------------------------------------------------------------------------


@dataclass(slots=True)
class _Assessment:
    user_id: str
    expertise: float = 0.0
    activity: float = 0.0
    features: tuple[float, ...] = ()
    score: float = 0.0
    last_answer: datetime | None = None
    declared: list[str] = field(default_factory=list)
    accepted_on: Counter[str] = field(default_factory=Counter)  # tag -> accepted answers on it
    answered_on: Counter[str] = field(default_factory=Counter)  # tag -> other answers on it

    def sort_key(self) -> tuple[bool, float, float, str]:
        return (self.expertise <= 0.0, -self.score, -self.expertise, self.user_id)

    def to_scored_expert(self, now: datetime) -> ScoredExpert:
        return ScoredExpert(self.user_id, self.score, self.reason(now), self.expertise, self.activity)

    def reason(self, now: datetime) -> str:
        """Counted per tag: an answer on #a and #b counts once on each ("2 accepted answers on #a, 1 on #b")."""
        parts = []
        if self.declared:
            parts.append("declared " + _hashtags(self.declared))
        if self.accepted_on:
            parts.append(_per_tag(self.accepted_on, "accepted answer"))
        if self.answered_on:
            parts.append(_per_tag(self.answered_on, "other answer" if self.accepted_on else "answer"))
        if not parts:
            parts.append("no history on these tags")
        if self.last_answer is not None:
            parts.append(_recency_phrase(now, self.last_answer))
        return "; ".join(parts)


def _assess(
    candidate: Candidate,
    standing: Standing,
    profile: TextProfile,
    weights: Mapping[str, float],
    now: datetime,
    similarity: float,
    params: RankingParams,
) -> _Assessment:
    total_weight = sum(weights.values())
    result = _Assessment(candidate.user_id)
    result.declared = sorted(candidate.declared_tags & weights.keys())
    if total_weight > 0:
        declared_share = sum(weights[tag] for tag in result.declared) / total_weight
        result.expertise = params.declared_weight * declared_share
        # sum over answers of decay * value * (matched tags' weight / W) = sum over tags of w_t / W * E_t
        for tag, weight in weights.items():
            on_tag = standing.tags.get(tag)
            if on_tag is None or on_tag.answers <= 0:
                continue
            result.expertise += (
                weight / total_weight * standing.decayed(on_tag.expertise, params.expertise_half_life_days, now)
            )
            if on_tag.accepted:
                result.accepted_on[tag] = on_tag.accepted
            if on_tag.answers > on_tag.accepted:
                result.answered_on[tag] = on_tag.answers - on_tag.accepted
    result.activity = standing.decayed(standing.activity, params.activity_half_life_days, now)
    engagement = standing.decayed(standing.engagement, params.engagement_half_life_days, now)
    accepted = standing.decayed(standing.accepted_recent, params.accepted_half_life_days, now)
    result.last_answer = standing.last_answered_at
    answers = standing.answers
    silence = params.silence_cap_days
    if result.last_answer is not None:
        silence = min(age_days(now, result.last_answer), silence)
    result.features = (
        math.log(params.expertise_prior + result.expertise),
        math.log(params.activity_floor + result.activity),
        math.log(params.activity_floor + engagement),
        math.log(silence + 0.01),
        similarity,
        math.log1p(standing.helpful_votes / answers) if answers else 0.0,
        math.log(params.accepted_floor + accepted),
        _hour_feature(profile, now, params.hour_window_hours),
    )
    return result


def _hour_feature(profile: TextProfile, now: datetime, window_hours: float) -> float:
    """log of the share of the profile's answers given in the ``window_hours`` of the day that start now (UTC),
    smoothed toward the window's share of a day."""
    hour_now = _hour_of_day(now)
    hours = profile.hours()
    in_window = sum((hour - hour_now) % 24.0 < window_hours for hour in hours)
    return math.log((in_window + window_hours / 24.0) / (len(hours) + 1))


def _hour_of_day(moment: datetime) -> float:
    utc = moment.astimezone(UTC)
    return utc.hour + utc.minute / 60.0


def require_aware(moment: datetime) -> None:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError("routing needs an aware datetime (use bot.clock.Clock.now())")


def _hashtags(tags: Iterable[str]) -> str:
    return ", ".join("#" + tag for tag in tags)


def _per_tag(counts: Counter[str], noun: str, limit: int = 3) -> str:
    """``{"postgres": 2, "sql": 1}`` -> "2 accepted answers on #postgres, 1 on #sql" (the most first)."""
    ordered = sorted(counts.items(), key=lambda item: (-item[1], item[0]))[:limit]
    (first, count), rest = ordered[0], ordered[1:]
    return ", ".join([f"{_plural(count, noun)} on #{first}", *(f"{n} on #{tag}" for tag, n in rest)])


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def _recency_phrase(now: datetime, last: datetime) -> str:
    days = int(age_days(now, last))
    if days == 0:
        return "answered in the last 24 h"
    return f"last answered {_plural(days, 'day')} ago"
