"""A person's standing: their answers folded into a few per-person and per-(person, tag) aggregates.

Pure code. The ranker's features that grow with a person's history are all sums over their answers, so they
are kept as sums (``Standing``) instead of being recomputed from every answer for every question:

* per person: answers, helpful votes (downvotes count 0), accepted answers, the last answer's time, and three
  decayed sums (answers at a 2-day and a 30-day half-life, accepted answers at a 60-day one);
* per (person, tag): answers and accepted answers on that tag, their helpful votes, and the 90-day decayed sum
  of the answers' values (``answer_value``): the ranker's expertise on a question is a weighted sum of these
  (``sum over tags t of w_t / W * E_t``), so it needs one number per tag, not the answers.

A decayed sum is kept as its value at ``as_of`` and read as ``value * 0.5 ** ((now - as_of) / half life)``:
exact, whatever ``now``, and nothing overflows. ``standing_of`` is the one fold from answers to a standing:
the benchmark, the upkeep after each change and the rebuild all call it, so they cannot disagree.

The text and hour features read a person's ``text_records`` most recent answers, not sums over all of them:
``text_profile`` folds those into what the two features need (``TextProfile``: per word, its count and the
records it occurs in; the records with words and their total words; each answer's minute of the day), so
ranking reads no answer, question text or tag.
"""

from __future__ import annotations

import json
import math
import re
import sys
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

SECONDS_PER_DAY = 86_400.0
# rank_key's epoch: any fixed moment would do; only differences of as_of matter.
RANK_EPOCH = datetime(2020, 1, 1, tzinfo=UTC)
_SMALLEST = 1e-300  # log2 of a decayed sum that underflowed (centuries old): still orders below everything


@dataclass(frozen=True, slots=True)
class EvidenceParams:
    """What shapes the stored sums; ``RankingParams`` carries the same values (``ranker.RankingParams.evidence``)."""

    expertise_half_life_days: float = 90.0
    accepted_bonus: float = 1.0  # an accepted answer counts as 1 + this
    helpful_vote_weight: float = 0.5  # times log(1 + votes): the first votes say the most
    activity_half_life_days: float = 2.0
    engagement_half_life_days: float = 30.0
    accepted_half_life_days: float = 60.0
    text_records: int = 30  # the most recent answers whose texts (and hours) describe a person


DEFAULT_EVIDENCE = EvidenceParams()


def normalize_tags(tags: Iterable[str]) -> frozenset[str]:
    """``{"#Postgres", "sql "}`` -> ``{"postgres", "sql"}``, so evidence and questions match."""
    return frozenset(n for n in (_normalize_tag(t) for t in tags) if n)


def _normalize_tag(tag: str) -> str:
    return tag.strip().lstrip("#").casefold()


@dataclass(frozen=True, slots=True)
class AnswerRecord:
    """One past answer by a candidate. Tags are normalized (lower case, no '#') on creation.

    ``question_text`` (the answered question's text) and ``answer_text`` (the answer's own text) are
    optional: without them the text feature is 0 for everyone and the other features rank alone.
    """

    tags: frozenset[str]
    answered_at: datetime  # naive values are taken as UTC (SQLite returns them naive)
    accepted: bool = False
    helpful_votes: int = 0
    question_text: str = ""
    answer_text: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "tags", normalize_tags(self.tags))
        if self.answered_at.tzinfo is None:
            object.__setattr__(self, "answered_at", self.answered_at.replace(tzinfo=UTC))


@dataclass(frozen=True, slots=True)
class TagStanding:
    """A person's answers on one tag. ``expertise`` is the 90-day decayed sum of their values at ``as_of``."""

    answers: int = 0
    accepted: int = 0
    helpful_votes: int = 0
    expertise: float = 0.0


@dataclass(frozen=True, slots=True)
class Standing:
    """A person's answers, folded (see the module docstring). The decayed sums are their values at ``as_of``.

    ``tags`` may hold only some of the person's tags (those a question needs): a missing tag reads as none.
    """

    as_of: datetime
    answers: int = 0
    helpful_votes: int = 0
    accepted: int = 0
    last_answered_at: datetime | None = None
    activity: float = 0.0  # answers at activity_half_life_days
    engagement: float = 0.0  # answers at engagement_half_life_days
    accepted_recent: float = 0.0  # accepted answers at accepted_half_life_days
    tags: Mapping[str, TagStanding] = field(default_factory=dict)
    profile: TextProfile | None = None  # None: not known (the ranker reads the candidate's history instead)

    def __post_init__(self) -> None:
        object.__setattr__(self, "as_of", aware(self.as_of))
        if self.last_answered_at is not None:
            object.__setattr__(self, "last_answered_at", aware(self.last_answered_at))

    def decayed(self, value: float, half_life_days: float, now: datetime) -> float:
        """A sum kept at ``as_of``, read at ``now``. A standing from the future (clock skew) reads as of now."""
        return value * decay(age_days(now, self.as_of), half_life_days)

    def rank_key(self, tag: str, params: EvidenceParams = DEFAULT_EVIDENCE) -> float:
        """Orders people by expertise on ``tag`` whatever their ``as_of``: log2 of the sum brought to a fixed
        epoch (``log2(E) + (as_of - epoch) / half life``), which keeps the order of the sums at any moment."""
        expertise = self.tags[tag].expertise if tag in self.tags else 0.0
        elapsed = (self.as_of - RANK_EPOCH).total_seconds() / SECONDS_PER_DAY
        return math.log2(max(expertise, _SMALLEST)) + elapsed / params.expertise_half_life_days


