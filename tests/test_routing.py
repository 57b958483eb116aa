"""bot.routing: ranking experts, working hours in their time zones, and planning the DMs. Pure and fast."""

from __future__ import annotations

import random
from dataclasses import astuple, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bench.routing import _Choice, fit_weights, paired_bootstrap, run
from bot.routing.planner import (
    Availability,
    is_within_working_hours,
    next_working_start,
    plan_routing,
    resolve_timezone,
)
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


def test_paired_bootstrap_interval() -> None:
    assert paired_bootstrap([1, 2, None], [1, 2, None]) == (0.0, 0.0)
    # 30 questions only the first ranker gets, 10 only the second: +0.5, standard error ~0.14.
    low, high = paired_bootstrap([1] * 30 + [3] * 10, [2] * 30 + [1] * 10)
    assert 0.15 < low < 0.35 and 0.65 < high < 0.85


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

    keys = ("p_at_1", "mrr", "hit_at_5")
    for prefix in ("", "tag_overlap_", "popularity_"):
        assert all(0.0 <= results[prefix + key] <= 1.0 for key in keys)  # type: ignore[operator]
    assert results["n_test"] == 4 and results["n_reachable"] == 4
    assert results["hit_at_5"] == 1.0  # both experts answered before every test question


# --- working hours ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("utc_time", "expected"),
    [
        (datetime(2024, 3, 6, 7, 59, tzinfo=UTC), False),  # 08:59 in Paris
        (datetime(2024, 3, 6, 8, 0, tzinfo=UTC), True),  # 09:00
        (datetime(2024, 3, 6, 15, 59, tzinfo=UTC), True),  # 16:59
        (datetime(2024, 3, 6, 16, 0, tzinfo=UTC), False),  # 17:00: the end is exclusive
        (datetime(2024, 3, 9, 10, 0, tzinfo=UTC), False),  # Saturday
        (datetime(2024, 3, 10, 10, 0, tzinfo=UTC), False),  # Sunday
    ],
)
def test_working_hours_in_paris(utc_time: datetime, expected: bool) -> None:
    assert is_within_working_hours(utc_time, "Europe/Paris", 9, 17) is expected


def test_same_instant_differs_by_time_zone() -> None:
    assert is_within_working_hours(NOW, "Europe/Paris", 9, 17)  # 13:00
    assert not is_within_working_hours(NOW, "Asia/Tokyo", 9, 17)  # 21:00
    assert not is_within_working_hours(NOW, "America/Los_Angeles", 9, 17)  # 04:00


def test_next_start_is_now_when_already_working() -> None:
    paris_noon = datetime(2024, 3, 6, 13, 0, tzinfo=resolve_timezone("Europe/Paris"))

    assert next_working_start(paris_noon, "Europe/Paris", 9, 17) == datetime(2024, 3, 6, 12, 0, tzinfo=UTC)


def test_next_start_is_tomorrow_morning_on_a_weeknight() -> None:
    wednesday_evening = datetime(2024, 3, 6, 19, 0, tzinfo=UTC)  # 20:00 in Paris

    assert next_working_start(wednesday_evening, "Europe/Paris", 9, 17) == datetime(2024, 3, 7, 8, 0, tzinfo=UTC)


def test_next_start_skips_the_weekend() -> None:
    friday_evening = datetime(2024, 3, 8, 18, 0, tzinfo=UTC)

    assert next_working_start(friday_evening, "Europe/Paris", 9, 17) == datetime(2024, 3, 11, 8, 0, tzinfo=UTC)


def test_next_start_follows_the_spring_forward_change() -> None:
    # New York moves to EDT (UTC-4) on Sunday 10 March 2024: Monday 09:00 is 13:00 UTC, not 14:00.
    friday_evening = datetime(2024, 3, 8, 23, 0, tzinfo=UTC)  # 18:00 EST

    assert next_working_start(friday_evening, "America/New_York", 9, 17) == datetime(2024, 3, 11, 13, 0, tzinfo=UTC)
    assert is_within_working_hours(datetime(2024, 3, 11, 13, 0, tzinfo=UTC), "America/New_York", 9, 17)
    assert not is_within_working_hours(datetime(2024, 3, 8, 13, 30, tzinfo=UTC), "America/New_York", 9, 17)


