"""Search quality on Stack Exchange dumps: do similar questions find the ones people linked by hand?

    python bench/search.py --data DIR [DIR ...] [--all-sites DIR] [--json] [--database-url URL]

The dump's questions go into a real store (migrated with the app's migrations, written through the
models, so the search index is filled by the same triggers the bot relies on) as one workspace's
public-channel questions. A question counts as answered when it has an accepted answer or, failing
that, a positively scored answer (the best one stands in for the accepted answer); only those are
searchable, as in the bot.

Queries: every question with a "linked" or "duplicate" link (PostLinks.xml, LinkTypeId 1 or 3; a link
counts both ways) to another answered question. Each query is the question's title and tags, run through
`bot.search.search_similar` exactly as the bot calls it, excluding the question itself. Reported:
Recall@3 (a linked question is among the 3 hits the asker would see) and MRR over the top 10, next to a
plain BM25 (k1=1.2, b=0.75) over the same documents computed in the same run, plus query latency.

The search is the hybrid one (full text and vectors, bot/search/__init__.py): every document's vector is
computed first, as `python app.py reindex` does (timed: documents per second), and each query's vector once
(its time is reported apart from the search's). Two rankings are reported beside it, from the same
candidates: "full text" (the full-text candidates ranked alone, the search before vectors) and "re-rank"
(the vectors only re-score the full-text candidates, no nearest-neighbour candidates).

Relevance floor (issue 22, section 5): suggestions after /ask show only hits scoring at least
bot.search.SUGGESTION_FLOOR. Reported per site and pooled: Recall@3 counting only the hits above the floor,
and the false suggestion rate: how often anything is above it for questions from another site (surely
unrelated: FOREIGN_QUERIES questions of the next site in the list, searched in this site's store). The
Recall@3 and MRR above are measured without the floor. `--fit` chooses the weights and the floor again,
leave one site out: for each site, the weights (and the floor) that do best on the other sites are measured
on it; the table shows what that gives on each held-out site and which were chosen on all sites together.
`--column-weights T,B,G [...]` sets the full text's weights of the question text, the accepted answer and the
tags (bot/search/fulltext.py); given several, every site is measured with each, the figures shown are the
first's, and each setting's pooled figures follow, with the one chosen leaving one site out (its per-site sums
are in `--json`, so that the runs on both databases can be combined into one choice).

Each site is measured in its own store; with several sites the table and `--json` give each site and the
pooled figures (query-weighted), with 95 % paired bootstrap intervals of the differences to BM25 (see
bench/sites.py). A site without PostLinks.xml has no queries and is reported with none.

--database-url defaults to a temporary SQLite file per site (a SQLite URL is used as given: name a new file,
and one site only). With a PostgreSQL URL, a scratch database per site is created next to the one named
(which is only used to connect) and dropped afterwards.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import pickle
import re
import sys
import tempfile
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from bench.sites import (
    Column,
    MultiSiteReport,
    SiteValues,
    add_site_arguments,
    build_report,
    format_table,
    site_folders,
    site_name,
)
from bench.stackexchange import LINK_TYPE_DUPLICATE, LINK_TYPE_LINKED, Site, load_site
from bot.embedding import one_blas_thread
from bot.search import (
    STOPWORDS,
    SUGGESTION_FLOOR,
    Candidate,
    Weights,
    candidates,
    embed_query,
    fulltext,
    ranked,
    search_similar,
    vectors,
)
from bot.text import MAX_QUESTION_CHARS
from models.migrate import upgrade_to_head
from models.question import STATUS_OPEN, STATUS_RESOLVED, Answer, Question, QuestionTag
from models.session import Store, normalize_url

TEAM_ID = "T_BENCH"
CHANNEL_ID = "C_BENCH"
TOP_K = 3  # what the asker sees
MRR_DEPTH = 10
BM25_K1, BM25_B = 1.2, 0.75
FOREIGN_QUERIES = 100  # questions of another site searched in each store (the false suggestion rate)
FALSE_SUGGESTION_TARGET = 0.2  # issue 22: something shown for fewer than 1 in 5 unrelated questions


@dataclass(frozen=True)
class Document:
    """An answered question as the search index sees it."""

    se_id: int
    text: str  # title and body, as a question in the bot would read
    answer_id: int
    answer: str
    tags: tuple[str, ...]


@dataclass(frozen=True)
class Query:
    se_id: int
    title: str
    tags: tuple[str, ...]
    relevant: frozenset[int]  # linked answered questions (Stack Exchange ids)


# --- the data ------------------------------------------------------------------------------------


def answered_documents(site: Site) -> dict[int, Document]:
    """Answered questions: the accepted answer, else the best positively scored one."""
    answers_by_id = {answer.id: answer for answer in site.answers}
    best: dict[int, tuple[int, int]] = {}  # question id -> (score, answer id) of its best positive answer
    for answer in site.answers:
        if answer.score > 0 and (answer.parent_id not in best or answer.score > best[answer.parent_id][0]):
            best[answer.parent_id] = (answer.score, answer.id)
    documents: dict[int, Document] = {}
    for question in site.questions:
        accepted = answers_by_id.get(question.accepted_answer_id or -1)
        if accepted is None and question.id in best:
            accepted = answers_by_id[best[question.id][1]]
        if accepted is not None:
            documents[question.id] = Document(
                question.id, question_text(question), accepted.id, accepted.body, question.tags
            )
    return documents


def question_text(question) -> str:  # type: ignore[no-untyped-def]
    return f"{question.title}\n\n{question.body}"[:MAX_QUESTION_CHARS]


def link_queries(site: Site, documents: dict[int, Document]) -> list[Query]:
    related: dict[int, set[int]] = defaultdict(set)
    for link in site.links:
        if link.link_type in (LINK_TYPE_LINKED, LINK_TYPE_DUPLICATE) and link.post_id != link.related_post_id:
            related[link.post_id].add(link.related_post_id)
            related[link.related_post_id].add(link.post_id)
    queries = []
    for question in site.questions:
        relevant = frozenset(se_id for se_id in related.get(question.id, ()) if se_id in documents)
        if relevant:
            queries.append(Query(question.id, question.title, question.tags, relevant))
    return queries


def fill_store(store: Store, site: Site, documents: dict[int, Document]) -> dict[int, int]:
    """Write every question and answer through the models; returns Stack Exchange id -> question id."""
    with store.session() as session:
        questions = {
            q.id: Question(
                team_id=TEAM_ID,
                channel_id=CHANNEL_ID,
                channel_private=False,
                asker_id=f"U{q.owner_id or 0}",
                text=question_text(q),
                status=STATUS_OPEN,
                message_ts=f"{q.id}.000000",
                request_key=f"se-{q.id}",
                created_at=q.created,
                tags=[QuestionTag(tag=tag, team_id=TEAM_ID, position=i) for i, tag in enumerate(dict.fromkeys(q.tags))],
            )
            for q in site.questions
        }
        session.add_all(questions.values())
        session.flush()
        answers = {
            a.id: Answer(
                team_id=TEAM_ID,
                question_id=questions[a.parent_id].id,
                channel_id=CHANNEL_ID,
                ts=f"{a.id}.000001",
                user_id=f"U{a.owner_id or 0}",
                text=a.body,
                created_at=a.created,
            )
            for a in site.answers
            if a.parent_id in questions
        }
        session.add_all(answers.values())
        session.flush()
        for se_id, document in documents.items():
            question = questions[se_id]
            question.accepted_answer_id = answers[document.answer_id].id
            question.status = STATUS_RESOLVED
            question.resolved_at = question.created_at
        return {se_id: question.id for se_id, question in questions.items()}


# --- PeerLearn's rankings ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Found:
    """One candidate of one query: its Stack Exchange id and what its score is made of."""

    se_id: int
    candidate: Candidate


class CachedEmbed:
    """The embedding model's `embed`, remembering each text's vector (in a file, with --vector-cache), so the
    second database's run and a rerun compute nothing twice. The reindex rate is measured without it."""

    def __init__(self, embed: vectors.Embed, path: Path | None) -> None:
        self.embed = embed
        self.path = path
        self.known: dict[str, object] = {}
        if path is not None and path.exists():
            with path.open("rb") as cache:
                self.known = pickle.load(cache)
        self.computed = 0

    def __call__(self, texts: Sequence[str]):  # type: ignore[no-untyped-def]
        import numpy as np

        keys = [hashlib.sha256(f"{vectors.model_name()}\0{text}".encode()).hexdigest() for text in texts]
        todo = sorted({i for i, key in enumerate(keys) if key not in self.known}, key=keys.__getitem__)
        todo_texts = list({keys[i]: texts[i] for i in todo}.items())
        if todo_texts:
            computed = self.embed([text for _, text in todo_texts])
            self.computed += len(todo_texts)
            for (key, _), vector in zip(todo_texts, computed, strict=True):
                self.known[key] = np.asarray(vector, dtype=np.float32)
        return np.stack([self.known[key] for key in keys]) if keys else np.zeros((0, 384), np.float32)

    def save(self) -> None:
        if self.path is not None and self.computed:
            with self.path.open("wb") as cache:
                pickle.dump(self.known, cache)