def standing_of(
    records: Iterable[AnswerRecord], as_of: datetime | None = None, params: EvidenceParams = DEFAULT_EVIDENCE
) -> Standing:
    """Fold one person's answers (and their ``text_records`` most recent into its ``profile``). ``as_of``
    defaults to their latest answer (then every answer is in the past of it and the fold does not depend on
    when it runs); answers after ``as_of`` count as brand new."""
    ordered = sorted(records, key=lambda r: r.answered_at)
    if as_of is None:
        as_of = ordered[-1].answered_at if ordered else RANK_EPOCH
    as_of = aware(as_of)
    activity = engagement = accepted_recent = 0.0
    votes = accepted = 0
    last: datetime | None = None
    per_tag: dict[str, list[float]] = {}  # tag -> [answers, accepted, votes, expertise]
    for record in ordered:
        age = age_days(as_of, record.answered_at)
        activity += decay(age, params.activity_half_life_days)
        engagement += decay(age, params.engagement_half_life_days)
        if record.accepted:
            accepted += 1
            accepted_recent += decay(age, params.accepted_half_life_days)
        helpful = max(record.helpful_votes, 0)  # downvotes are not negative expertise
        votes += helpful
        if last is None or record.answered_at > last:
            last = record.answered_at
        value = decay(age, params.expertise_half_life_days) * answer_value(record.accepted, helpful, params)
        for tag in record.tags:
            sums = per_tag.setdefault(tag, [0, 0, 0, 0.0])
            sums[0] += 1
            sums[1] += record.accepted
            sums[2] += helpful
            sums[3] += value
    return Standing(
        as_of=as_of,
        answers=len(ordered),
        helpful_votes=votes,
        accepted=accepted,
        last_answered_at=last,
        activity=activity,
        engagement=engagement,
        accepted_recent=accepted_recent,
        tags={tag: TagStanding(int(s[0]), int(s[1]), int(s[2]), s[3]) for tag, s in per_tag.items()},
        profile=text_profile(ordered, params.text_records),
    )


# --- the text profile --------------------------------------------------------------------------------------

_WORD = re.compile(r"[a-z0-9][a-z0-9_.-]*[a-z0-9]")  # two characters or more: "utxo", "cardano-cli", "v1.2"
_STOP_WORD_LIST = """about after again all also am an and any are as at be because been before being but by can could
    did do does doing done each even for from get got had has have having he her here him his how however if in
    into is it its just know like make me more most my need no not now of on one only or other our out over
    please same see should so some still such than thanks that the their them then there these they this
    those through to too trying try under up use used using very want was way we well were what when where
    which while who why will with would you your"""
_STOP_WORDS = frozenset(_STOP_WORD_LIST.split())


@lru_cache(maxsize=1024)
def text_terms(text: str) -> dict[str, int]:
    """Word counts of a text, stop words dropped. Cached: the same texts come back in every ranking.

    The dict is shared by every caller that passes the same text: read it, never change it.
    """
    # Interned: the cached records share one copy of each word.
    return dict(Counter(sys.intern(w) for w in _WORD.findall(text.casefold()) if w not in _STOP_WORDS))


@lru_cache(maxsize=16_384)  # 300 candidates x 30 records fit; ~2 kB each for chat-sized texts
def record_terms(question_text: str, answer_text: str) -> tuple[dict[str, int], int]:
    """Word counts of an answer record (its question's text and its own) and their total. Cached, read-only."""
    terms = Counter(text_terms(question_text))
    terms.update(text_terms(answer_text))
    return dict(terms), terms.total()


