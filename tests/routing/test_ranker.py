"""bot.routing.ranker: ranking experts on their evidence, and fitting its weights (bench/routing.py --fit).
Pure and fast."""

from __future__ import annotations

import random
from dataclasses import astuple, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from bench.routing import _Choice, _Design, fit_weights, run
from bot.routing.ranker import (
    DEFAULT_PARAMS,
    FEATURE_NAMES,
    LEARNED_WEIGHTS,
    AnswerRecord,
    Candidate,
    FeatureWeights,
    RankingParams,
    ScoredExpert,
    TagStats,
    feature_vectors,
    rank_experts,
)

# Wednesday 6 March 2024, noon UTC: winter time in Europe and (until the 10th) in the US.
NOW = datetime(2024, 3, 6, 12, 0, tzinfo=UTC)


def answer(tags: set[str], days_ago: float, *, accepted: bool = False, votes: int = 0) -> AnswerRecord:
    return AnswerRecord(frozenset(tags), NOW - timedelta(days=days_ago), accepted=accepted, helpful_votes=votes)


def ids(ranked: list[ScoredExpert]) -> list[str]:
    return [expert.user_id for expert in ranked]


# --- ranking ----------------------------------------------------------------------------------------


def test_declared_expert_ranks_first_and_says_why() -> None:
    ranked = rank_experts(["postgres"], [Candidate("U2"), Candidate("U1", frozenset({"postgres"}))], NOW)

    assert ids(ranked) == ["U1", "U2"]
    assert ranked[0].reason == "declared #postgres"
    assert ranked[0].expertise == pytest.approx(2.0)  # declared_weight, the only tag of the question
    assert ranked[1].reason == "no history on these tags"
    assert ranked[1].expertise == 0.0


def test_accepted_answers_beat_plain_answers_and_are_counted_in_the_reason() -> None:
    accepted = Candidate("U1", history=(answer({"postgres"}, 3, accepted=True), answer({"postgres"}, 5, accepted=True)))
    plain = Candidate("U2", history=(answer({"postgres"}, 3), answer({"postgres"}, 5)))

    ranked = rank_experts(["postgres"], [plain, accepted], NOW)

    assert ids(ranked) == ["U1", "U2"]
    assert ranked[0].reason == "2 accepted answers on #postgres; last answered 3 days ago"
    assert ranked[1].reason == "2 answers on #postgres; last answered 3 days ago"
    assert ranked[0].expertise == pytest.approx(2 * ranked[1].expertise)  # accepted_bonus 1: worth double


def test_reason_combines_declared_accepted_and_other_answers() -> None:
    history = (answer({"postgres"}, 0.5, accepted=True), answer({"postgres"}, 10))
    ranked = rank_experts(["postgres"], [Candidate("U1", frozenset({"postgres"}), history)], NOW)

    assert ranked[0].reason == (
        "declared #postgres; 1 accepted answer on #postgres; 1 other answer on #postgres; answered in the last 24 h"
    )


def test_helpful_votes_add_expertise() -> None:
    voted = Candidate("U1", history=(answer({"postgres"}, 3, votes=5),))
    unvoted = Candidate("U2", history=(answer({"postgres"}, 3),))

    ranked = rank_experts(["postgres"], [unvoted, voted], NOW)

    assert ids(ranked) == ["U1", "U2"]
    assert ranked[1].expertise == pytest.approx(0.5 ** (3 / 90))
    assert ranked[0].expertise > ranked[1].expertise


def test_learned_expertise_halves_every_half_life() -> None:
    params = RankingParams(expertise_half_life_days=10)
    fresh = Candidate("U1", history=(answer({"postgres"}, 0),))
    old = Candidate("U2", history=(answer({"postgres"}, 20),))

    by_id = {e.user_id: e for e in rank_experts(["postgres"], [fresh, old], NOW, params=params)}

    assert by_id["U1"].expertise == pytest.approx(1.0)
    assert by_id["U2"].expertise == pytest.approx(0.25)


