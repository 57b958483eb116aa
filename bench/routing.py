"""Expert-routing benchmark: does PeerLearn's ranker find who gives the accepted answer?

    python bench/routing.py --data ../shared/data/stackexchange-cardano [--json]

Works on any Stack Exchange dump folder (see bench/stackexchange.py). Protocol, a time split:
  * The answered questions are sorted by creation date; the first 80 % are the history part, and the
    questions of the last 20 % that have an accepted answer are the tests. The target of a test is the
    author of its accepted answer. The asker is never a candidate, so self-answers count as misses.
  * A ranker learns, for each test question, from the answers posted before that question was created
    (``--history-scope all``, the default: the bot learns from every answer as it happens) or only from
    those on history-part questions (``--history-scope split``: knowledge frozen at the split, closer to
    how the reference baseline MRRs were measured). The answer's score stands in for helpful votes. Dumps do
    not date acceptances, so "accepted" is the final state of an answer posted before the test question.
  * Tag statistics (IDF, related tags) come from the questions created before the test question.
  * Candidates are everyone with an answer in that history; a target without one is a miss for all.
  * PeerLearn runs ``bot.routing.rank_experts``, the code the bot runs, with its default parameters. The
    baselines run in the same pass: popularity (answers in history) and tag-overlap (history answers on a
    question sharing a tag with the test question). Their ties break by user id.

How the ranker's parameters were chosen, without the tests: ``bot.routing.RankingParams`` defaults follow
from reasoning (its module docstring says why each factor is there) and were checked on the history part
only, with ``--split validation`` (the test protocol inside the history part, 69 questions here) and
``--split rolling`` (258 questions here). There, activity half-lives from 0.5 to 5 days, expertise
exponents 1 to 3, smoothing 0.03 to 1, activity floors up to 0.05 and the vote, acceptance and
related/mentioned-tag weights gave P@1 between 0.16 and 0.20 (tag-overlap: 0.15 and 0.145), no setting
ahead on both validations, so the defaults sit in the middle of that plateau rather than on a noisy peak.
Scratch experiments with body-text similarity, the asker's past accepters and answer-hour profiles did not
help there and were left out.
"""

from __future__ import annotations

import argparse
import json
import sys
from bisect import bisect_left
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make `bench` and `bot` importable from the repo root
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.stackexchange import Answer, Question, Site, load_site
from bot.routing import AnswerRecord, Candidate, TagStats, rank_experts

HISTORY_SHARE = 0.8
ROLLING_START = 0.3  # the rolling validation skips the first 30 % of history: too little to learn from


@dataclass(frozen=True, slots=True)
class Case:
    """One test question with everything a ranker may see for it."""

    question: Question
    target: str  # author of the accepted answer
    asker: str
    history: tuple[Answer, ...]  # answers before the question, oldest first
    tag_stats: TagStats


@dataclass(frozen=True, slots=True)
class Metrics:
    p_at_1: float
    mrr: float
    hit_at_5: float


Ranker = Callable[[Case], list[str]]


