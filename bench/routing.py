"""Expert-routing benchmark: does PeerLearn's ranker find who gives the accepted answer?

    python bench/routing.py --data DIR [DIR ...] [--all-sites DIR] [--json]
    python bench/routing.py --data ../shared/data/stackexchange-cardano --fit   # refit on one site
    python bench/routing.py --all-sites ../shared/data --fit-sites [--vector-cache FILE]   # refit across sites

Works on any Stack Exchange dump folder (see bench/stackexchange.py). Protocol, a time split:
  * The answered questions are sorted by creation date; the first 80 % are the history part, and the
    questions of the last 20 % that have an accepted answer are the tests. The target of a test is the
    author of its accepted answer. The asker is never a candidate, so self-answers count as misses.
  * A ranker learns, for each test question, from the answers posted before that question was created
    (``--history-scope all``, the default: the bot learns from every answer as it happens) or only from
    those on history-part questions (``--history-scope split``: knowledge frozen at the split). The
    answer's score stands in for helpful votes. Dumps do not date acceptances, so "accepted" is the final
    state of an answer posted before the test question. Each answer record carries the answered question's
    title and body and the answer's body, as the bot's database supplies them. A candidate is built as the
    bot builds one: their answers folded into a standing (``bot.routing.standing.standing_of``, the fold the
    bot's evidence tables keep), which holds the text profile of their most recent ``text_records`` answers
    (text and hour features).
  * Tag statistics (IDF, related tags) come from the questions created before the test question.
  * Candidates are everyone with an answer in that history; a target without one is a miss for all.
  * PeerLearn runs ``bot.routing.ranker.rank_experts``, the code the bot runs, with its default parameters and
    weights. The baselines run in the same pass: popularity (answers in history) and tag-overlap (history
    answers on a question sharing a tag with the test question). Their ties break by user id.
  * Reported: P@1, MRR, Hit@5 and Hit@k for the k experts the bot DMs (``PEERLEARN_ROUTE_TOP_N``, its
    default read from bot.config), per site and pooled over the sites' test questions, with 95 % paired
    bootstrap intervals of PeerLearn's difference to each baseline (bench/sites.py), so a difference of one
    or two questions is not read as a result.

How the ranker's weights were obtained, without the tests (``--fit``, one site): the ranker is a log-linear
model over eight features (bot/routing/ranker.py says what they are and why). ``--fit`` computes them with
``bot.routing.ranker.feature_vectors`` for every question of the ``rolling`` split (each question of the
history part after its first 30 %, learning from everything before it) and fits the weights by maximum
likelihood of the accepted answerer among the candidates (conditional logit, L2 penalty, Newton's method:
deterministic, so the fit reproduces exactly). It also reports a blocked 4-fold cross-validation over time
on those questions (fit on three blocks, rank the fourth) next to the baselines; that is how the features
and the penalty were first chosen, on Cardano.

Across sites (``--fit-sites``), so that nothing is tuned to one site: the rolling questions of every site are
pooled (features standardized over the pool) and the weights fitted on them together. The feature set and the
L2 penalty are chosen by leave-one-site-out cross-validation: for each candidate set (the eight; the eight
without each one; the eight with each semantic feature, when ``--vector-cache`` is given) and each penalty of
``L2_GRID``, fit on all sites but one and measure the held-out site (its mean log-likelihood of the targets,
P@1, MRR, Hit@k); the best pooled held-out log-likelihood wins. The weights fitted on Cardano alone
(``CARDANO_WEIGHTS``) are measured on the same held-out questions. Then the chosen set is fitted on every site
and evaluated once on the test splits, beside the Cardano weights and tag-overlap, with intervals. The semantic
features (``Semantic``) are the mean and the max cosine between the question's vector and the search vectors
(question + accepted answer, as bot/search/vectors.py stores them) of the resolved questions among each
candidate's last ``text_records`` answers; the vectors come from the bot's model through bench/vector_cache.py.
What that gave, and what else was tried, is in bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from bisect import bisect_left
from collections import Counter, defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from functools import cached_property, partial
from pathlib import Path

import numpy as np
import numpy.typing as npt

if __package__ in (None, ""):  # run as a script: make `bench` and `bot` importable from the repo root
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.sites import (
    Column,
    MultiSiteReport,
    SiteValues,
    add_site_arguments,
    build_report,
    format_table,
    pooled_means,
    site_folders,
    site_name,
)
from bench.stackexchange import Answer, Question, Site, load_site
from bench.vector_cache import VectorCache
from bot.config import Settings
from bot.routing.ranker import (
    DEFAULT_PARAMS,
    FEATURE_NAMES,
    AnswerRecord,
    Candidate,
    FeatureWeights,
    RankingParams,
    TagStats,
    feature_vectors,
    rank_experts,
)
from bot.routing.standing import standing_of
from bot.search.vectors import ANSWER_WEIGHT
from bot.text import MAX_QUESTION_CHARS

HISTORY_SHARE = 0.8
ROLLING_START = 0.3  # the rolling validation skips the first 30 % of history: too little to learn from
ROUTE_TOP_N = Settings().route_top_n  # how many experts the bot DMs by default: Hit@k is measured at this k
# JSON key prefix -> name ("before": the ranker with the weights fitted on Cardano alone, CARDANO_WEIGHTS)
RANKERS = {"": "PeerLearn", "tag_overlap_": "tag-overlap", "popularity_": "popularity", "before_": "before"}
FIT_L2 = 0.3  # on standardized features: the best held-out log-likelihood of 0.01, 0.1, 0.3, 1 and 3 in the CV
CV_FOLDS = 4
# The weights fitted on Cardano alone (2026-11-25), kept to report "before" beside the current ones.
CARDANO_WEIGHTS = FeatureWeights(
    expertise=0.35, activity=0.27, engagement=0.16, silence=-0.26, text=5.9, votes=0.15, accepted=0.09, hour=0.13
)


@dataclass(frozen=True, slots=True)
class Case:
    """One test question with everything a ranker may see for it."""

    question: Question
    target: str  # author of the accepted answer
    asker: str
    history: tuple[Answer, ...]  # answers before the question, oldest first
    tag_stats: TagStats

    @property
    def text(self) -> str:
        return f"{self.question.title}\n{self.question.body}"


@dataclass(frozen=True, slots=True)
class Metrics:
    p_at_1: float
    mrr: float
    hit_at_5: float
    hit_at_k: float


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
        question = self.questions[answer.parent_id]
        return AnswerRecord(
            tags=frozenset(question.tags),
            answered_at=answer.created,
            accepted=answer.id in self.accepted_ids,
            helpful_votes=answer.score,
            question_text=f"{question.title}\n{question.body}",
            answer_text=answer.body,
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

    def candidates(self, case: Case) -> list[Candidate]:
        """As the bot builds them: each person's answers folded into a standing (the same fold as the
        upkeep's, as of the question, with the text profile of their most recent answers)."""
        by_user: dict[str, list[AnswerRecord]] = defaultdict(list)
        for answer in case.history:  # oldest first
            by_user[str(answer.owner_id)].append(self.records[answer.id])
        return [
            Candidate(user_id, standing=standing_of(records, case.question.created))
            for user_id, records in by_user.items()
        ]

    def peerlearn(self, case: Case, params: RankingParams = DEFAULT_PARAMS) -> list[str]:
        ranked = rank_experts(
            case.question.tags,
            self.candidates(case),
            case.question.created,
            question_text=case.text,
            exclude={case.asker},
            tag_stats=case.tag_stats,
            params=params,
        )
        return [expert.user_id for expert in ranked]

    def features(self, case: Case) -> dict[str, tuple[float, ...]]:
        return feature_vectors(
            case.question.tags,
            self.candidates(case),
            case.question.created,
            question_text=case.text,
            exclude={case.asker},
            tag_stats=case.tag_stats,
        )

    def popularity(self, case: Case) -> list[str]:
        return _by_count(case, Counter(str(a.owner_id) for a in case.history))

    def tag_overlap(self, case: Case) -> list[str]:
        tags = set(case.question.tags)
        counts = Counter({str(a.owner_id): 0 for a in case.history})
        counts.update(str(a.owner_id) for a in case.history if tags & set(self.questions[a.parent_id].tags))
        return _by_count(case, counts)

    def ranks(self, ranker: Ranker, cases: Sequence[Case] | None = None) -> list[int | None]:
        return [_rank_of(case.target, ranker(case)) for case in (self.cases if cases is None else cases)]