def test_next_start_follows_the_autumn_change() -> None:
    # Paris leaves CEST (UTC+2) on Sunday 27 October 2024: Monday 09:00 is 08:00 UTC, Friday's was 07:00.
    friday_evening = datetime(2024, 10, 25, 17, 0, tzinfo=UTC)

    assert is_within_working_hours(datetime(2024, 10, 25, 7, 0, tzinfo=UTC), "Europe/Paris", 9, 17)
    assert next_working_start(friday_evening, "Europe/Paris", 9, 17) == datetime(2024, 10, 28, 8, 0, tzinfo=UTC)


def test_a_shift_starting_in_the_spring_forward_gap_starts_when_the_clock_resumes() -> None:
    # Israel springs forward on a weekday: Friday 29 March 2024, 02:00 IST (UTC+2) becomes 03:00 IDT (UTC+3).
    # A 02:00 shift that day starts at 03:00 IDT = 00:00 UTC, not at 23:00 UTC (which is still 01:00 IST).
    thursday_afternoon = datetime(2024, 3, 28, 12, 0, tzinfo=UTC)

    assert next_working_start(thursday_afternoon, "Asia/Jerusalem", 2, 10) == datetime(2024, 3, 29, 0, 0, tzinfo=UTC)
    assert not is_within_working_hours(datetime(2024, 3, 28, 23, 30, tzinfo=UTC), "Asia/Jerusalem", 2, 10)
    assert is_within_working_hours(datetime(2024, 3, 29, 6, 59, tzinfo=UTC), "Asia/Jerusalem", 2, 10)
    assert not is_within_working_hours(datetime(2024, 3, 29, 7, 0, tzinfo=UTC), "Asia/Jerusalem", 2, 10)


def test_half_hour_time_zones() -> None:
    # Kolkata is UTC+05:30, so 09:00 there is 03:30 UTC.
    assert next_working_start(datetime(2024, 3, 6, 1, 0, tzinfo=UTC), "Asia/Kolkata", 9, 17) == datetime(
        2024, 3, 6, 3, 30, tzinfo=UTC
    )


def test_overnight_shifts_belong_to_the_weekday_they_start_on() -> None:
    def at(day: int, hour: int) -> datetime:
        return datetime(2024, 3, day, hour, 0, tzinfo=UTC)

    assert is_within_working_hours(at(6, 23), "UTC", 22, 6)  # Wednesday night
    assert is_within_working_hours(at(7, 3), "UTC", 22, 6)  # ...into Thursday
    assert is_within_working_hours(at(9, 3), "UTC", 22, 6)  # Friday's shift runs into Saturday
    assert not is_within_working_hours(at(10, 3), "UTC", 22, 6)  # no shift starts on Saturday
    assert not is_within_working_hours(at(6, 12), "UTC", 22, 6)
    assert next_working_start(at(10, 3), "UTC", 22, 6) == at(11, 22)  # Monday night


@pytest.mark.parametrize("tz_name", ["Mars/Olympus_Mons", "", None, "../etc/passwd", "Europe"])
def test_unknown_or_invalid_time_zones_fall_back_to_utc(tz_name: str | None) -> None:
    assert resolve_timezone(tz_name) is UTC
    assert is_within_working_hours(datetime(2024, 3, 6, 9, 30, tzinfo=UTC), tz_name, 9, 17)
    assert next_working_start(datetime(2024, 3, 6, 20, 0, tzinfo=UTC), tz_name, 9, 17) == datetime(
        2024, 3, 7, 9, 0, tzinfo=UTC
    )


@pytest.mark.parametrize(("start", "end"), [(9, 9), (-1, 5), (9, 25), (24, 5), (9, 0)])
def test_impossible_working_hours_are_refused(start: int, end: int) -> None:
    with pytest.raises(ValueError, match="working hours"):
        is_within_working_hours(NOW, "UTC", start, end)


def test_a_full_day_shift_ends_at_midnight() -> None:
    assert is_within_working_hours(datetime(2024, 3, 6, 23, 59, tzinfo=UTC), "UTC", 0, 24)
    assert not is_within_working_hours(datetime(2024, 3, 9, 0, 1, tzinfo=UTC), "UTC", 0, 24)  # Saturday


def test_availability_functions_require_an_aware_now() -> None:
    with pytest.raises(ValueError, match="aware"):
        next_working_start(datetime(2024, 3, 6, 12, 0), "UTC", 9, 17)


