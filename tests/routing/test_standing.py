"""The fold (bot/routing/standing.py): ranking from a person's standing gives the features the ranker computed
from every answer before the standing existed (the reference loop below is that code), on random histories;
and its text profile gives the text and hour features the ranker computed from the latest answers' texts."""

from __future__ import annotations

import math
import random
from collections import Counter
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from bot.routing.ranker import DEFAULT_PARAMS, FEATURE_NAMES, Candidate, TagStats, feature_vectors, rank_experts
from bot.routing.standing import (
    AnswerRecord,
    Standing,
    TagStanding,
    TextProfile,
    age_days,
    decay,
    standing_of,
    text_profile,
)

NOW = datetime(2026, 12, 8, 14, 30, tzinfo=UTC)
TAGS = ["postgres", "sql", "ops", "kafka", "css", "python"]


def reference_features(records, declared, weights, now, params=DEFAULT_PARAMS) -> tuple[float, ...]:
    """The ranker's per-answer loop as it was before the standing (hour and text left out)."""
    total = sum(weights.values())
    expertise = params.declared_weight * sum(weights[t] for t in declared & weights.keys()) / total
    activity = engagement = accepted = 0.0
    votes = 0
    last = None
    for r in records:
        age = age_days(now, r.answered_at)
        activity += decay(age, params.activity_half_life_days)
        engagement += decay(age, params.engagement_half_life_days)
        if r.accepted:
            accepted += decay(age, params.accepted_half_life_days)
        votes += max(r.helpful_votes, 0)
        last = r.answered_at if last is None or r.answered_at > last else last
        matched = r.tags & weights.keys()
        if matched:
            share = sum(weights[t] for t in matched) / total
            value = (
                1.0
                + params.accepted_bonus * r.accepted
                + params.helpful_vote_weight * math.log1p(max(r.helpful_votes, 0))
            )
            expertise += decay(age, params.expertise_half_life_days) * value * share
    silence = params.silence_cap_days if last is None else min(age_days(now, last), params.silence_cap_days)
    return (
        math.log(params.expertise_prior + expertise),
        math.log(params.activity_floor + activity),
        math.log(params.activity_floor + engagement),
        math.log(silence + 0.01),
        math.log1p(votes / len(records)) if records else 0.0,
        math.log(params.accepted_floor + accepted),
    )


def random_history(rng: random.Random, n: int) -> list[AnswerRecord]:
    return [
        AnswerRecord(
            frozenset(rng.sample(TAGS, rng.randint(0, 3))),
            NOW - timedelta(days=rng.uniform(0, 900)),
            accepted=rng.random() < 0.3,
            helpful_votes=rng.choice([-1, 0, 0, 1, 2, 7]),
        )
        for _ in range(n)
    ]


@pytest.mark.parametrize("seed", range(12))
def test_the_standing_gives_the_features_of_every_answer_on_random_histories(seed):
    rng = random.Random(seed)
    people = {f"U{i}": random_history(rng, rng.randint(0, 80)) for i in range(8)}
    declared = {u: frozenset(rng.sample(TAGS, rng.randint(0, 1))) for u in people}
    stats = TagStats.from_tag_sets([rng.sample(TAGS, rng.randint(1, 3)) for _ in range(200)])
    question_tags = rng.sample(TAGS, rng.randint(1, 2))
    text = "my " + " ".join(rng.sample(TAGS, 1)) + " question"
    # Folded as the upkeep does (as of the last answer), read back a while later; and folded as of now.
    as_of_last = [Candidate(u, declared[u], tuple(h[-30:]), standing=standing_of(h)) for u, h in people.items()]
    as_of_now = [Candidate(u, declared[u], tuple(h), standing=standing_of(h, NOW)) for u, h in people.items()]
    later = NOW + timedelta(days=rng.uniform(0, 40))
    hour, text_feature = FEATURE_NAMES.index("hour"), FEATURE_NAMES.index("text")
    for candidates, now in ((as_of_last, later), (as_of_now, NOW)):
        got = feature_vectors(question_tags, candidates, now, question_text=text, tag_stats=stats)
        weights = _weights(question_tags, text, stats)
        for user_id, history in people.items():
            expected = reference_features(history, declared[user_id], weights, now)
            features = [f for i, f in enumerate(got[user_id]) if i not in (hour, text_feature)]
            assert features == pytest.approx(expected, rel=1e-9, abs=1e-12), user_id