def metrics(ranks: Sequence[int | None], k: int = ROUTE_TOP_N) -> Metrics:
    n = len(ranks) or 1
    rows = per_question(ranks, k)
    return Metrics(*(sum(row[i] for row in rows) / n for i in range(4)))


def per_question(ranks: Sequence[int | None], k: int = ROUTE_TOP_N) -> list[tuple[float, float, float, float]]:
    """Each question's (P@1, reciprocal rank, Hit@5, Hit@k) from the target's rank (None: not ranked)."""
    return [
        (float(r == 1), 1 / r if r else 0.0, float(r is not None and r <= 5), float(r is not None and r <= k))
        for r in ranks
    ]


def _by_count(case: Case, counts: Counter[str]) -> list[str]:
    counts.pop(case.asker, None)
    return sorted(counts, key=lambda user: (-counts[user], int(user)))


def _rank_of(target: str, ranking: Sequence[str]) -> int | None:
    try:
        return ranking.index(target) + 1
    except ValueError:
        return None


COMPARISONS = {
    f"{measure}_vs_{baseline.rstrip('_')}": (measure, f"{baseline}{measure}")
    for baseline in ("tag_overlap_", "popularity_", "before_")
    for measure in ("p_at_1", "mrr", "hit_at_k", "hit_at_5")
}
MEASURES = (("P@1", "p_at_1"), ("MRR", "mrr"), (f"Hit@{ROUTE_TOP_N}", "hit_at_k"), ("Hit@5", "hit_at_5"))
COLUMNS = tuple(
    Column(f"{RANKERS[prefix][:4]} {label}", f"{prefix}{key}", 11)
    for prefix in ("", "tag_overlap_")
    for label, key in MEASURES
)