def query_candidates(store: Store, query_text: str, tags: Sequence[str], question_id: int | None, vector) -> list:  # type: ignore[no-untyped-def]
    with store.session() as session:
        return candidates(
            session,
            team_id=TEAM_ID,
            text=query_text,
            tags=tags,
            viewer_channel_id=CHANNEL_ID,
            enough=MRR_DEPTH,
            exclude_question_id=question_id,
            query_vector=vector,
        )


def peerlearn_ranking(store: Store, query: Query, question_id: int | None, vector) -> list[int]:  # type: ignore[no-untyped-def]
    """What the bot shows (bot ids), as it runs the search (the question's vector given: timed apart)."""
    with store.session() as session:
        hits = search_similar(
            session,
            team_id=TEAM_ID,
            text=query.title,
            tags=query.tags,
            viewer_channel_id=CHANNEL_ID,
            limit=MRR_DEPTH,
            exclude_question_id=question_id,
            query_vector=vector,
        )
    return [hit.id for hit in hits]


MODES = ("hybrid", "fulltext", "rerank")


def ranking_of(found: Sequence[Found], weights: Weights, mode: str = "hybrid") -> list[tuple[int, float]]:
    """(Stack Exchange id, score) best first: "hybrid" as the bot ranks; "fulltext": the full text's
    candidates alone (the search before vectors); "rerank": the full text's candidates scored with vectors."""
    by_candidate = {id(f.candidate): f.se_id for f in found}
    if mode == "fulltext":
        pool = [
            Candidate(c.document_id, c.kind, c.ref_id, c.text_part, None, c.tag_matches)
            for f in found
            if (c := f.candidate).text_part > 0
        ]
        by_candidate = {
            id(c): f.se_id for c, f in zip(pool, [f for f in found if f.candidate.text_part > 0], strict=True)
        }
    elif mode == "rerank":
        pool = [f.candidate for f in found if f.candidate.text_part > 0]
    else:
        pool = [f.candidate for f in found]
    return [(by_candidate[id(candidate)], score) for candidate, score in ranked(pool, weights)]