def _weights(question_tags, text, stats):
    from bot.routing.ranker import _query_tag_weights

    return _query_tag_weights(question_tags, text, stats, DEFAULT_PARAMS)


def test_rank_key_orders_people_as_their_expertise_now_whatever_their_as_of():
    rng = random.Random(7)
    standings = [standing_of(random_history(rng, rng.randint(1, 40))) for _ in range(30)]
    standings = [s for s in standings if "postgres" in s.tags]
    by_key = sorted(standings, key=lambda s: s.rank_key("postgres"))
    by_now = sorted(standings, key=lambda s: s.decayed(s.tags["postgres"].expertise, 90.0, NOW))
    assert by_key == by_now and len(by_key) > 5


def test_a_decayed_sum_reads_the_same_from_any_as_of():
    history = random_history(random.Random(3), 50)
    early, late = standing_of(history), standing_of(history, NOW + timedelta(days=10))
    later = NOW + timedelta(days=30)
    for half_life, a, b in ((2.0, early.activity, late.activity), (30.0, early.engagement, late.engagement)):
        assert early.decayed(a, half_life, later) == pytest.approx(late.decayed(b, half_life, later), rel=1e-12)


def test_reasons_count_per_tag_and_say_so():
    standing = Standing(
        as_of=NOW,
        answers=6,
        accepted=3,
        last_answered_at=NOW - timedelta(days=2),
        tags={"postgres": TagStanding(4, 2), "sql": TagStanding(3, 1), "css": TagStanding(5, 5)},
    )
    ranked = rank_experts(["postgres", "sql"], [Candidate("U1", standing=standing)], NOW)
    # An answer on #postgres and #sql counts on each: the reason never adds them up.
    assert ranked[0].reason == (
        "2 accepted answers on #postgres, 1 on #sql; 2 other answers on #postgres, 2 on #sql; last answered 2 days ago"
    )


# --- the text profile: the text and hour features without the answers ----------------------------------

WORDS = ["vacuum", "kafka", "lag", "index", "bloat", "grid", "safari", "the", "how", "utxo", "node.js", "v1.2"]


def texted_history(rng: random.Random, n: int) -> list[AnswerRecord]:
    """Random answers with texts (some empty, some only stop words) at random minutes; a few share a moment."""
    records = []
    for _ in range(n):
        moment = NOW - timedelta(minutes=rng.randint(0, 60 * 24 * 200))
        if records and rng.random() < 0.1:
            moment = records[-1].answered_at
        records.append(
            AnswerRecord(
                frozenset(rng.sample(TAGS, rng.randint(0, 2))),
                moment,
                question_text=" ".join(rng.choices(WORDS, k=rng.randint(0, 12))).upper(),
                answer_text=rng.choice(["", "the how", " ".join(rng.choices(WORDS, k=rng.randint(1, 8)))]),
            )
        )
    return sorted(records, key=lambda r: r.answered_at)  # oldest first, as the database returns them


def reference_text_and_hour(question, people, now, params=DEFAULT_PARAMS) -> dict[str, tuple[float, float]]:
    """The text and hour features as the ranker computed them from each person's latest answers before the
    profile (its code, tokenizer aside): BM25 over their `text_records` latest records, hours of those."""
    from bot.routing.standing import record_terms, text_terms

    query = text_terms(question).keys()
    # The latest as the bot read them: by (created_at, id) descending, LIMIT text_records (ties: the later id).
    latest = {u: sorted(h, key=lambda r: r.answered_at)[-params.text_records :][::-1] for u, h in people.items()}
    profiles, df, documents = {}, Counter(), 0
    for user_id, recent in latest.items():
        matched, length = Counter(), 0
        for record in recent:
            terms, words = record_terms(record.question_text, record.answer_text)
            if not words:
                continue
            documents += 1
            length += words
            hits = terms.keys() & query
            df.update(hits)
            for term in hits:
                matched[term] += terms[term]
        if length:
            profiles[user_id] = (matched, length)
    text = dict.fromkeys(people, 0.0)
    known = [t for t in query if t in df]
    if known:
        weights = {t: math.log(1.0 + (documents - df[t] + 0.5) / (df[t] + 0.5)) for t in known}
        best = sum(weights.values()) * 2.2
        average = sum(length for _, length in profiles.values()) / len(profiles)
        for user_id, (matched, length) in profiles.items():
            saturation = 1.2 * (0.25 + 0.75 * length / average)
            text[user_id] = sum(weights[t] * c * 2.2 / (c + saturation) for t, c in matched.items()) / best
    hour_now = now.hour + now.minute / 60.0
    window = params.hour_window_hours
    hour = {}
    for user_id, recent in latest.items():
        in_window = sum((r.answered_at.hour + r.answered_at.minute / 60.0 - hour_now) % 24.0 < window for r in recent)
        hour[user_id] = math.log((in_window + window / 24.0) / (len(recent) + 1))
    return {u: (text[u], hour[u]) for u in people}