def site_values(data: Path, *, history_scope: str = "all", split: str = "test", k: int = ROUTE_TOP_N) -> SiteValues:
    """One site's per-question values for every ranker, and its counts."""
    bench = Benchmark(load_site(data), history_scope=history_scope, split=split)
    values: dict[str, list[float]] = {}
    for prefix, ranker in (
        ("", bench.peerlearn),
        ("tag_overlap_", bench.tag_overlap),
        ("popularity_", bench.popularity),
        ("before_", partial(bench.peerlearn, params=replace(DEFAULT_PARAMS, weights=CARDANO_WEIGHTS))),
    ):
        rows = per_question(bench.ranks(ranker), k)
        for index, name in enumerate(("p_at_1", "mrr", "hit_at_5", "hit_at_k")):
            values[prefix + name] = [row[index] for row in rows]
    counts = {"n_test": len(bench.cases), "n_reachable": sum(_is_reachable(case) for case in bench.cases)}
    return SiteValues(site_name(data), values, counts)


def evaluate(
    folders: Sequence[Path], *, history_scope: str = "all", split: str = "test", k: int = ROUTE_TOP_N
) -> MultiSiteReport:
    """Every site's figures and the pooled ones (today's keys, with k, per_site and ci95)."""
    sites = [site_values(folder, history_scope=history_scope, split=split, k=k) for folder in folders]
    report = build_report(sites, COMPARISONS, digits=3)
    for figures, group in [(report.per_site[site.name], [site]) for site in sites] + [(report.pooled, sites)]:
        figures.update(_summary(figures, group, history_scope=history_scope, split=split, k=k))
    return report


def _summary(
    figures: dict[str, object], sites: Sequence[SiteValues], *, history_scope: str, split: str, k: int
) -> dict[str, object]:
    """The keys the one-site benchmark always had beside the means: the P@1 gap, its interval, the counts."""
    ours, baseline = pooled_means(sites, ["p_at_1", "tag_overlap_p_at_1"]).values()
    differences, intervals = figures["difference"], figures["ci95"]
    assert isinstance(differences, dict) and isinstance(intervals, dict)
    return {
        "p_at_1_minus_tag_overlap": differences["p_at_1_vs_tag_overlap"],
        "p_at_1_minus_tag_overlap_ci95": intervals["p_at_1_vs_tag_overlap"],
        "p_at_1_ratio_to_tag_overlap": round(ours / baseline, 3) if ours is not None and baseline else None,
        "n_test": sum(int(str(site.extra["n_test"])) for site in sites),
        "n_reachable": sum(int(str(site.extra["n_reachable"])) for site in sites),
        "history_scope": history_scope,
        "split": split,
        "k": k,
    }


def run(data: Path, *, history_scope: str = "all", split: str = "test") -> dict[str, object]:
    """One site's ``--json`` object: p_at_1, mrr, hit_at_5, hit_at_k, the same prefixed tag_overlap_ and
    popularity_, the P@1 gap to tag-overlap and its interval, k, ci95, per_site, and more."""
    return evaluate([data], history_scope=history_scope, split=split).as_json()


def question_text(question: Question) -> str:
    """A question as the bot holds it (what /ask embeds): title and body, cut as the bot cuts a question."""
    return f"{question.title}\n{question.body}"[:MAX_QUESTION_CHARS]


def site_texts(site: Site) -> list[str]:
    """The texts the semantic feature embeds: every question, and every accepted answer (the two parts of a
    resolved question's search vector, bot/search/vectors.py)."""
    accepted = {q.accepted_answer_id for q in site.questions if q.accepted_answer_id}
    return [question_text(q) for q in site.questions] + [a.body for a in site.answers if a.id in accepted]


def _is_reachable(case: Case) -> bool:
    """Whether any ranker could put the target first: not the asker, and answered before."""
    return case.target != case.asker and any(str(a.owner_id) == case.target for a in case.history)


def _print_table(report: MultiSiteReport) -> None:
    pooled = report.pooled
    print(
        f"expert routing on {pooled['n_test']} {pooled['split']} questions of {len(report.per_site)} site(s) "
        f"({pooled['n_reachable']} with the target among the candidates), history scope: "
        f"{pooled['history_scope']}; the bot DMs k = {pooled['k']}; Peer = PeerLearn, tag- = tag-overlap"
    )
    shown = {name: pair for name, pair in COMPARISONS.items() if name.endswith("tag_overlap")}
    print(format_table(report, COLUMNS, shown, n_label="questions"))
    popularity = ", ".join(f"{label} {pooled[f'popularity_{key}']:.3f}" for label, key in MEASURES)
    scope = "pooled" if len(report.per_site) > 1 else "site"
    print(f"popularity ({scope}): {popularity}; its intervals in --json")
    before = ", ".join(f"{label} {pooled[f'before_{key}']:.3f}" for label, key in MEASURES)
    intervals = pooled["ci95"]
    assert isinstance(intervals, dict)
    gaps = ", ".join(
        f"{label} [{intervals[f'{key}_vs_before'][0]:+.3f}, {intervals[f'{key}_vs_before'][1]:+.3f}]"
        for label, key in MEASURES
    )
    print(f"before (the weights fitted on Cardano alone, {scope}): {before}; PeerLearn minus before, 95 %: {gaps}")


# --------------------------------------------------------------------------------------------------
# Fitting the weights (history part only)
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Choice:
    """One training question: the candidates' standardized features and which one was the target."""

    rows: list[list[float]]
    target: int


def fit_weights(choices: Sequence[_Choice], *, l2: float = FIT_L2, iterations: int = 50) -> list[float]:
    """Conditional-logit maximum likelihood with an L2 penalty, by Newton's method (numpy).

    Minimizes the mean over questions of -log softmax(rows . w)[target], plus l2/2 |w|^2. The problem is
    convex; Newton steps, halved until the loss goes down, converge to the same answer every time.
    """
    if not choices:
        return []
    return [float(w) for w in _fit_design(_Design.of(choices), l2=l2, iterations=iterations)]