_WORD = re.compile(r"[^\W_]+")


def tokens(text: str) -> list[str]:
    return [word for word in _WORD.findall(text.casefold()) if word not in STOPWORDS]


class BM25:
    """Okapi BM25 over whole documents (question, accepted answer and tags as one text), no stemming."""

    def __init__(self, documents: Sequence[Document], k1: float = BM25_K1, b: float = BM25_B) -> None:
        self.k1, self.b = k1, b
        self.ids = [doc.se_id for doc in documents]
        self.tfs = [Counter(tokens(" ".join([doc.text, doc.answer, *doc.tags]))) for doc in documents]
        self.lengths = [sum(tf.values()) for tf in self.tfs]
        self.avg_length = sum(self.lengths) / max(len(self.lengths), 1)
        df: Counter[str] = Counter()
        for tf in self.tfs:
            df.update(tf.keys())
        n = len(documents)
        self.idf = {term: math.log(1 + (n - count + 0.5) / (count + 0.5)) for term, count in df.items()}

    def rank(self, query: str, exclude: int, depth: int) -> list[int]:
        terms = [term for term in dict.fromkeys(tokens(query)) if term in self.idf]
        scored = []
        for se_id, tf, length in zip(self.ids, self.tfs, self.lengths, strict=True):
            if se_id == exclude:
                continue
            norm = self.k1 * (1 - self.b + self.b * length / self.avg_length)
            score = sum(self.idf[t] * tf[t] * (self.k1 + 1) / (tf[t] + norm) for t in terms if t in tf)
            if score > 0:
                scored.append((-score, se_id))
        return [se_id for _, se_id in sorted(scored)[:depth]]


# --- measuring ---------------------------------------------------------------------------------------

COMPARISONS = {
    "recall_at_3_vs_bm25": ("recall_at_3", "bm25_recall_at_3"),
    "mrr_vs_bm25": ("mrr", "bm25_mrr"),
    "recall_at_3_vs_fulltext": ("recall_at_3", "fulltext_recall_at_3"),
    "mrr_vs_fulltext": ("mrr", "fulltext_mrr"),
}


def progress(message: str) -> None:
    """On stderr, so that --json keeps standard output to the one JSON object."""
    print(message, file=sys.stderr, flush=True)


def first_relevant(ranking: Sequence[int], relevant: frozenset[int]) -> int | None:
    """The rank (from 1) of the first relevant hit within the top MRR_DEPTH, or None."""
    return next((rank for rank, se_id in enumerate(ranking[:MRR_DEPTH], 1) if se_id in relevant), None)