def test_a_fading_expert_loses_to_a_current_one_with_the_same_record() -> None:
    current = Candidate("U2", history=tuple(answer({"postgres"}, d) for d in (1, 2, 3)))
    former = Candidate("U1", history=tuple(answer({"postgres"}, d) for d in (301, 302, 303)))

    assert ids(rank_experts(["postgres"], [former, current], NOW)) == ["U2", "U1"]


def test_rare_tags_count_more_than_common_ones() -> None:
    stats = TagStats(question_count=100, tag_counts={"kafka": 2, "python": 80})
    on_common = Candidate("U1", history=(answer({"python"}, 3),))
    on_rare = Candidate("U2", history=(answer({"kafka"}, 3),))

    ranked = rank_experts(["python", "kafka"], [on_common, on_rare], NOW, tag_stats=stats)

    assert ids(ranked) == ["U2", "U1"]
    assert ranked[0].expertise > 2 * ranked[1].expertise


def test_recent_activity_breaks_equal_expertise() -> None:
    tag_history = answer({"postgres"}, 30)
    busy = Candidate("U2", history=(tag_history, answer({"css"}, 0.2), answer({"css"}, 1)))
    quiet = Candidate("U1", history=(tag_history,))

    ranked = rank_experts(["postgres"], [quiet, busy], NOW)

    assert ids(ranked) == ["U2", "U1"]
    assert ranked[0].expertise == pytest.approx(ranked[1].expertise)
    assert ranked[0].activity > 1.0 > ranked[1].activity


def test_anyone_with_expertise_ranks_above_the_most_active_non_expert() -> None:
    helper = Candidate("U1", history=tuple(answer({"css"}, d / 10) for d in range(20)))
    expert = Candidate("U2", history=(answer({"postgres"}, 200),))

    ranked = rank_experts(["postgres"], [helper, expert], NOW)

    assert ids(ranked) == ["U2", "U1"]
    assert ranked[1].expertise == 0.0
    assert ranked[1].reason == "no history on these tags; answered in the last 24 h"


def test_excludes_asker_bots_paused_and_deactivated_users() -> None:
    everyone = [
        Candidate("U_ASKER", frozenset({"postgres"})),
        Candidate("U_BOT", frozenset({"postgres"}), is_bot=True),
        Candidate("U_PAUSED", frozenset({"postgres"}), is_paused=True),
        Candidate("U_GONE", frozenset({"postgres"}), is_deactivated=True),
        Candidate("U_OK", frozenset({"postgres"})),
    ]

    assert ids(rank_experts(["postgres"], everyone, NOW, exclude={"U_ASKER"})) == ["U_OK"]


def test_ties_break_by_user_id_whatever_the_input_order() -> None:
    candidates = [Candidate(f"U{i}", frozenset({"postgres"})) for i in (3, 1, 4, 2)]
    rng = random.Random(7)
    for _ in range(5):
        rng.shuffle(candidates)
        assert ids(rank_experts(["postgres"], candidates, NOW)) == ["U1", "U2", "U3", "U4"]


def test_duplicate_candidate_rows_count_once() -> None:
    row = Candidate("U1", frozenset({"postgres"}))

    assert ids(rank_experts(["postgres"], [row, row], NOW)) == ["U1"]


def test_empty_inputs() -> None:
    assert rank_experts(["postgres"], [], NOW) == []
    ranked = rank_experts([], [Candidate("U1", history=(answer({"postgres"}, 1),))], NOW)
    assert ids(ranked) == ["U1"]
    assert ranked[0].expertise == 0.0


def test_tags_match_whatever_their_case_or_hash() -> None:
    ranked = rank_experts(["#Postgres"], [Candidate("U1", history=(answer({"POSTGRES"}, 1),))], NOW)

    assert ranked[0].expertise > 0
    assert "#postgres" in ranked[0].reason