def _fit_design(design: _Design, *, l2: float, iterations: int = 50) -> npt.NDArray[np.float64]:
    k = design.rows.shape[1]
    weights = np.zeros(k)
    loss = design.loss(weights, l2)
    for _ in range(iterations):
        gradient, hessian = design.derivatives(weights, l2)
        step = np.linalg.solve(hessian, gradient)
        scale = 1.0
        while True:
            trial = weights - scale * step
            trial_loss = design.loss(trial, l2)
            if trial_loss <= loss or scale < 1e-6:
                break
            scale /= 2
        converged = loss - trial_loss < 1e-10
        weights, loss = trial, min(trial_loss, loss)
        if converged:
            break
    return weights


@dataclass(frozen=True)
class _Design:
    """Every question's candidate rows stacked (one block per question) and where each target row is."""

    rows: npt.NDArray[np.float64]
    starts: npt.NDArray[np.intp]  # first row of each question
    sizes: npt.NDArray[np.intp]
    targets: npt.NDArray[np.intp]  # the target's row

    @classmethod
    def of(cls, choices: Sequence[_Choice]) -> _Design:
        sizes = np.array([len(choice.rows) for choice in choices], dtype=np.intp)
        starts = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.intp)
        rows = np.array([row for choice in choices for row in choice.rows], dtype=np.float64)
        targets = starts + np.array([choice.target for choice in choices], dtype=np.intp)
        return cls(rows, starts, sizes, targets)

    def log_probabilities(self, weights: npt.NDArray[np.float64]) -> tuple[npt.NDArray[np.float64], ...]:
        scores = self.rows @ weights
        scores = scores - np.repeat(np.maximum.reduceat(scores, self.starts), self.sizes)
        exps = np.exp(scores)
        totals = np.add.reduceat(exps, self.starts)
        return scores, exps / np.repeat(totals, self.sizes), np.log(totals)

    def target_log_likelihoods(self, weights: Sequence[float]) -> npt.NDArray[np.float64]:
        scores, _, log_totals = self.log_probabilities(np.asarray(weights, dtype=np.float64))
        return np.asarray(scores[self.targets] - log_totals)

    def loss(self, weights: npt.NDArray[np.float64], l2: float) -> float:
        return float(-self.target_log_likelihoods(weights).mean() + l2 / 2 * weights @ weights)

    def derivatives(
        self, weights: npt.NDArray[np.float64], l2: float
    ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
        n = len(self.starts)
        _, probabilities, _ = self.log_probabilities(weights)
        weighted = probabilities[:, None] * self.rows
        means = np.add.reduceat(weighted, self.starts)  # each question's expected row
        gradient = (means.sum(axis=0) - self.rows[self.targets].sum(axis=0)) / n + l2 * weights
        hessian = (self.rows.T @ weighted - means.T @ means) / n + l2 * np.eye(len(weights))
        return gradient, hessian


def _standardization(tables: Sequence[dict[str, tuple[float, ...]]]) -> tuple[list[float], list[float]]:
    rows = [row for table in tables for row in table.values()]
    k = len(FEATURE_NAMES)
    means = [sum(row[j] for row in rows) / len(rows) for j in range(k)]
    spreads = [math.sqrt(sum((row[j] - means[j]) ** 2 for row in rows) / len(rows)) or 1.0 for j in range(k)]
    return means, spreads


def _fit_raw(cases: Sequence[Case], tables: Sequence[dict[str, tuple[float, ...]]]) -> FeatureWeights:
    """Weights per raw feature unit, fitted on the cases whose target is among the candidates."""
    means, spreads = _standardization(tables)
    choices = []
    for case, table in zip(cases, tables, strict=True):
        if case.target in table:
            users = sorted(table)
            rows = [[(x - m) / s for x, m, s in zip(table[u], means, spreads, strict=True)] for u in users]
            choices.append(_Choice(rows, users.index(case.target)))
    standardized = fit_weights(choices)
    return FeatureWeights(*(float(f"{w / s:.2g}") for w, s in zip(standardized, spreads, strict=True)))


@dataclass(frozen=True, slots=True)
class FitResult:
    weights: FeatureWeights
    questions: int
    fitted: int  # questions whose target was among the candidates
    cv: dict[str, Metrics]  # per ranker, over all held-out blocks
    cv_folds: list[tuple[int, float]]  # (questions, PeerLearn P@1) per block


def fit(data: Path, *, history_scope: str = "all") -> FitResult:
    """Fit the weights on the rolling split of the history part; cross-validate over time on it."""
    bench = Benchmark(load_site(data), history_scope=history_scope, split="rolling")
    cases = bench.cases
    tables = [bench.features(case) for case in cases]
    ranks: dict[str, list[int | None]] = {"peerlearn": [], "tag_overlap": [], "popularity": []}
    folds = []
    for fold in range(CV_FOLDS):
        low, high = len(cases) * fold // CV_FOLDS, len(cases) * (fold + 1) // CV_FOLDS
        train = [i for i in range(len(cases)) if not low <= i < high]
        params = replace(DEFAULT_PARAMS, weights=_fit_raw([cases[i] for i in train], [tables[i] for i in train]))
        held_out = cases[low:high]
        fold_ranks = bench.ranks(partial(bench.peerlearn, params=params), held_out)
        ranks["peerlearn"] += fold_ranks
        ranks["tag_overlap"] += bench.ranks(bench.tag_overlap, held_out)
        ranks["popularity"] += bench.ranks(bench.popularity, held_out)
        folds.append((high - low, metrics(fold_ranks).p_at_1))
    return FitResult(
        weights=_fit_raw(cases, tables),
        questions=len(cases),
        fitted=sum(case.target in table for case, table in zip(cases, tables, strict=True)),
        cv={name: metrics(r) for name, r in ranks.items()},
        cv_folds=folds,
    )


def _print_fit(result: FitResult) -> None:
    print(
        f"fitted on {result.fitted} of {result.questions} rolling history questions "
        "(in the others the target was not a candidate)"
    )
    print("LEARNED_WEIGHTS = FeatureWeights(")
    for name in FEATURE_NAMES:
        print(f"    {name}={getattr(result.weights, name)!r},")
    print(")")
    print(f"blocked {CV_FOLDS}-fold cross-validation over time on the same questions (fit on the other blocks):")
    print(f"{'ranker':<12} {'P@1':>6} {'MRR':>6} {'Hit@5':>6}")
    for label, key in (("PeerLearn", "peerlearn"), ("tag-overlap", "tag_overlap"), ("popularity", "popularity")):
        m = result.cv[key]
        print(f"{label:<12} {m.p_at_1:>6.3f} {m.mrr:>6.3f} {m.hit_at_5:>6.3f}")
    print("PeerLearn P@1 per block:", ", ".join(f"{p1:.3f} ({n} questions)" for n, p1 in result.cv_folds))


def _fit_json(result: FitResult) -> dict[str, object]:
    return {
        "weights": {name: getattr(result.weights, name) for name in FEATURE_NAMES},
        "questions": result.questions,
        "fitted": result.fitted,
        "cv": {name: {k: round(v, 3) for k, v in asdict(m).items()} for name, m in result.cv.items()},
    }


# --------------------------------------------------------------------------------------------------
# Fitting across sites (--fit-sites): leave-one-site-out cross-validation, then the test splits once
# --------------------------------------------------------------------------------------------------

# Measured beside the ranker's features: the cosine between the question's vector and the search vectors of
# what the candidate answered (their last text_records answers on resolved questions): the mean and the max.
SEMANTIC_FEATURES = ("similar_mean", "similar_max")
L2_GRID = (0.01, 0.1, 0.3, 1.0, 3.0)
NO_EXPERTISE = math.log(DEFAULT_PARAMS.expertise_prior)  # the expertise feature of someone with none


class Semantic:
    """The semantic features of one site: each question's vector (what /ask embeds) and each resolved
    question's search vector, normalise(v(question) + ANSWER_WEIGHT x v(accepted answer)) as
    bot/search/vectors.py stores it. Dumps do not date acceptances: "resolved" is the final state, as for the
    ranker's "accepted"."""

    def __init__(self, site: Site, cache: VectorCache) -> None:
        questions = list(site.questions)
        self.row = {question.id: i for i, question in enumerate(questions)}
        self.queries = cache.embed([question_text(question) for question in questions])
        bodies = {answer.id: answer.body for answer in site.answers}
        resolved = [i for i, q in enumerate(questions) if q.accepted_answer_id in bodies]
        documents = self.queries.copy()
        if resolved:
            accepted = cache.embed([bodies[questions[i].accepted_answer_id or -1] for i in resolved])
            documents[resolved] += ANSWER_WEIGHT * accepted
        documents /= np.maximum(np.linalg.norm(documents, axis=1, keepdims=True), 1e-12)
        self.documents = documents
        self.resolved = np.zeros(len(questions), dtype=bool)
        self.resolved[resolved] = True

    def features(self, case: Case, limit: int = DEFAULT_PARAMS.text_records) -> dict[str, tuple[float, float]]:
        """Per candidate: (mean, max) cosine over the resolved questions among their last `limit` answers."""
        cosines = self.documents @ self.queries[self.row[case.question.id]]
        answered: dict[str, list[int]] = defaultdict(list)
        for answer in case.history:  # oldest first
            answered[str(answer.owner_id)].append(self.row[answer.parent_id])
        result = {}
        for user_id, rows in answered.items():
            values = [float(cosines[row]) for row in rows[-limit:] if self.resolved[row]]
            if values:
                result[user_id] = (sum(values) / len(values), max(values))
        return result


@dataclass(frozen=True, eq=False)
class SiteTables:
    """One site's questions of a split, each candidate's features (in `names` order), the baselines' ranks."""

    name: str
    cases: list[Case]
    names: tuple[str, ...]
    tables: list[dict[str, tuple[float, ...]]]
    baselines: dict[str, list[int | None]]

    @cached_property
    def _blocks(self) -> tuple[npt.NDArray[np.float64], list[int], list[int], list[int | None]]:
        """Every question's candidates' rows stacked (users sorted: ties break by user id), where each question's
        rows start, how many, and the target's place among them (None: not a candidate)."""
        rows: list[tuple[float, ...]] = []
        starts, sizes, targets = [], [], []
        for case, table in zip(self.cases, self.tables, strict=True):
            ordered = sorted(table)
            starts.append(len(rows))
            sizes.append(len(ordered))
            targets.append(ordered.index(case.target) if case.target in table else None)
            rows += [table[user] for user in ordered]
        matrix = np.array(rows, dtype=np.float64).reshape(len(rows), len(self.names))
        return matrix, starts, sizes, targets

    def design(self, columns: Sequence[int]) -> _Design:
        """The questions whose target is a candidate, as a design over these feature columns."""
        matrix, starts, sizes, targets = self._blocks
        keep = [i for i, target in enumerate(targets) if target is not None]
        parts = [matrix[starts[i] : starts[i] + sizes[i], columns] for i in keep]
        block_sizes = np.array([sizes[i] for i in keep], dtype=np.intp)
        block_starts = np.concatenate([[0], np.cumsum(block_sizes)[:-1]]).astype(np.intp)
        chosen = np.array([targets[i] or 0 for i in keep], dtype=np.intp)
        rows = np.concatenate(parts) if parts else np.zeros((0, len(columns)))
        return _Design(rows, block_starts, block_sizes, block_starts + chosen)

    def ranks(self, columns: Sequence[int], weights: Sequence[float]) -> list[int | None]:
        """Each question's target rank in the ranker's order (``ranking_by``, vectorized)."""
        matrix, starts, sizes, targets = self._blocks
        scores = matrix[:, columns] @ np.asarray(weights, dtype=np.float64)
        result: list[int | None] = []
        for start, size, target in zip(starts, sizes, targets, strict=True):
            if target is None:
                result.append(None)
                continue
            score, expertise = scores[start : start + size], matrix[start : start + size, 0]
            none = expertise <= NO_EXPERTISE
            t_none, t_score, t_expertise = none[target], score[target], expertise[target]
            same_group, same_score = none == t_none, score == t_score
            ahead = (none < t_none) | (
                same_group
                & (
                    (score > t_score)
                    | (
                        same_score
                        & ((expertise > t_expertise) | ((expertise == t_expertise) & (np.arange(size) < target)))
                    )
                )
            )
            result.append(int(ahead.sum()) + 1)
        return result


def site_tables(folder: Path, *, split: str, cache: VectorCache | None) -> SiteTables:
    site = load_site(folder)
    bench = Benchmark(site, split=split)
    semantic = Semantic(site, cache) if cache is not None else None
    names = FEATURE_NAMES + (SEMANTIC_FEATURES if semantic is not None else ())
    tables = []
    for case in bench.cases:
        base = bench.features(case)
        extra = semantic.features(case) if semantic is not None else {}
        tables.append({user: row + extra.get(user, (0.0, 0.0))[: len(names) - len(row)] for user, row in base.items()})
    baselines = {"tag_overlap": bench.ranks(bench.tag_overlap), "popularity": bench.ranks(bench.popularity)}
    return SiteTables(site_name(folder), bench.cases, names, tables, baselines)


def ranking_by(table: dict[str, tuple[float, ...]], weights: Sequence[float], columns: Sequence[int]) -> list[str]:
    """The ranker's order (bot/routing/ranker.py) from features and weights: those with expertise first, then
    by score, expertise, user id."""

    def key(user_id: str) -> tuple[bool, float, float, str]:
        row = table[user_id]
        score = sum(w * row[c] for w, c in zip(weights, columns, strict=True))
        return (row[0] <= NO_EXPERTISE, -score, -row[0], user_id)

    return sorted(table, key=key)


@dataclass(frozen=True)
class Trial:
    """One feature set and penalty, fitted on all the sites but one and measured on that one, for each site."""

    features: tuple[str, ...]
    l2: float
    log_likelihood: dict[str, float]  # held-out site -> mean log-likelihood of its targets (reachable ones)
    ranks: dict[str, list[int | None]]  # held-out site -> its questions' target ranks

    def pooled_log_likelihood(self, sites: Sequence[SiteTables]) -> float:
        counts = {site.name: sum(c.target in t for c, t in zip(site.cases, site.tables, strict=True)) for site in sites}
        return sum(self.log_likelihood[name] * n for name, n in counts.items()) / (sum(counts.values()) or 1)


def fit_on(sites: Sequence[SiteTables], features: Sequence[str], l2: float) -> list[float]:
    """Weights per raw feature unit, fitted on these sites' questions together (standardized features)."""
    columns = [sites[0].names.index(name) for name in features]
    designs = [site.design(columns) for site in sites]
    rows = np.concatenate([design.rows for design in designs])
    means, spreads = rows.mean(axis=0), rows.std(axis=0)
    spreads[spreads == 0] = 1.0
    offsets = np.cumsum([0] + [len(design.rows) for design in designs[:-1]])
    pooled = _Design(
        (rows - means) / spreads,
        np.concatenate([d.starts + o for d, o in zip(designs, offsets, strict=True)]),
        np.concatenate([d.sizes for d in designs]),
        np.concatenate([d.targets + o for d, o in zip(designs, offsets, strict=True)]),
    )
    return [float(w) for w in _fit_design(pooled, l2=l2) / spreads]


def held_out(site: SiteTables, features: Sequence[str], weights: Sequence[float]) -> tuple[float, list[int | None]]:
    """A site's mean target log-likelihood under these weights, and its questions' target ranks."""
    columns = [site.names.index(name) for name in features]
    design = site.design(columns)
    likelihood = float(design.target_log_likelihoods(weights).mean()) if len(design.starts) else 0.0
    return likelihood, site.ranks(columns, weights)


def cross_validate(sites: Sequence[SiteTables], features: Sequence[str], l2: float) -> Trial:
    likelihoods, ranks = {}, {}
    for site in sites:
        weights = fit_on([other for other in sites if other is not site], features, l2)
        likelihoods[site.name], ranks[site.name] = held_out(site, features, weights)
    return Trial(tuple(features), l2, likelihoods, ranks)


def feature_sets(names: Sequence[str]) -> list[tuple[str, ...]]:
    """The eight; the eight without each one; the eight with each semantic feature (when measured)."""
    sets = [FEATURE_NAMES]
    sets += [tuple(n for n in FEATURE_NAMES if n != dropped) for dropped in FEATURE_NAMES]
    sets += [(*FEATURE_NAMES, extra) for extra in SEMANTIC_FEATURES if extra in names]
    return sets


@dataclass(frozen=True)
class CrossSiteFit:
    trials: list[Trial]
    chosen: Trial
    before: Trial  # the Cardano weights on each site (no fit: in-sample on Cardano's history)
    weights: dict[str, float]  # the chosen set fitted on every site, rounded to two significant digits
    test: MultiSiteReport  # the test splits: the new weights, the Cardano ones, the baselines
    rolling: list[SiteTables]


def fit_sites(folders: Sequence[Path], cache: VectorCache | None) -> CrossSiteFit:
    rolling = [site_tables(folder, split="rolling", cache=cache) for folder in folders]
    trials = [cross_validate(rolling, features, l2) for features in feature_sets(rolling[0].names) for l2 in L2_GRID]
    chosen = max(trials, key=lambda trial: trial.pooled_log_likelihood(rolling))
    before_weights = [getattr(CARDANO_WEIGHTS, name) for name in FEATURE_NAMES]
    before = {site.name: held_out(site, FEATURE_NAMES, before_weights) for site in rolling}
    before_trial = Trial(
        FEATURE_NAMES, FIT_L2, {n: v[0] for n, v in before.items()}, {n: v[1] for n, v in before.items()}
    )
    fitted = fit_on(rolling, chosen.features, chosen.l2)
    weights = {name: float(f"{w:.2g}") for name, w in zip(chosen.features, fitted, strict=True)}
    test = [site_tables(folder, split="test", cache=cache) for folder in folders]
    return CrossSiteFit(trials, chosen, before_trial, weights, _test_report(test, weights), rolling)


FIT_COMPARISONS = {
    f"{measure}_vs_{baseline}": (measure, f"{baseline}_{measure}")
    for baseline in ("before", "tag_overlap")
    for measure in ("p_at_1", "mrr", "hit_at_k", "hit_at_5")
}


def _test_report(sites: Sequence[SiteTables], weights: Mapping[str, float]) -> MultiSiteReport:
    features = list(weights)
    before = [getattr(CARDANO_WEIGHTS, name) for name in FEATURE_NAMES]
    values = []
    for site in sites:
        _, new_ranks = held_out(site, features, [weights[name] for name in features])
        _, before_ranks = held_out(site, FEATURE_NAMES, before)
        columns: dict[str, list[float]] = {}
        for prefix, ranks in (
            ("", new_ranks),
            ("before_", before_ranks),
            ("tag_overlap_", site.baselines["tag_overlap"]),
        ):
            rows = per_question(ranks)
            for index, name in enumerate(("p_at_1", "mrr", "hit_at_5", "hit_at_k")):
                columns[prefix + name] = [row[index] for row in rows]
        values.append(SiteValues(site.name, columns))
    return build_report(values, FIT_COMPARISONS, digits=3)


def _measures(ranks: Sequence[int | None]) -> str:
    m = metrics(ranks)
    return f"{m.p_at_1:>6.3f} {m.mrr:>6.3f} {m.hit_at_k:>6.3f}"


def _print_fit_sites(result: CrossSiteFit) -> None:
    sites = result.rolling
    names = [site.name for site in sites]
    n_questions = sum(len(site.cases) for site in sites)
    print(
        f"fit across {len(sites)} sites: {n_questions} rolling history questions; leave-one-site-out "
        f"cross-validation (fit on {len(sites) - 1} sites, measure the eighth), held-out figures pooled"
    )
    print(f"{'features':<34} {'L2':>5} {'loglik':>7} {'P@1':>6} {'MRR':>6} {f'Hit@{ROUTE_TOP_N}':>6}")

    def pooled(trial: Trial) -> list[int | None]:
        return [rank for name in names for rank in trial.ranks[name]]

    for trial in result.trials:
        label = _set_label(trial.features)
        print(f"{label:<34} {trial.l2:>5g} {trial.pooled_log_likelihood(sites):>7.3f} {_measures(pooled(trial))}")
    label = "Cardano weights (in-sample there)"
    print(f"{label:<34} {'':>5} {result.before.pooled_log_likelihood(sites):>7.3f} {_measures(pooled(result.before))}")
    chosen = result.chosen
    print(f"chosen (best held-out log-likelihood): {_set_label(chosen.features)}, L2 {chosen.l2:g}")
    print(f"per held-out site: chosen vs Cardano weights vs tag-overlap (loglik, P@1, MRR, Hit@{ROUTE_TOP_N})")
    better = worse = 0
    for site in sites:
        new, old = chosen.ranks[site.name], result.before.ranks[site.name]
        gain = chosen.log_likelihood[site.name] - result.before.log_likelihood[site.name]
        better, worse = better + (gain > 0), worse + (gain < 0)
        print(
            f"  {site.name:<18} {chosen.log_likelihood[site.name]:>7.3f} {_measures(new)} | "
            f"{result.before.log_likelihood[site.name]:>7.3f} {_measures(old)} | "
            f"{_measures(site.baselines['tag_overlap'])}"
        )
    print(f"held-out log-likelihood better than the Cardano weights' on {better} sites, worse on {worse}")
    print("each feature set at its best L2 against the eight at theirs (held-out log-likelihood per site):")
    best: dict[tuple[str, ...], Trial] = {}
    for trial in result.trials:
        known = best.get(trial.features)
        if known is None or trial.pooled_log_likelihood(sites) > known.pooled_log_likelihood(sites):
            best[trial.features] = trial
    eight = best[FEATURE_NAMES]
    for features, trial in best.items():
        if features == FEATURE_NAMES:
            continue
        gains = [trial.log_likelihood[name] - eight.log_likelihood[name] for name in names]
        gain = trial.pooled_log_likelihood(sites) - eight.pooled_log_likelihood(sites)
        new, old = metrics(pooled(trial)), metrics(pooled(eight))
        print(
            f"  {_set_label(features):<32} L2 {trial.l2:<4g} better on {sum(g > 0 for g in gains)} sites, "
            f"worse on {sum(g < 0 for g in gains)}; pooled loglik {gain:+.3f}, P@1 {new.p_at_1 - old.p_at_1:+.3f}, "
            f"MRR {new.mrr - old.mrr:+.3f}, Hit@{ROUTE_TOP_N} {new.hit_at_k - old.hit_at_k:+.3f}"
        )
    print("fitted on every site's rolling questions:")
    print("  " + ", ".join(f"{name}={weight!r}" for name, weight in result.weights.items()))
    print("test splits, evaluated once: the fitted weights (Peer) vs the Cardano ones (befo) and tag-overlap")
    columns = tuple(
        Column(f"{label[:4]} {measure}", f"{prefix}{key}", 11)
        for prefix, label in (("", "Peer"), ("before_", "before"), ("tag_overlap_", "tag-"))
        for measure, key in MEASURES[:3]
    )
    print(format_table(result.test, columns, FIT_COMPARISONS, n_label="questions"))


def _set_label(features: Sequence[str]) -> str:
    if tuple(features) == FEATURE_NAMES:
        return "the eight"
    missing = [name for name in FEATURE_NAMES if name not in features]
    extra = [name for name in features if name not in FEATURE_NAMES]
    return "the eight" + "".join(f" - {name}" for name in missing) + "".join(f" + {name}" for name in extra)


def _fit_sites_json(result: CrossSiteFit) -> dict[str, object]:
    sites = result.rolling

    def trial_json(trial: Trial) -> dict[str, object]:
        ranks = [rank for site in sites for rank in trial.ranks[site.name]]
        return {
            "features": list(trial.features),
            "l2": trial.l2,
            "log_likelihood": round(trial.pooled_log_likelihood(sites), 4),
            "per_site_log_likelihood": {name: round(v, 4) for name, v in trial.log_likelihood.items()},
            "per_site": {
                name: {k: round(v, 3) for k, v in asdict(metrics(r)).items()} for name, r in trial.ranks.items()
            },
        } | {k: round(v, 3) for k, v in asdict(metrics(ranks)).items()}

    return {
        "trials": [trial_json(trial) for trial in result.trials],
        "chosen": trial_json(result.chosen),
        "before": trial_json(result.before),
        "weights": result.weights,
        "test": result.test.as_json(),
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_site_arguments(parser)
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
    parser.add_argument(
        "--fit",
        action="store_true",
        help="fit the ranker's weights on the rolling history split (never the tests) and cross-validate them "
        "(one site)",
    )
    parser.add_argument(
        "--fit-sites",
        action="store_true",
        help="fit the weights on every site's rolling history together, choose the features and the L2 penalty "
        "by leave-one-site-out cross-validation, then evaluate once on the test splits",
    )
    parser.add_argument(
        "--vector-cache",
        type=Path,
        help="with --fit-sites: measure the semantic features too, the texts' vectors kept in this file "
        "(bench/vector_cache.py fills it)",
    )
    args = parser.parse_args(argv)
    folders = site_folders(parser, args)
    if args.fit_sites:
        result = fit_sites(folders, VectorCache(args.vector_cache) if args.vector_cache else None)
        if args.json:
            print(json.dumps(_fit_sites_json(result)))
        else:
            _print_fit_sites(result)
        return 0
    if args.fit and len(folders) > 1:
        parser.error("--fit takes one site")
    try:
        if args.fit:
            fitted = fit(folders[0], history_scope=args.history_scope)
            if args.json:
                print(json.dumps(_fit_json(fitted)))
            else:
                _print_fit(fitted)
            return 0
        report = evaluate(folders, history_scope=args.history_scope, split=args.split)
    except FileNotFoundError as error:
        parser.error(str(error))
    if args.json:
        print(json.dumps(report.as_json()))
    else:
        _print_table(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