def query_values(rank: int | None) -> tuple[float, float]:
    """(hit in the top TOP_K, reciprocal rank) of one query."""
    return (1.0 if rank is not None and rank <= TOP_K else 0.0), (1 / rank if rank else 0.0)


def percentile(values: Sequence[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(fraction * len(ordered)) - 1)] if ordered else 0.0


@dataclass
class SiteRun:
    """Everything measured on one site's store; the figures for given weights and floor come from it."""

    name: str
    own: list[tuple[Query, list[Found]]]  # the site's linked questions, each with its candidates
    foreign: list[list[Found]]  # another site's questions searched here, each with its candidates
    bm25: list[tuple[float, float]]  # BM25's (hit in the top 3, reciprocal rank) per own query
    facts: dict[str, str | int | float]
    search_ms: list[float]
    embed_ms: list[float]


def measure_site(data: Path, database_url: str, foreign_queries: Sequence[Query], embed: CachedEmbed) -> SiteRun:
    """Fill one site's store (and its vectors), then search its own queries and the foreign ones."""
    site = load_site(data)
    documents = answered_documents(site)
    queries = link_queries(site, documents)
    store = Store.from_url(database_url)
    own: list[tuple[Query, list[Found]]] = []
    foreign: list[list[Found]] = []
    bm25_values: list[tuple[float, float]] = []
    search_ms: list[float] = []
    embed_ms: list[float] = []
    disagreements = 0
    try:
        upgrade_to_head(store.engine)
        started = time.perf_counter()
        store_ids = fill_store(store, site, documents)
        load_seconds = time.perf_counter() - started
        computed_before = embed.computed
        started = time.perf_counter()
        with store.session() as session:
            n_vectors = vectors.fill_missing(session, embed, batch=64)
        vector_seconds = time.perf_counter() - started
        if store.dialect == "postgresql":
            # The statistics autovacuum keeps (the search's pruning and its terms' weights read them), read
            # now rather than whenever autovacuum comes by, so that a run does not depend on its timing.
            with store.engine.begin() as connection:
                connection.execute(text("ANALYZE search_documents"))
        question_se_id = {question_id: se_id for se_id, question_id in store_ids.items()}

        def found(text: str, tags: Sequence[str], question_id: int | None, vector) -> list[Found]:  # type: ignore[no-untyped-def]
            return [
                Found(question_se_id[c.ref_id], c) for c in query_candidates(store, text, tags, question_id, vector)
            ]

        bm25 = BM25(list(documents.values()))
        for query in queries:
            started = time.perf_counter()
            vector = embed_query(query.title) if embed.path is None else embed([query.title])[0]
            embed_ms.append((time.perf_counter() - started) * 1000)
            question_id = store_ids.get(query.se_id)
            started = time.perf_counter()
            shown = peerlearn_ranking(store, query, question_id, vector)
            search_ms.append((time.perf_counter() - started) * 1000)
            candidates_found = found(query.title, query.tags, question_id, vector)
            own.append((query, candidates_found))
            expected = [se_id for se_id, _ in ranking_of(candidates_found, Weights())[:MRR_DEPTH]]
            disagreements += [question_se_id[i] for i in shown] != expected
            baseline = bm25.rank(" ".join([query.title, *query.tags]), query.se_id, MRR_DEPTH)
            bm25_values.append(query_values(first_relevant(baseline, query.relevant)))
        for query in foreign_queries:
            vector = embed([query.title])[0]
            foreign.append(found(query.title, query.tags, None, vector))
        dialect = store.dialect
    finally:
        store.dispose()
    if disagreements:
        progress(
            f"warning: {site_name(data)}: the bot's ranking differs from the candidates' on {disagreements} queries"
        )
    facts: dict[str, str | int | float] = {
        "database": dialect,
        "n_questions": len(site.questions),
        "n_documents": len(documents),
        "n_queries": len(queries),
        "n_foreign_queries": len(foreign_queries),
        "load_seconds": round(load_seconds, 2),
        "n_vectors": n_vectors,
        "vectors_computed": embed.computed - computed_before,
        "vector_seconds": round(vector_seconds, 2),
    }
    return SiteRun(site_name(data), own, foreign, bm25_values, facts, search_ms, embed_ms)


def foreign_questions(data: Path) -> list[Query]:
    """FOREIGN_QUERIES questions of a site (the first by id), as queries with nothing relevant."""
    site = load_site(data)
    chosen = sorted(site.questions, key=lambda question: question.id)[:FOREIGN_QUERIES]
    return [Query(question.id, question.title, question.tags, frozenset()) for question in chosen if question.title]