def test_known_tags_mentioned_in_the_text_count_at_reduced_weight() -> None:
    stats = TagStats(question_count=10, tag_counts={"postgres": 3, "kafka": 3})
    on_postgres = Candidate("U1", history=(answer({"postgres"}, 1),))
    on_kafka = Candidate("U2", history=(answer({"kafka"}, 1),))

    ranked = rank_experts(
        ["kafka"], [on_postgres, on_kafka], NOW, question_text="Why does my postgres sink lag?", tag_stats=stats
    )

    assert ids(ranked) == ["U2", "U1"]
    assert ranked[1].expertise > 0  # the mention ties U1 to the question
    untied = rank_experts(["kafka"], [on_postgres], NOW, question_text="Why does it lag?", tag_stats=stats)
    assert untied[0].expertise == 0.0


def test_answers_on_related_tags_count_partially() -> None:
    stats = TagStats.from_tag_sets([{"postgres", "sql"}] * 4 + [{"postgres"}] * 4 + [{"css"}] * 2)
    on_sql = Candidate("U1", history=(answer({"sql"}, 1),))
    on_css = Candidate("U2", history=(answer({"css"}, 1),))
    on_postgres = Candidate("U3", history=(answer({"postgres"}, 1),))

    ranked = rank_experts(["postgres"], [on_sql, on_css, on_postgres], NOW, tag_stats=stats)

    assert ids(ranked) == ["U3", "U1", "U2"]
    assert 0 < ranked[1].expertise < ranked[0].expertise
    assert ranked[2].expertise == 0.0


def test_tag_stats_count_questions_and_pairs() -> None:
    stats = TagStats.from_tag_sets([["#SQL", "postgres"], ["postgres"], ["css"]])

    assert stats.question_count == 3
    assert stats.tag_counts == {"sql": 1, "postgres": 2, "css": 1}
    assert stats.pair_counts == {("postgres", "sql"): 1}
    assert stats.related("postgres", 3) == [("sql", 0.5)]
    assert stats.related("unknown", 3) == []
    assert stats.idf("sql") > stats.idf("postgres")


def test_naive_timestamps_in_evidence_are_taken_as_utc() -> None:
    record = AnswerRecord(frozenset({"postgres"}), datetime(2024, 3, 5, 12, 0))

    assert record.answered_at == datetime(2024, 3, 5, 12, 0, tzinfo=UTC)


def test_rank_requires_an_aware_now() -> None:
    with pytest.raises(ValueError, match="aware"):
        rank_experts(["postgres"], [], datetime(2024, 3, 6, 12, 0))


def texted(tags: set[str], days_ago: float, question: str, reply: str = "") -> AnswerRecord:
    return AnswerRecord(frozenset(tags), NOW - timedelta(days=days_ago), question_text=question, answer_text=reply)


def only(feature: str, weight: float = 1.0) -> RankingParams:
    """Parameters whose score is one feature alone."""
    weights = FeatureWeights(*(weight if name == feature else 0.0 for name in FEATURE_NAMES))
    return replace(DEFAULT_PARAMS, weights=weights)


TEXT = FEATURE_NAMES.index("text")
HOUR = FEATURE_NAMES.index("hour")


def test_someone_who_wrote_about_the_same_things_ranks_higher() -> None:
    off_topic = Candidate("U1", history=(texted({"infra"}, 3, "CSS grid gaps in Safari", "Use gap with a margin"),))
    on_topic = Candidate(
        "U2",
        history=(texted({"infra"}, 3, "Kafka consumer lag keeps growing", "Check the consumer group rebalance"),),
    )
    question = "Why does my Kafka consumer group rebalance so often?"

    ranked = rank_experts(["infra"], [off_topic, on_topic], NOW, question_text=question)
    without_text = rank_experts(["infra"], [off_topic, on_topic], NOW)

    assert ids(ranked) == ["U2", "U1"]
    assert ids(without_text) == ["U1", "U2"]  # otherwise equal: the user id decides
    assert ranked[0].expertise == pytest.approx(ranked[1].expertise)
    vectors = feature_vectors(["infra"], [off_topic, on_topic], NOW, question_text=question)
    assert vectors["U2"][TEXT] > 0.0 == vectors["U1"][TEXT]


