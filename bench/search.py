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

Each site is measured in its own store; with several sites the table and `--json` give each site and the
pooled figures (query-weighted), with 95 % paired bootstrap intervals of the differences to BM25 (see
bench/sites.py). A site without PostLinks.xml has no queries and is reported with none.

--database-url defaults to a temporary SQLite file per site (a SQLite URL is used as given: name a new file,
and one site only). With a PostgreSQL URL, a scratch database per site is created next to the one named
(which is only used to connect) and dropped afterwards.
"""

from __future__ import annotations

import argparse
import json
import math
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
from bot.search import STOPWORDS, search_similar
from bot.text import MAX_QUESTION_CHARS
from models.migrate import upgrade_to_head
from models.question import STATUS_OPEN, STATUS_RESOLVED, Answer, Question, QuestionTag
from models.session import Store, normalize_url

TEAM_ID = "T_BENCH"
CHANNEL_ID = "C_BENCH"
TOP_K = 3  # what the asker sees
MRR_DEPTH = 10
BM25_K1, BM25_B = 1.2, 0.75


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


# --- the two rankers -------------------------------------------------------------------------------


def peerlearn_ranking(store: Store, query: Query, question_id: int | None) -> list[int]:
    with store.session() as session:
        hits = search_similar(
            session,
            team_id=TEAM_ID,
            text=query.title,
            tags=query.tags,
            viewer_channel_id=CHANNEL_ID,
            limit=MRR_DEPTH,
            exclude_question_id=question_id,
        )
    return [hit.id for hit in hits]


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

COMPARISONS = {"recall_at_3_vs_bm25": ("recall_at_3", "bm25_recall_at_3"), "mrr_vs_bm25": ("mrr", "bm25_mrr")}


def first_relevant(ranking: Sequence[int], relevant: frozenset[int]) -> int | None:
    """The rank (from 1) of the first relevant hit within the top MRR_DEPTH, or None."""
    return next((rank for rank, se_id in enumerate(ranking[:MRR_DEPTH], 1) if se_id in relevant), None)


def query_values(rank: int | None) -> tuple[float, float]:
    """(hit in the top TOP_K, reciprocal rank) of one query."""
    return (1.0 if rank is not None and rank <= TOP_K else 0.0), (1 / rank if rank else 0.0)


def percentile(values: Sequence[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(fraction * len(ordered)) - 1)] if ordered else 0.0


def measure_site(data: Path, database_url: str) -> tuple[SiteValues, dict[str, str | int | float], list[float]]:
    """One site's per-query values (PeerLearn and BM25) and facts, and its query latencies in ms."""
    site = load_site(data)
    documents = answered_documents(site)
    queries = link_queries(site, documents)
    values: dict[str, list[float]] = {key: [] for key in ("recall_at_3", "mrr", "bm25_recall_at_3", "bm25_mrr")}
    store = Store.from_url(database_url)
    try:
        upgrade_to_head(store.engine)
        started = time.perf_counter()
        store_ids = fill_store(store, site, documents) if queries else {}
        load_seconds = time.perf_counter() - started
        question_se_id = {question_id: se_id for se_id, question_id in store_ids.items()}
        bm25 = BM25(list(documents.values()))
        latencies = []
        for query in queries:
            started = time.perf_counter()
            ranking = peerlearn_ranking(store, query, store_ids.get(query.se_id))
            latencies.append((time.perf_counter() - started) * 1000)
            ours = query_values(
                first_relevant([question_se_id[question_id] for question_id in ranking], query.relevant)
            )
            baseline = bm25.rank(" ".join([query.title, *query.tags]), query.se_id, MRR_DEPTH)
            for key, value in zip(
                values, (*ours, *query_values(first_relevant(baseline, query.relevant))), strict=True
            ):
                values[key].append(value)
        dialect = store.dialect
    finally:
        store.dispose()
    facts: dict[str, str | int | float] = {
        "database": dialect,
        "n_questions": len(site.questions),
        "n_documents": len(documents),
        "n_queries": len(queries),
        **latency_figures(latencies),
        "load_seconds": round(load_seconds, 2),
    }
    return SiteValues(site_name(data), values, facts), facts, latencies


def latency_figures(latencies: Sequence[float]) -> dict[str, float]:
    return {
        "query_p50_ms": round(percentile(latencies, 0.5), 2),
        "query_p95_ms": round(percentile(latencies, 0.95), 2),
    }


def run_sites(folders: Sequence[Path], database_url: str | None) -> MultiSiteReport:
    """Measure every site in its own scratch database, then pool them."""
    sites, facts, latencies = [], [], []
    for folder in folders:
        with scratch_database(database_url) as url:
            site, site_facts, site_latencies = measure_site(folder, url)
        sites.append(site)
        facts.append(site_facts)
        latencies += site_latencies
    report = build_report(sites, COMPARISONS)
    report.pooled.update(
        {"database": facts[0]["database"]}
        | {key: sum(int(f[key]) for f in facts) for key in ("n_questions", "n_documents", "n_queries")}
        | latency_figures(latencies)
        | {"load_seconds": round(sum(float(f["load_seconds"]) for f in facts), 2)}
    )
    return report


def run(data: Path, database_url: str) -> dict[str, object]:
    """One site's `--json` object (its figures, with per_site and ci95) in a given database."""
    site, _, _ = measure_site(data, database_url)
    return build_report([site], COMPARISONS).as_json()


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
)


def print_table(report: MultiSiteReport) -> None:
    pooled = report.pooled
    print(
        f"Similar-question search (PeerLearn's search_similar vs plain BM25) on {pooled['n_queries']} linked "
        f"questions of {len(report.per_site)} site(s) ({pooled['n_documents']} answered of "
        f"{pooled['n_questions']} questions, {pooled['database']})"
    )
    print(format_table(report, COLUMNS, COMPARISONS))
    print(
        f"query latency p50 {pooled['query_p50_ms']} ms, p95 {pooled['query_p95_ms']} ms; "
        f"stores filled in {pooled['load_seconds']} s"
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_site_arguments(parser)
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    parser.add_argument("--database-url", help="SQLite or PostgreSQL URL (default: a temporary SQLite file)")
    args = parser.parse_args(argv)
    folders = site_folders(parser, args)
    if args.database_url and normalize_url(args.database_url).startswith("sqlite") and len(folders) > 1:
        parser.error("a SQLite --database-url names one file: give one site, or leave it out")
    try:
        report = run_sites(folders, args.database_url)
    except FileNotFoundError as error:
        parser.error(str(error))
    if args.json:
        print(json.dumps(report.as_json()))
    else:
        print_table(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