def site_values(run: SiteRun, weights: Weights, floor: float) -> SiteValues:
    """One site's per-query values for these weights, and its floor figures in `extra`."""
    values: dict[str, list[float]] = {
        key: []
        for key in (
            "recall_at_3",
            "mrr",
            "bm25_recall_at_3",
            "bm25_mrr",
            "fulltext_recall_at_3",
            "fulltext_mrr",
            "rerank_recall_at_3",
            "rerank_mrr",
            "floor_recall_at_3",
            "shown",
        )
    }
    for (query, found), bm25 in zip(run.own, run.bm25, strict=True):
        hybrid = ranking_of(found, weights)
        figures = [
            *query_values(first_relevant([se_id for se_id, _ in hybrid], query.relevant)),
            *bm25,
            *query_values(
                first_relevant([se_id for se_id, _ in ranking_of(found, weights, "fulltext")], query.relevant)
            ),
            *query_values(first_relevant([se_id for se_id, _ in ranking_of(found, weights, "rerank")], query.relevant)),
            query_values(first_relevant([se_id for se_id, score in hybrid if score >= floor], query.relevant))[0],
            1.0 if hybrid and hybrid[0][1] >= floor else 0.0,
        ]
        for key, value in zip(values, figures, strict=True):
            values[key].append(value)
    false_shown = sum(1 for found in run.foreign if (top := ranking_of(found, weights)) and top[0][1] >= floor)
    extra = dict(run.facts) | {
        "false_suggestions": false_shown,
        "false_suggestion_rate": round(false_shown / len(run.foreign), 4) if run.foreign else None,
    }
    return SiteValues(run.name, values, extra)


def report_of(runs: Sequence[SiteRun], weights: Weights, floor: float) -> MultiSiteReport:
    report = build_report([site_values(run, weights, floor) for run in runs], COMPARISONS)
    foreign = sum(len(run.foreign) for run in runs)
    false_shown = sum(int(report.per_site[run.name]["false_suggestions"]) for run in runs)  # type: ignore[call-overload]
    search_ms = [ms for run in runs for ms in run.search_ms]
    embed_ms = [ms for run in runs for ms in run.embed_ms]
    keys = ("n_questions", "n_documents", "n_queries", "n_foreign_queries", "n_vectors", "vectors_computed")
    report.pooled.update(
        {"database": runs[0].facts["database"]}
        | {key: sum(int(run.facts[key]) for run in runs) for key in keys}
        | {
            "query_p50_ms": round(percentile(search_ms, 0.5), 2),
            "query_p95_ms": round(percentile(search_ms, 0.95), 2),
            "embed_p50_ms": round(percentile(embed_ms, 0.5), 2),
            "embed_p95_ms": round(percentile(embed_ms, 0.95), 2),
            "load_seconds": round(sum(float(run.facts["load_seconds"]) for run in runs), 2),
            "vector_seconds": round(sum(float(run.facts["vector_seconds"]) for run in runs), 2),
            "false_suggestions": false_shown,
            "false_suggestion_rate": round(false_shown / foreign, 4) if foreign else None,
            "floor": floor,
            "weights": {"text": weights.text, "vector": weights.vector, "tag_boost": weights.tag_boost},
        }
    )
    return report


def run_sites(folders: Sequence[Path], database_url: str | None, cache: Path | None = None) -> list[SiteRun]:
    """Measure every site in its own scratch database (with the next site's questions as foreign queries)."""
    embed_model = vectors.embedder_or_none()
    if embed_model is None:
        raise SystemExit("the embedding model cannot be loaded: nothing to measure")
    embed = CachedEmbed(embed_model, cache)
    runs = []
    for position, folder in enumerate(folders):
        others = folders[(position + 1) % len(folders)] if len(folders) > 1 else None
        foreign = foreign_questions(others) if others is not None else []
        with scratch_database(database_url) as url:
            runs.append(measure_site(folder, url, foreign, embed))
        progress(
            f"{runs[-1].name}: measured ({runs[-1].facts['n_vectors']} vectors in {runs[-1].facts['vector_seconds']} s)"
        )
    embed.save()
    return runs


def run(data: Path, database_url: str) -> dict[str, object]:
    """One site's `--json` object (its figures, with per_site and ci95) in a given database."""
    return report_of(run_sites([data], database_url), Weights(), SUGGESTION_FLOOR).as_json()


# --- choosing the weights and the floor, leave one site out ------------------------------------------

TEXT_WEIGHTS = tuple(round(0.1 * step, 1) for step in range(11))  # the vector's weight is 1 - the text's
TAG_BOOSTS = (0.0, 0.1, 0.2, 0.3)
FLOORS = tuple(round(0.01 * step, 2) for step in range(20, 101))
FIT_MARGIN = 0.05  # the floor keeps each training site's false suggestion rate this far below the target