def test_text_similarity_ignores_case_and_stop_words() -> None:
    person = Candidate("U1", history=(texted({"infra"}, 1, "How do I do this with the KAFKA topic?"),))

    def text_of(question: str) -> float:
        return feature_vectors(["infra"], [person], NOW, question_text=question)["U1"][TEXT]

    assert text_of("How do I do this with the?") == 0.0
    assert text_of("kafka") > 0.0
    assert text_of("") == 0.0


def test_only_the_most_recent_answers_describe_a_person() -> None:
    person = Candidate("U1", history=(texted({"infra"}, 1, "CSS grid in Safari"), texted({"infra"}, 40, "Kafka lag")))

    def text_with(records: int) -> float:
        params = replace(DEFAULT_PARAMS, text_records=records)
        return feature_vectors(["infra"], [person], NOW, question_text="kafka lag", params=params)["U1"][TEXT]

    assert text_with(1) == 0.0
    assert text_with(2) > 0.0


def test_the_score_is_the_learned_weights_times_the_features() -> None:
    candidates = [
        Candidate("U1", frozenset({"postgres"}), (texted({"postgres"}, 2, "vacuum bloat"),)),
        Candidate("U2", history=(answer({"postgres"}, 5, accepted=True, votes=3), answer({"css"}, 0.1))),
        Candidate("U_ASKER", history=(answer({"postgres"}, 1),)),
    ]
    options: dict = {"question_text": "How do I stop table bloat?", "exclude": {"U_ASKER"}}

    vectors = feature_vectors(["postgres"], candidates, NOW, **options)
    ranked = rank_experts(["postgres"], candidates, NOW, **options)

    assert set(vectors) == {"U1", "U2"}
    assert all(len(vector) == len(FEATURE_NAMES) for vector in vectors.values())
    for expert in ranked:
        expected = sum(w * x for w, x in zip(astuple(LEARNED_WEIGHTS), vectors[expert.user_id], strict=True))
        assert expert.score == pytest.approx(expected)


def test_the_weights_decide_the_order() -> None:
    busy = Candidate("U1", history=tuple(answer({"postgres"}, d) for d in (0.1, 0.5, 1)))
    voted = Candidate("U2", history=(answer({"postgres"}, 20, votes=9),))

    assert ids(rank_experts(["postgres"], [busy, voted], NOW, params=only("activity"))) == ["U1", "U2"]
    assert ids(rank_experts(["postgres"], [busy, voted], NOW, params=only("votes"))) == ["U2", "U1"]
    assert ids(rank_experts(["postgres"], [busy, voted], NOW, params=only("silence", -1.0))) == ["U1", "U2"]


def test_people_who_answer_at_this_time_of_day_rank_higher_on_the_hour_feature() -> None:
    # NOW is 12:00 UTC. Same ages, but one answers around noon and the other around midnight.
    noon = Candidate("U2", history=(answer({"postgres"}, 3), answer({"postgres"}, 4)))
    midnight = Candidate("U1", history=(answer({"postgres"}, 3.5), answer({"postgres"}, 2.5)))

    vectors = feature_vectors(["postgres"], [noon, midnight], NOW)

    assert vectors["U2"][HOUR] > vectors["U1"][HOUR]
    assert ids(rank_experts(["postgres"], [midnight, noon], NOW, params=only("hour"))) == ["U2", "U1"]
    evening = NOW + timedelta(hours=12)  # now midnight is the time of day of U1's answers
    assert ids(rank_experts(["postgres"], [midnight, noon], evening, params=only("hour"))) == ["U1", "U2"]


def test_someone_who_never_answered_counts_as_silent_for_a_year() -> None:
    declared = Candidate("U1", frozenset({"postgres"}))
    answered = Candidate("U2", history=(answer({"postgres"}, 400),))

    vectors = feature_vectors(["postgres"], [declared, answered], NOW)

    silence = FEATURE_NAMES.index("silence")
    assert vectors["U1"][silence] == pytest.approx(vectors["U2"][silence])  # both at the 365-day cap
    assert vectors["U1"][FEATURE_NAMES.index("votes")] == 0.0