@pytest.mark.parametrize("seed", range(12))
def test_the_text_profile_gives_the_text_and_hour_features_of_the_latest_answers(seed):
    rng = random.Random(seed)
    people = {f"U{i}": texted_history(rng, rng.choice([0, 1, 5, 29, 30, 31, 70])) for i in range(10)}
    question = " ".join([rng.choice(WORDS[:6]), *rng.choices(WORDS, k=rng.randint(0, 5))])
    now = NOW + timedelta(minutes=rng.randint(0, 60 * 24))
    expected = reference_text_and_hour(question, people, now)
    stored = {u: standing_of(h) for u, h in people.items()}  # as the upkeep writes it, and reads it back
    read_back = {u: replace(s, profile=TextProfile.from_json(s.profile.to_json())) for u, s in stored.items()}
    text, hour = FEATURE_NAMES.index("text"), FEATURE_NAMES.index("hour")
    for candidates in (
        [Candidate(u, standing=read_back[u]) for u in people],  # the bot: standings only, no answers
        [Candidate(u, history=tuple(h)) for u, h in people.items()],  # tests: answers only
    ):
        got = feature_vectors(["postgres"], candidates, now, question_text=question, tag_stats=TagStats(0))
        for user_id in people:
            assert (got[user_id][text], got[user_id][hour]) == pytest.approx(expected[user_id], rel=1e-12, abs=1e-15)
    assert any(expected[u][0] > 0 for u in people)  # the words matched someone: the comparison says something


def test_a_text_profile_counts_each_word_and_the_records_it_occurs_in():
    records = [
        AnswerRecord(frozenset(), NOW - timedelta(hours=3, minutes=10), question_text="Kafka lag", answer_text="lag"),
        AnswerRecord(frozenset(), NOW - timedelta(hours=1), question_text="the how", answer_text=""),
        AnswerRecord(frozenset(), NOW, question_text="kafka", answer_text="KAFKA consumer"),
    ]
    profile = text_profile(records)
    assert profile.terms == {"kafka": (3, 2), "lag": (2, 1), "consumer": (1, 1)}
    assert (profile.documents, profile.words) == (2, 6)  # the record of stop words only is no document
    assert profile.minutes == (11 * 60 + 20, 13 * 60 + 30, 14 * 60 + 30)  # UTC, oldest first
    assert text_profile(records, limit=1).terms == {"kafka": (2, 1), "consumer": (1, 1)}


def test_a_stored_profile_reads_back_the_same_terms_and_looks_up_whole_words_only():
    records = [
        AnswerRecord(frozenset(), NOW, question_text="lagging lag node.js", answer_text="v1.2 lag_x a-lag"),
        AnswerRecord(frozenset(), NOW - timedelta(days=1), question_text="lag", answer_text=""),
    ]
    profile = text_profile(records)
    stored = TextProfile.from_json(profile.to_json())
    assert stored == profile and dict(stored.terms) == profile.terms and len(stored.terms) == 6
    assert stored.terms["lag"] == (2, 2) and stored.terms["node.js"] == (1, 1) and stored.terms["a-lag"] == (1, 1)
    for missing in ("la", "ag", "lagg", "lag,2", "lag 2", "", "g_x"):
        assert stored.terms.get(missing) is None, missing
    assert TextProfile.from_json(TextProfile().to_json()).terms.get("lag") is None