def ranking_quality(runs: Sequence[SiteRun], weights: Weights) -> float:
    """Pooled Recall@3 + MRR of the hybrid ranking with these weights (without the floor)."""
    total, count = 0.0, 0
    for run in runs:
        for query, found in run.own:
            recall, reciprocal = query_values(
                first_relevant([i for i, _ in ranking_of(found, weights)], query.relevant)
            )
            total += recall + reciprocal
            count += 1
    return total / count if count else 0.0


def top_scores(runs: Sequence[SiteRun], weights: Weights) -> list[list[float]]:
    """Per site, each foreign query's best score (-inf: nothing found)."""
    return [[top[0][1] if (top := ranking_of(f, weights)) else -math.inf for f in run.foreign] for run in runs]


def best_weights(runs: Sequence[SiteRun]) -> Weights:
    """The weights with the best pooled Recall@3 + MRR on these sites (ranking without the floor)."""
    grid = [Weights(t, round(1 - t, 1), b) for t in TEXT_WEIGHTS for b in TAG_BOOSTS]
    return max(grid, key=lambda w: (round(ranking_quality(runs, w), 6), -abs(w.text - TEXT_WEIGHTS[3])))


def best_floor(runs: Sequence[SiteRun], weights: Weights) -> float:
    """The lowest floor at which no one of these sites' stores shows something for more than the target less
    FIT_MARGIN of another site's questions (a floor must hold on each site, not only pooled)."""
    scores = [site for site in top_scores(runs, weights) if site]
    limit = FALSE_SUGGESTION_TARGET - FIT_MARGIN
    for floor in FLOORS:
        if all(sum(score >= floor for score in site) <= limit * len(site) for site in scores):
            return floor
    return FLOORS[-1]


def fit(runs: Sequence[SiteRun]) -> dict[str, object]:
    """Leave one site out: each site measured with the weights and floor chosen on the others."""
    folds = {}
    for held in runs:
        others = [run for run in runs if run is not held]
        weights = best_weights([run for run in others if run.own])
        floor = best_floor(others, weights)
        figures = site_values(held, weights, floor)
        n = figures.n
        folds[held.name] = {
            "weights": [weights.text, weights.vector, weights.tag_boost],
            "floor": floor,
            "n": n,
            "recall_at_3": round(sum(figures.values["recall_at_3"]) / n, 4) if n else None,
            "mrr": round(sum(figures.values["mrr"]) / n, 4) if n else None,
            "floor_recall_at_3": round(sum(figures.values["floor_recall_at_3"]) / n, 4) if n else None,
            "false_suggestion_rate": figures.extra["false_suggestion_rate"],
        }
    weights = best_weights([run for run in runs if run.own])
    return {
        "folds": folds,
        "all_sites": {"weights": [weights.text, weights.vector, weights.tag_boost], "floor": best_floor(runs, weights)},
    }


# --- the full text's column weights, leave one site out ---------------------------------------------------

ColumnWeights = tuple[float, float, float]  # question text (title), accepted answer (body), tags


def column_weights(value: str) -> ColumnWeights:
    """`--column-weights` takes settings as TITLE,BODY,TAGS, each in (0, 1] (ts_rank's range)."""
    try:
        title, body, tags = (float(part) for part in value.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r}: give three numbers, TITLE,BODY,TAGS (e.g. 1,0.6,0.8)") from None
    if not all(0 < weight <= 1 for weight in (title, body, tags)):
        raise argparse.ArgumentTypeError(f"{value!r}: each weight must be above 0 and at most 1")
    return title, body, tags


def use_column_weights(setting: ColumnWeights) -> None:
    fulltext.TITLE_WEIGHT, fulltext.BODY_WEIGHT, fulltext.TAGS_WEIGHT = setting