def test_answer_texts_are_optional_evidence() -> None:
    record = AnswerRecord(frozenset({"postgres"}), NOW)

    assert (record.question_text, record.answer_text) == ("", "")


# --- fitting the weights (bench/routing.py --fit) ---------------------------------------------------


def test_the_fit_recovers_which_feature_predicts_the_choice() -> None:
    # In every question the chosen one has the highest first feature; the second feature is noise.
    rng = random.Random(3)
    choices = []
    for _ in range(60):
        rows = [[rng.gauss(0, 1), rng.gauss(0, 1)] for _ in range(5)]
        choices.append(_Choice(rows, max(range(5), key=lambda i: rows[i][0] + rng.gauss(0, 0.5))))

    weights = fit_weights(choices)

    assert weights[0] > 1.0
    assert abs(weights[1]) < weights[0] / 3


def test_a_stronger_penalty_shrinks_the_weights() -> None:
    choices = [_Choice([[1.0], [0.0], [-1.0]], 0), _Choice([[0.5], [1.0], [0.0]], 1), _Choice([[2.0], [0.0]], 0)]

    assert 0 < fit_weights(choices, l2=10.0)[0] < fit_weights(choices, l2=0.01)[0]


def test_the_fits_gradient_and_hessian_are_the_losss_derivatives() -> None:
    rng = random.Random(5)
    choices = []
    for _ in range(30):
        rows = [[rng.gauss(0, 1) for _ in range(3)] for _ in range(rng.randint(1, 6))]
        choices.append(_Choice(rows, rng.randrange(len(rows))))
    design = _Design.of(choices)
    weights, l2, h = np.array([0.3, -0.2, 0.5]), 0.1, 1e-5

    gradient, hessian = design.derivatives(weights, l2)

    for i in range(3):
        step = np.eye(3)[i] * h
        numeric = (design.loss(weights + step, l2) - design.loss(weights - step, l2)) / (2 * h)
        assert numeric == pytest.approx(gradient[i], abs=1e-7)
        change = (design.derivatives(weights + step, l2)[0] - design.derivatives(weights - step, l2)[0]) / (2 * h)
        assert change == pytest.approx(hessian[i], abs=1e-6)


def test_the_benchmark_runs_on_any_dump_folder(tmp_path: Path) -> None:
    posts = ['<?xml version="1.0" encoding="utf-8"?>', "<posts>"]
    for i in range(20):
        asked = datetime(2024, 1, 1, tzinfo=UTC) + timedelta(days=i)
        expert = 10 if i % 2 else 11
        posts.append(
            f'<row Id="{100 + i}" PostTypeId="1" CreationDate="{asked:%Y-%m-%dT%H:%M:%S}" OwnerUserId="{50 + i}" '
            f'Title="kafka lag {i}" Body="&lt;p&gt;consumer lag&lt;/p&gt;" Tags="|kafka|" Score="1" '
            f'AcceptedAnswerId="{200 + i}" />'
        )
        posts.append(
            f'<row Id="{200 + i}" PostTypeId="2" ParentId="{100 + i}" OwnerUserId="{expert}" Score="2" '
            f'CreationDate="{asked + timedelta(hours=1):%Y-%m-%dT%H:%M:%S}" Body="raise the partitions" />'
        )
    posts.append("</posts>")
    (tmp_path / "Posts.xml").write_text("\n".join(posts), encoding="utf-8")

    results = run(tmp_path)

    keys = ("p_at_1", "mrr", "hit_at_5", "hit_at_k")
    for prefix in ("", "tag_overlap_", "popularity_"):
        assert all(0.0 <= results[prefix + key] <= 1.0 for key in keys)  # type: ignore[operator]
    assert results["n_test"] == 4 and results["n_reachable"] == 4
    assert results["hit_at_5"] == 1.0  # both experts answered before every test question