# --- planning the DMs -------------------------------------------------------------------------------

PARIS = Availability("Europe/Paris", 9, 17)  # 13:00 at NOW: working
TOKYO = Availability("Asia/Tokyo", 9, 17)  # 21:00 at NOW: off
LOS_ANGELES = Availability("America/Los_Angeles", 9, 17)  # 04:00 at NOW: off


def expert(user_id: str) -> ScoredExpert:
    return ScoredExpert(user_id, score=0.0, reason=f"reason of {user_id}", expertise=1.0, activity=1.0)


def plan(ranked: list[str], availability: dict[str, Availability], **kwargs: object) -> list[tuple[str, datetime]]:
    options: dict = {"now": NOW, "top_n": 2, "daily_cap": 3, "dm_counts_today": {}} | kwargs
    planned = plan_routing([expert(u) for u in ranked], availability_by_user=availability, **options)
    return [(dm.user_id, dm.send_at) for dm in planned]


def test_awake_experts_are_preferred_over_better_ranked_sleepers() -> None:
    availability = {"U1": TOKYO, "U2": PARIS, "U3": PARIS}

    assert plan(["U1", "U2", "U3"], availability) == [("U2", NOW), ("U3", NOW)]


def test_the_best_sleeper_is_scheduled_for_their_morning_when_too_few_are_awake() -> None:
    availability = {"U1": TOKYO, "U2": LOS_ANGELES, "U3": PARIS}

    # Tokyo's next 09:00 is Thursday 00:00 UTC.
    assert plan(["U1", "U2", "U3"], availability) == [("U3", NOW), ("U1", datetime(2024, 3, 7, 0, 0, tzinfo=UTC))]


def test_experts_at_their_daily_cap_are_skipped() -> None:
    availability = {"U1": PARIS, "U2": PARIS, "U3": PARIS}

    assert plan(["U1", "U2", "U3"], availability, dm_counts_today={"U1": 3, "U2": 2}) == [("U2", NOW), ("U3", NOW)]
    assert plan(["U1", "U2"], availability, daily_cap=1, dm_counts_today={"U1": 1, "U2": 1}) == []


def test_never_more_than_top_n() -> None:
    availability = {u: PARIS for u in ("U1", "U2", "U3", "U4")}

    assert plan(["U1", "U2", "U3", "U4"], availability, top_n=3) == [("U1", NOW), ("U2", NOW), ("U3", NOW)]
    assert plan(["U1", "U2"], availability, top_n=0) == []
    assert plan([], availability) == []


def test_without_prefer_awake_rank_decides_and_sleepers_wait() -> None:
    availability = {"U1": TOKYO, "U2": PARIS, "U3": PARIS}

    planned = plan(["U1", "U2", "U3"], availability, prefer_awake=False)

    assert planned == [("U2", NOW), ("U1", datetime(2024, 3, 7, 0, 0, tzinfo=UTC))]


def test_users_without_known_hours_are_treated_as_available() -> None:
    assert plan(["U1"], {}) == [("U1", NOW)]


def test_duplicates_in_the_ranking_get_one_dm() -> None:
    assert plan(["U1", "U1", "U2"], {"U1": PARIS, "U2": PARIS}) == [("U1", NOW), ("U2", NOW)]


def test_planned_reasons_say_when_and_why() -> None:
    planned = plan_routing(
        [expert("U1"), expert("U2")],
        now=NOW,
        top_n=2,
        daily_cap=3,
        dm_counts_today={},
        availability_by_user={"U1": TOKYO, "U2": PARIS},
    )

    assert [dm.reason for dm in planned] == [
        "reason of U2; available now",
        "reason of U1; outside working hours, DM at Thu 09:00 Asia/Tokyo",
    ]


def test_plan_works_on_rank_experts_output() -> None:
    candidates = [Candidate("U1", frozenset({"postgres"})), Candidate("U2", frozenset({"postgres"}))]
    ranked = rank_experts(["postgres"], candidates, NOW, exclude={"U2"})

    planned = plan_routing(ranked, now=NOW, dm_counts_today={}, availability_by_user={"U1": PARIS})

    assert [(dm.user_id, dm.send_at, dm.reason) for dm in planned] == [("U1", NOW, "declared #postgres; available now")]