def fit_column_weights(settings: dict[ColumnWeights, list[SiteRun]]) -> dict[str, object]:
    """Each setting's pooled figures (the shipped ranking weights), and leave one site out: for each site, the
    setting with the best pooled Recall@3 + MRR on the other sites, measured on it (the first setting given wins
    ties). Each site's sums are kept, so that runs on both databases can be combined into one choice."""
    weights = Weights()
    sums: dict[ColumnWeights, dict[str, tuple[float, float, int]]] = {}
    for setting, runs in settings.items():
        sums[setting] = {}
        for site in runs:
            if site.own:
                values = site_values(site, weights, SUGGESTION_FLOOR).values
                sums[setting][site.name] = (sum(values["recall_at_3"]), sum(values["mrr"]), len(site.own))
    names = list(next(iter(sums.values())))
    order = list(settings)

    def quality(setting: ColumnWeights, sites: Sequence[str]) -> float:
        recall, mrr, n = (sum(sums[setting][site][i] for site in sites) for i in range(3))
        return (recall + mrr) / n if n else 0.0

    folds: dict[str, dict[str, object]] = {}
    for held in names:
        others = [site for site in names if site != held]
        chosen = max(order, key=lambda setting: (round(quality(setting, others), 9), -order.index(setting)))
        recall, mrr, n = sums[chosen][held]
        folds[held] = {"chosen": list(chosen), "n": n, "recall_at_3": recall / n, "mrr": mrr / n}
    total = sum(int(fold["n"]) for fold in folds.values())  # type: ignore[call-overload]
    return {
        "settings": {
            ",".join(f"{w:g}" for w in setting): {
                "per_site": {site: [r / n, m / n, n] for site, (r, m, n) in by_site.items()},
                "recall_at_3": sum(r for r, _, _ in by_site.values()) / total,
                "mrr": sum(m for _, m, _ in by_site.values()) / total,
            }
            for setting, by_site in sums.items()
        },
        "folds": folds,
        "held_out_recall_at_3": sum(f["recall_at_3"] * f["n"] for f in folds.values()) / total,  # type: ignore[operator]
        "held_out_mrr": sum(f["mrr"] * f["n"] for f in folds.values()) / total,  # type: ignore[operator]
    }


def print_column_fit(result: dict[str, object]) -> None:
    print("The full text's column weights (question text, accepted answer, tags): pooled Recall@3 and MRR")
    settings = result["settings"]
    assert isinstance(settings, dict)
    for setting, figures in settings.items():
        print(f"  {setting:<16}{figures['recall_at_3']:>8.4f}{figures['mrr']:>8.4f}")
    print("Leave one site out: each site measured with the setting chosen on the other sites")
    folds = result["folds"]
    assert isinstance(folds, dict)
    for name, fold in folds.items():
        chosen = ",".join(f"{w:g}" for w in fold["chosen"])
        print(f"  {name:<20}{fold['n']:>5}  {chosen:<14}{fold['recall_at_3']:>8.3f}{fold['mrr']:>8.3f}")
    print(f"held-out pooled Recall@3 {result['held_out_recall_at_3']:.4f}, MRR {result['held_out_mrr']:.4f}")


def print_fit(result: dict[str, object]) -> None:
    print("Leave one site out: each site measured with the weights and floor chosen on the other sites")
    print(f"{'site':<20}{'n':>5}{'text,vector,tags':>20}{'floor':>7}{'R@3':>8}{'MRR':>8}{'floor R@3':>10}{'false':>8}")
    folds = result["folds"]
    assert isinstance(folds, dict)
    for name, fold in folds.items():
        cells = [_figure(fold[key]) for key in ("recall_at_3", "mrr", "floor_recall_at_3", "false_suggestion_rate")]
        weights = ",".join(f"{w:g}" for w in fold["weights"])
        print(
            f"{name:<20}{fold['n']:>5}{weights:>20}{fold['floor']:>7}{cells[0]:>8}{cells[1]:>8}{cells[2]:>10}{cells[3]:>8}"
        )
    total = sum(fold["n"] for fold in folds.values())
    for key in ("recall_at_3", "mrr", "floor_recall_at_3"):
        mean = sum(fold[key] * fold["n"] for fold in folds.values() if fold["n"]) / total if total else 0.0
        print(f"held-out pooled {key}: {mean:.3f}")
    print(f"chosen on all sites: {result['all_sites']}")


def _figure(value: object) -> str:
    return f"{value:.3f}" if isinstance(value, float) else "-"


@contextmanager
def scratch_database(url: str | None) -> Iterator[str]:
    """A database for one run: a temporary SQLite file, or a new PostgreSQL database dropped at the end."""
    if url is None or normalize_url(url).startswith("sqlite"):
        with tempfile.TemporaryDirectory(prefix="peerlearn-bench-") as folder:
            yield url or f"sqlite:///{Path(folder) / 'search.db'}"
        return
    admin = create_engine(normalize_url(url), isolation_level="AUTOCOMMIT")
    name = f"peerlearn_bench_{uuid.uuid4().hex[:10]}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(normalize_url(url)).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