class PackedTerms(Mapping[str, tuple[int, int]]):
    """A text profile's terms as stored: per first letter, one string of ``" term,count,records"`` entries. A
    lookup is one substring search in its letter's string, so reading a profile costs the question's words, not
    the profile's terms (a JSON object of every term cost more to parse, per /ask, than all of routing's reads).
    """

    __slots__ = ("by_letter",)

    def __init__(self, by_letter: Mapping[str, str]) -> None:
        self.by_letter = by_letter

    @classmethod
    def of(cls, terms: Mapping[str, tuple[int, int]]) -> PackedTerms:
        by_letter: dict[str, list[str]] = {}
        for term, (count, records) in sorted(terms.items()):
            by_letter.setdefault(term[:1], []).append(f" {term},{count},{records}")
        return cls({letter: "".join(entries) for letter, entries in by_letter.items()})

    def __getitem__(self, term: str) -> tuple[int, int]:
        found = self.get(term)
        if found is None:
            raise KeyError(term)
        return found

    def get(self, term: str, default: Any = None) -> Any:  # Mapping's would raise and catch KeyError per miss
        packed = self.by_letter.get(term[:1])
        if packed is None or " " in term or "," in term:  # no word has either (``_WORD``): they delimit entries
            return default
        key = self.entry_start(term)
        start = packed.find(key)
        if start < 0:
            return default
        start += len(key)
        end = packed.find(" ", start)
        count, records = packed[start : end if end >= 0 else len(packed)].split(",")
        return int(count), int(records)

    @staticmethod
    def entry_start(term: str) -> str:
        """What a term's entry starts with (and what no other term's entry contains)."""
        return " " + term + ","

    def __iter__(self) -> Iterator[str]:
        return (entry.split(",", 1)[0] for packed in self.by_letter.values() for entry in packed.split())

    def __len__(self) -> int:
        return sum(packed.count(" ") for packed in self.by_letter.values())


@dataclass(frozen=True, slots=True)
class TextProfile:
    """A person's ``text_records`` most recent answers, each with the question it answered, as the text and hour
    features read them (``text_profile``).

    ``terms``: each word of those records (stop words dropped) -> (its count over them, the records it occurs
    in); ``documents``: the records with any word; ``words``: their total words; ``minutes``: each answer's
    minute of the day (UTC), oldest first.
    """

    terms: Mapping[str, tuple[int, int]] = field(default_factory=dict)
    documents: int = 0
    words: int = 0
    minutes: tuple[int, ...] = ()

    def to_json(self) -> str:
        """Compact JSON (person_evidence.text_profile), the terms packed (``PackedTerms``); ``from_json`` reads
        it back."""
        terms = (self.terms if isinstance(self.terms, PackedTerms) else PackedTerms.of(self.terms)).by_letter
        body = {"d": self.documents, "w": self.words, "m": list(self.minutes), "t": terms}
        return json.dumps(body, separators=(",", ":"), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> TextProfile:
        body = json.loads(text)
        return cls(PackedTerms(body["t"]), documents=body["d"], words=body["w"], minutes=tuple(body["m"]))

    def hours(self) -> list[float]:
        """Each answer's hour of the day (UTC), with its minutes as a fraction."""
        return [minute // 60 + (minute % 60) / 60.0 for minute in self.minutes]


def text_profile(records: Iterable[AnswerRecord], limit: int = DEFAULT_EVIDENCE.text_records) -> TextProfile:
    """Fold a person's ``limit`` most recent answers (the last ``limit`` in time order; among answers given at
    the same moment, the later in ``records``) into their text profile."""
    recent = sorted(records, key=lambda r: r.answered_at)[-limit:] if limit > 0 else []
    terms: dict[str, list[int]] = {}
    documents = words = 0
    for record in recent:
        counts, total = record_terms(record.question_text, record.answer_text)
        if not total:
            continue
        documents += 1
        words += total
        for term, count in counts.items():
            entry = terms.get(term)
            if entry is None:
                terms[term] = [count, 1]
            else:
                entry[0] += count
                entry[1] += 1
    minutes = tuple(_minute_of_day(record.answered_at) for record in recent)
    counted = {term: (entry[0], entry[1]) for term, entry in terms.items()}
    return TextProfile(terms=counted, documents=documents, words=words, minutes=minutes)


def _minute_of_day(moment: datetime) -> int:
    utc = moment.astimezone(UTC)
    return utc.hour * 60 + utc.minute


# --- small helpers ------------------------------------------------------------------------------------------


def answer_value(accepted: bool, helpful_votes: int, params: EvidenceParams = DEFAULT_EVIDENCE) -> float:
    """What one answer adds to expertise before decay: more when accepted or voted helpful."""
    return 1.0 + params.accepted_bonus * accepted + params.helpful_vote_weight * math.log1p(max(helpful_votes, 0))


def decay(age_days: float, half_life_days: float) -> float:
    return 0.5 ** (age_days / half_life_days)


def age_days(now: datetime, moment: datetime) -> float:
    # Evidence from the future (clock skew) counts as brand new, not as more than brand new.
    return max((now - moment).total_seconds() / SECONDS_PER_DAY, 0.0)


def aware(moment: datetime) -> datetime:
    """Naive datetimes (SQLite returns them naive) are UTC."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