class Benchmark:
    """Builds the test cases of one dump and ranks them."""

    def __init__(self, site: Site, *, history_scope: str = "all", split: str = "test") -> None:
        self.questions = {q.id: q for q in site.questions}
        self.answers = sorted((a for a in site.answers if a.owner_id is not None), key=lambda a: (a.created, a.id))
        self.answer_times = [a.created for a in self.answers]
        self.answer_owner = {a.id: a.owner_id for a in self.answers}
        self.accepted_ids = {q.accepted_answer_id for q in site.questions if q.accepted_answer_id}
        self.records = {a.id: self._record(a) for a in self.answers}
        history_part, test_part = self._split({a.parent_id for a in site.answers}, split)
        self.history_question_ids = {q.id for q in history_part}
        self.history_scope = history_scope
        self.cases = [self._case(q) for q in test_part if self._has_target(q)]

    def _split(self, answered: set[int], split: str) -> tuple[list[Question], list[Question]]:
        pool = sorted((q for q in self.questions.values() if q.id in answered), key=lambda q: (q.created, q.id))
        cut = int(len(pool) * HISTORY_SHARE)
        if split == "test":
            return pool[:cut], pool[cut:]
        history = pool[:cut]  # validation splits never look past the history part
        if split == "validation":  # the test protocol applied inside the history part
            inner = int(len(history) * HISTORY_SHARE)
            return history[:inner], history[inner:]
        if split == "rolling":  # every later history question, learning from everything before it
            return history, history[int(len(history) * ROLLING_START) :]
        raise ValueError(f"unknown split {split!r}")

    def _has_target(self, question: Question) -> bool:
        return question.owner_id is not None and self.answer_owner.get(question.accepted_answer_id or -1) is not None

    def _record(self, answer: Answer) -> AnswerRecord:
        return AnswerRecord(
            tags=frozenset(self.questions[answer.parent_id].tags),
            answered_at=answer.created,
            accepted=answer.id in self.accepted_ids,
            helpful_votes=answer.score,
        )

    def _case(self, question: Question) -> Case:
        before = self.answers[: bisect_left(self.answer_times, question.created)]
        if self.history_scope == "split":
            before = [a for a in before if a.parent_id in self.history_question_ids]
        earlier = [q.tags for q in self.questions.values() if q.created < question.created]
        return Case(
            question=question,
            target=str(self.answer_owner[question.accepted_answer_id or -1]),
            asker=str(question.owner_id),
            history=tuple(before),
            tag_stats=TagStats.from_tag_sets(earlier),
        )

    def peerlearn(self, case: Case) -> list[str]:
        by_user: dict[str, list[AnswerRecord]] = defaultdict(list)
        for answer in case.history:
            by_user[str(answer.owner_id)].append(self.records[answer.id])
        candidates = [Candidate(user_id, history=tuple(records)) for user_id, records in by_user.items()]
        ranked = rank_experts(
            case.question.tags,
            candidates,
            case.question.created,
            question_text=f"{case.question.title}\n{case.question.body}",
            exclude={case.asker},
            tag_stats=case.tag_stats,
        )
        return [expert.user_id for expert in ranked]

    def popularity(self, case: Case) -> list[str]:
        return _by_count(case, Counter(str(a.owner_id) for a in case.history))

    def tag_overlap(self, case: Case) -> list[str]:
        tags = set(case.question.tags)
        counts = Counter({str(a.owner_id): 0 for a in case.history})
        counts.update(str(a.owner_id) for a in case.history if tags & set(self.questions[a.parent_id].tags))
        return _by_count(case, counts)

    def evaluate(self, ranker: Ranker) -> Metrics:
        ranks = [_rank_of(case.target, ranker(case)) for case in self.cases]
        n = len(ranks) or 1
        return Metrics(
            p_at_1=sum(r == 1 for r in ranks) / n,
            mrr=sum(1 / r for r in ranks if r) / n,
            hit_at_5=sum(r is not None and r <= 5 for r in ranks) / n,
        )


def _by_count(case: Case, counts: Counter[str]) -> list[str]:
    counts.pop(case.asker, None)
    return sorted(counts, key=lambda user: (-counts[user], int(user)))


def _rank_of(target: str, ranking: Sequence[str]) -> int | None:
    try:
        return ranking.index(target) + 1
    except ValueError:
        return None


def run(data: Path, *, history_scope: str = "all", split: str = "test") -> dict[str, float | int | str]:
    bench = Benchmark(load_site(data), history_scope=history_scope, split=split)
    results: dict[str, float | int | str] = {}
    for prefix, ranker in (
        ("", bench.peerlearn),
        ("tag_overlap_", bench.tag_overlap),
        ("popularity_", bench.popularity),
    ):
        metrics = bench.evaluate(ranker)
        results |= {
            f"{prefix}p_at_1": round(metrics.p_at_1, 3),
            f"{prefix}mrr": round(metrics.mrr, 3),
            f"{prefix}hit_at_5": round(metrics.hit_at_5, 3),
        }
    return results | {
        "n_test": len(bench.cases),
        "n_reachable": sum(_is_reachable(case) for case in bench.cases),
        "history_scope": history_scope,
        "split": split,
    }


def _is_reachable(case: Case) -> bool:
    """Whether any ranker could put the target first: not the asker, and answered before."""
    return case.target != case.asker and any(str(a.owner_id) == case.target for a in case.history)


def _print_table(results: dict[str, float | int | str]) -> None:
    print(
        f"expert routing on {results['n_test']} {results['split']} questions "
        f"({results['n_reachable']} with the target among the candidates), history scope: {results['history_scope']}"
    )
    print(f"{'ranker':<12} {'P@1':>6} {'MRR':>6} {'Hit@5':>6}")
    for label, prefix in (("PeerLearn", ""), ("tag-overlap", "tag_overlap_"), ("popularity", "popularity_")):
        row = [results[f"{prefix}{name}"] for name in ("p_at_1", "mrr", "hit_at_5")]
        print(f"{label:<12} " + " ".join(f"{value:>6.3f}" for value in row))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="folder of a Stack Exchange dump (Posts.xml, ...)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    parser.add_argument(
        "--history-scope",
        choices=("all", "split"),
        default="all",
        help="learn from all answers before each test question (default) or only those on history questions",
    )
    parser.add_argument(
        "--split",
        choices=("test", "validation", "rolling"),
        default="test",
        help="test (default); or, for choosing parameters without the tests: validation (the same split inside "
        "the history part) or rolling (each history question after the first 30 %%, learning from all before it)",
    )
    args = parser.parse_args(argv)
    try:
        results = run(args.data, history_scope=args.history_scope, split=args.split)
    except FileNotFoundError as error:
        parser.error(str(error))
    if args.json:
        print(json.dumps(results))
    else:
        _print_table(results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