COLUMNS = (
    Column("Recall@3", "recall_at_3", 10),
    Column("MRR@10", "mrr", 10),
    Column("BM25 R@3", "bm25_recall_at_3", 10),
    Column("BM25 MRR", "bm25_mrr", 10),
    Column("text R@3", "fulltext_recall_at_3", 10),
    Column("text MRR", "fulltext_mrr", 10),
    Column("rerank R@3", "rerank_recall_at_3", 11),
    Column("rerank MRR", "rerank_mrr", 11),
)
FLOOR_COLUMNS = (Column("floor R@3", "floor_recall_at_3", 10), Column("shown", "shown", 8))


def print_table(report: MultiSiteReport) -> None:
    pooled = report.pooled
    print(
        f"Similar-question search (PeerLearn's hybrid search_similar vs plain BM25 and its own full text alone) on "
        f"{pooled['n_queries']} linked questions of {len(report.per_site)} site(s) ({pooled['n_documents']} answered "
        f"of {pooled['n_questions']} questions, {pooled['database']}; weights {pooled['weights']})"
    )
    print(format_table(report, COLUMNS, COMPARISONS))
    print(
        f"search p50 {pooled['query_p50_ms']} ms, p95 {pooled['query_p95_ms']} ms (the question's vector given); "
        f"the question's vector p50 {pooled['embed_p50_ms']} ms, p95 {pooled['embed_p95_ms']} ms; stores filled in "
        f"{pooled['load_seconds']} s; {pooled['n_vectors']} document vectors in {pooled['vector_seconds']} s "
        f"({pooled['vectors_computed']} texts embedded, the rest from the cache)"
    )
    print()
    print(f"Relevance floor {pooled['floor']} (suggestions after /ask): Recall@3 counting hits above it, how often")
    print("anything is shown for the site's own questions, and for questions of another site (false suggestions)")
    print(format_table(report, FLOOR_COLUMNS, {}))
    print(f"{'site':<20}{'foreign':>9}{'shown':>8}{'rate':>8}")
    for name, figures in [*report.per_site.items(), ("pooled", pooled)]:
        rate = figures.get("false_suggestion_rate")
        print(f"{name:<20}{figures['n_foreign_queries']!s:>9}{figures['false_suggestions']!s:>8}{_figure(rate):>8}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_site_arguments(parser)
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    parser.add_argument("--database-url", help="SQLite or PostgreSQL URL (default: a temporary SQLite file)")
    parser.add_argument("--fit", action="store_true", help="choose the weights and the floor, leave one site out")
    parser.add_argument(
        "--vector-cache", type=Path, help="a file keeping the texts' vectors between runs (default: none, all computed)"
    )
    parser.add_argument(
        "--idf-power",
        type=float,
        help=f"PostgreSQL: weigh each term's ts_rank by its IDF to this power (default {fulltext.IDF_POWER})",
    )
    parser.add_argument(
        "--column-weights",
        nargs="+",
        type=column_weights,
        metavar="T,B,G",
        help="the full text's weights of the question text, the accepted answer and the tags (default "
        f"{fulltext.TITLE_WEIGHT:g},{fulltext.BODY_WEIGHT:g},{fulltext.TAGS_WEIGHT:g}); several: each is measured, "
        "the figures shown are the first's, and the choice leaving one site out follows",
    )
    args = parser.parse_args(argv)
    if args.idf_power is not None:
        fulltext.IDF_POWER = args.idf_power
    one_blas_thread()  # as the app computes
    folders = site_folders(parser, args)
    if args.database_url and normalize_url(args.database_url).startswith("sqlite") and len(folders) > 1:
        parser.error("a SQLite --database-url names one file: give one site, or leave it out")
    shipped = (fulltext.TITLE_WEIGHT, fulltext.BODY_WEIGHT, fulltext.TAGS_WEIGHT)
    settings: dict[ColumnWeights, list[SiteRun]] = {}
    try:
        for setting in dict.fromkeys(args.column_weights or [shipped]):
            use_column_weights(setting)
            if args.column_weights:
                progress(f"column weights {setting}")
            settings[setting] = run_sites(folders, args.database_url, args.vector_cache)
    except FileNotFoundError as error:
        parser.error(str(error))
    finally:
        use_column_weights(shipped)
    runs = next(iter(settings.values()))
    report = report_of(runs, Weights(), SUGGESTION_FLOOR)
    fitted = fit(runs) if args.fit else None
    columns = fit_column_weights(settings) if len(settings) > 1 else None
    if args.json:
        extra = ({"fit": fitted} if fitted else {}) | ({"column_weights": columns} if columns else {})
        print(json.dumps(report.as_json() | extra))
        return 0
    print_table(report)
    if fitted:
        print()
        print_fit(fitted)
    if columns:
        print()
        print_column_fit(columns)
    return 0


if __name__ == "__main__":
    sys.exit(main())
