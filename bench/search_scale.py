"""Similar-question search at scale: p50/p95 latency of `bot.search.search_similar` with 100k answered questions.

    python bench/search_scale.py [--quick] [--json] [--questions N] [--queries N] [--database sqlite|postgresql|both]

A store per database (a temporary SQLite file; a scratch PostgreSQL database, dropped afterwards) is
migrated with the app's migrations and filled with a seeded synthetic corpus (bench/harness.py: Zipf-distributed
made-up words, topics, tags) in bulk (see `fill`: the search documents are built by migration 0002's triggers on
SQLite and by its backfill statement on PostgreSQL). 20 channels, one in twenty private.

Every document also gets its search vector (search_vectors, bot/search/vectors.py), so the search measured is
the hybrid one: full text and the nearest vectors, held in memory. The vectors are not the model's: 100k
of those would take hours to compute here (`python app.py reindex`: its rate is in bench/RESULTS.md), and what
the vector part costs does not depend on what they hold (a product with every stored vector). Each is a
seeded random projection of its text's words to 384 dimensions, normalised, so that a rewording lands near
its question as a real sentence vector would; the query's vector is made the same way and given to the
search. What the model takes to embed a question is measured apart, on the first EMBEDDED_QUERIES queries'
texts with the real model, and reported separately ("the question's vector"). The first search of a process
reads the workspace's vectors into memory; that load is timed apart too.

Queries, as the bot runs them (one session each, the asker's tags, the asker's channel as viewer):
half are rewordings of a stored question (some words dropped, a few added; that question should come
back in the top 3), half are new questions drawn from the same generator. Reported per database:
p50/p95/p99 latency, Recall@3 of the reworded question, and how often the top 3 equal those of the
exhaustive ranking (every matching document scored), next to the full text's own ranking without vectors
(what search_similar did before vectors) and the baseline measured in the same run: the exhaustive full-text
ranking (`exhaustive=True`: the OR of every term, the engine scoring every match; what search_similar did before
it pruned common terms).

--quick: 20k questions and 200 queries per database (the full run: 100k and 400).
"""

from __future__ import annotations

import importlib.util
import random
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import create_engine, text

from bench.harness import (
    ROOT,
    Corpus,
    at,
    base_parser,
    copy_rows,
    emit,
    load_average,
    percentile,
    postgres_reachable,
    progress,
    scratch_database,
)
from bot.embedding import one_blas_thread
from bot.search import embed_query, fulltext, search_similar
from bot.search import vectors as search_vectors
from models.migrate import upgrade_to_head
from models.question import STATUS_RESOLVED
from models.session import Store

TEAM_ID = "T_SCALE"
CHANNELS = [f"C{n:03d}" for n in range(20)]
PRIVATE = {"C019"}
GOAL_P95_MS = 20.0
WARMUP = 20
EMBEDDED_QUERIES = 100  # queries whose texts the real model embeds, for its time per question
DIMENSIONS = 384
VECTOR_SEED = 5


def fill(store: Store, corpus: Corpus, count: int) -> list[Any]:
    """`count` answered questions in bulk; returns the generated questions (their ids are number + 1).

    Each question is inserted with its accepted answer already in place, so the search document is built
    once per question: on SQLite by the row triggers of migration 0002 (tags and answers go in first, with
    foreign-key checks off for the load, then the questions, whose insert trigger indexes them); on PostgreSQL
    by COPY with triggers off (session_replication_role = replica) and then migration 0002's own backfill
    statement (the set-based INSERT … SELECT its upgrade runs on existing rows: the same documents)."""
    questions = list(corpus.questions(count))
    channel_of = [CHANNELS[q.number % len(CHANNELS)] for q in questions]
    tag_rows = [(q.number + 1, tag, TEAM_ID, position) for q in questions for position, tag in enumerate(q.tags)]
    answer_rows = [
        (
            q.number + 1,
            TEAM_ID,
            q.number + 1,
            channel_of[q.number],
            f"{1_700_000_000 + q.number}.000200",
            f"U{(q.number * 7) % 5000:05d}",
            q.answer,
            at(q.number + 20),
        )
        for q in questions
    ]
    question_rows = [
        (
            q.number + 1,
            TEAM_ID,
            channel_of[q.number],
            channel_of[q.number] in PRIVATE,
            f"U{q.number % 5000:05d}",
            q.text,
            STATUS_RESOLVED,
            f"{1_700_000_000 + q.number}.000100",
            f"bench-{q.number}",
            at(q.number),
            at(q.number + 30),
            q.number + 1,
            0,
        )
        for q in questions
    ]
    if store.dialect == "sqlite":
        _fill_sqlite(store, tag_rows, answer_rows, question_rows)
    else:
        _fill_postgresql(store, tag_rows, answer_rows, question_rows)
    with store.engine.begin() as conn:
        conn.execute(text("ANALYZE"))  # as autovacuum would have (PostgreSQL's search reads these statistics)
    return questions


_TAG_COLUMNS = ("question_id", "tag", "team_id", "position")
_ANSWER_COLUMNS = ("id", "team_id", "question_id", "channel_id", "ts", "user_id", "text", "created_at")
_QUESTION_COLUMNS = (
    "id",
    "team_id",
    "channel_id",
    "channel_private",
    "asker_id",
    "text",
    "status",
    "message_ts",
    "request_key",
    "created_at",
    "resolved_at",
    "accepted_answer_id",
    "escalation_level",
)


def _fill_sqlite(store: Store, tags: list[tuple], answers: list[tuple], questions: list[tuple]) -> None:
    def stored(value: object) -> object:  # naive UTC text, as SQLAlchemy's DateTime keeps it on SQLite
        return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f") if isinstance(value, datetime) else value

    def naive(row: tuple) -> tuple:
        return tuple(map(stored, row))

    raw = store.engine.raw_connection()
    try:
        db = raw.driver_connection
        db.execute("PRAGMA foreign_keys=OFF")
        db.execute("BEGIN")
        for table, columns, rows in (
            ("question_tags", _TAG_COLUMNS, tags),
            ("answers", _ANSWER_COLUMNS, answers),
            ("questions", _QUESTION_COLUMNS, questions),
        ):
            marks = ", ".join("?" * len(columns))
            db.executemany(f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})", map(naive, rows))
        db.execute("COMMIT")
        db.execute("PRAGMA foreign_keys=ON")
    finally:
        raw.close()


def _fill_postgresql(store: Store, tags: list[tuple], answers: list[tuple], questions: list[tuple]) -> None:
    replica = {"options": "-c session_replication_role=replica"}  # no triggers, no foreign-key checks
    loader = create_engine(store.engine.url, connect_args=replica)
    try:
        copy_rows(loader, "questions", _QUESTION_COLUMNS, questions)
        copy_rows(loader, "answers", _ANSWER_COLUMNS, answers)
        copy_rows(loader, "question_tags", _TAG_COLUMNS, tags)
    finally:
        loader.dispose()
    path = ROOT / "migrations" / "versions" / "0002_search_index.py"
    spec = importlib.util.spec_from_file_location("search_index_migration", path)
    assert spec is not None and spec.loader is not None
    search_index = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(search_index)
    document = search_index._QUESTION_DOCUMENT.format(tag_agg=search_index._AGG["postgresql"], where="1 = 1")
    with store.engine.begin() as conn:
        conn.execute(text(f"INSERT INTO search_documents {search_index._COLUMNS} {document}"))


def make_queries(corpus: Corpus, questions: list[Any], count: int, rng: random.Random) -> list[dict[str, Any]]:
    queries = []
    for number in range(count):
        if number % 2 == 0:
            source = rng.choice(questions)
            queries.append(
                {
                    "text": corpus.rewording(source),
                    "tags": source.tags,
                    "viewer": CHANNELS[source.number % len(CHANNELS)],
                    "target": source.number + 1,
                }
            )
        else:
            fresh = corpus.question(len(questions) + number)
            queries.append({"text": fresh.text, "tags": fresh.tags, "viewer": rng.choice(CHANNELS), "target": None})
    return queries


class WordProjection:
    """A stand-in sentence vector: the sum of a seeded random unit vector per word, normalised (texts sharing
    most words are close, as rewordings are in a real model's space)."""

    def __init__(self, seed: int = VECTOR_SEED) -> None:
        self.seed = seed
        self.cache: dict[str, Any] = {}

    def word(self, word: str) -> Any:
        import numpy as np

        vector = self.cache.get(word)
        if vector is None:
            rng = np.random.default_rng([self.seed, *word.encode()])
            vector = self.cache[word] = rng.standard_normal(DIMENSIONS).astype(np.float32)
        return vector

    def __call__(self, text_: str) -> Any:
        import numpy as np

        words = text_.lower().split()
        total = np.sum([self.word(w) for w in words], axis=0) if words else np.ones(DIMENSIONS, np.float32)
        return (total / np.linalg.norm(total)).astype(np.float32)


def store_vectors(store: Store, project: WordProjection) -> float:
    """Every document's stand-in vector, written as the app writes them (seq from the counter); seconds taken."""
    from bot.embedding import MODEL_NAME, to_bytes

    started = time.perf_counter()
    with store.engine.begin() as conn:
        documents = conn.execute(text("SELECT id, team_id, title, body FROM search_documents ORDER BY id")).all()
    rows = [
        {
            "document_id": row.id,
            "team_id": row.team_id,
            "model": MODEL_NAME,
            "content_hash": search_vectors.content_hash(MODEL_NAME, row.title, row.body),
            "vector": to_bytes(project(row.title + " " + row.body)),
            "seq": seq,
        }
        for seq, row in enumerate(documents, 1)
    ]
    statement = text(
        "INSERT INTO search_vectors (document_id, team_id, model, content_hash, vector, seq) "
        "VALUES (:document_id, :team_id, :model, :content_hash, :vector, :seq)"
    )
    with store.engine.begin() as conn:
        for start in range(0, len(rows), 5000):
            conn.execute(statement, rows[start : start + 5000])
        conn.execute(text("INSERT INTO search_vector_counter (id, value) VALUES (1, :n)"), {"n": len(rows)})
    return time.perf_counter() - started


def run_queries(
    store: Store,
    queries: list[dict[str, Any]],
    *,
    exhaustive: bool = False,
    use_vectors: bool = True,
    warmup: bool = True,
) -> tuple[list[float], list[list[int]]]:
    def search(query: dict[str, Any]) -> list[Any]:
        with store.session() as session:
            return search_similar(
                session,
                team_id=TEAM_ID,
                text=query["text"],
                tags=query["tags"],
                viewer_channel_id=query["viewer"],
                exhaustive=exhaustive,
                query_vector=query["vector"],
                use_vectors=use_vectors,
            )

    latencies, rankings = [], []
    for query in queries[:WARMUP] if warmup else []:
        search(query)
    for query in queries:
        started = time.perf_counter()
        hits = search(query)
        latencies.append((time.perf_counter() - started) * 1000)
        rankings.append([hit.id for hit in hits])
    return latencies, rankings


def weighted_and_unweighted(
    store: Store, queries: list[dict[str, Any]]
) -> tuple[tuple[list[float], list[list[int]]], tuple[list[float], list[list[int]]]]:
    """search_similar's latencies and rankings with the terms weighted by IDF (as shipped) and unweighted
    (fulltext.IDF_POWER 0), each query run both ways in turn, the order alternating."""
    shipped = fulltext.IDF_POWER
    runs: list[tuple[list[float], list[list[int]]]] = [([], []), ([], [])]  # weighted, unweighted
    try:
        for position, query in enumerate(queries):
            for which in (0, 1) if position % 2 == 0 else (1, 0):
                fulltext.IDF_POWER = shipped if which == 0 else 0.0
                latencies, rankings = run_queries(store, [query], warmup=False)
                runs[which][0].extend(latencies)
                runs[which][1].extend(rankings)
    finally:
        fulltext.IDF_POWER = shipped
    return runs[0], runs[1]


def query_embedding_ms(queries: list[dict[str, Any]]) -> list[float]:
    """The real model's time to embed the first EMBEDDED_QUERIES queries' texts (ms each), after one warm-up."""
    embed_query("warm up")
    latencies = []
    for query in queries[:EMBEDDED_QUERIES]:
        started = time.perf_counter()
        embed_query(query["text"])
        latencies.append((time.perf_counter() - started) * 1000)
    return latencies


def recall_at_3(queries: list[dict[str, Any]], rankings: list[list[int]]) -> float:
    targets = [(q["target"], ranking) for q, ranking in zip(queries, rankings, strict=True) if q["target"]]
    return sum(target in ranking[:3] for target, ranking in targets) / max(len(targets), 1)


def measure(dialect: str, pg_url: str, n_questions: int, n_queries: int) -> dict[str, Any]:
    corpus = Corpus(seed=7)
    with scratch_database(dialect, pg_url) as url:
        store = Store.from_url(url)
        try:
            upgrade_to_head(store.engine)
            started = time.perf_counter()
            questions = fill(store, corpus, n_questions)
            load_seconds = time.perf_counter() - started
            progress(f"{dialect}: {n_questions} questions loaded in {load_seconds:.1f}s")
            project = WordProjection()
            vector_seconds = store_vectors(store, project)
            progress(f"{dialect}: {n_questions} stand-in vectors stored in {vector_seconds:.1f}s")
            queries = make_queries(corpus, questions, n_queries, random.Random(11))
            for query in queries:
                query["vector"] = project(query["text"])
            started = time.perf_counter()
            with store.session() as session:
                index = search_vectors.index_for(session, TEAM_ID, search_vectors.model_name())
            index_seconds = time.perf_counter() - started
            progress(f"{dialect}: {len(index)} vectors read into memory in {index_seconds:.1f}s")
            base_latency, base_rankings = run_queries(store, queries, exhaustive=True, use_vectors=False)
            progress(f"{dialect}: baseline p50 {percentile(base_latency, 0.5):.1f} ms")
            text_latency, text_rankings = run_queries(store, queries, use_vectors=False)
            progress(f"{dialect}: full text alone p50 {percentile(text_latency, 0.5):.1f} ms")
            latency, rankings = run_queries(store, queries)
            progress(f"{dialect}: search_similar p50 {percentile(latency, 0.5):.1f} ms")
            # PostgreSQL weighs each term's ts_rank by its IDF: the same search with every term alike (ts_rank
            # alone, as before), to measure what the weighting costs: the two in turn, query by query (which
            # goes first alternating), so that the machine's load weighs on both alike.
            unweighted_latency, unweighted_rankings = latency, rankings
            if dialect == "postgresql":
                (latency, rankings), (unweighted_latency, unweighted_rankings) = weighted_and_unweighted(store, queries)
                progress(
                    f"{dialect}: in turn: weighted p50 {percentile(latency, 0.5):.1f} ms, "
                    f"unweighted p50 {percentile(unweighted_latency, 0.5):.1f} ms"
                )
            embed_latency = query_embedding_ms(queries)
        finally:
            store.dispose()
    same_top3 = sum(a[:3] == b[:3] for a, b in zip(text_rankings, base_rankings, strict=True)) / len(queries)
    overlap = sum(
        len(set(a[:3]) & set(b[:3])) / max(len(b[:3]), 1) for a, b in zip(text_rankings, base_rankings, strict=True)
    )
    return {
        "questions": n_questions,
        "queries": n_queries,
        "load_seconds": round(load_seconds, 1),
        "p50_ms": round(percentile(latency, 0.5), 2),
        "p95_ms": round(percentile(latency, 0.95), 2),
        "p99_ms": round(percentile(latency, 0.99), 2),
        "recall_at_3": round(recall_at_3(queries, rankings), 3),
        "vector_seconds": round(vector_seconds, 1),
        "index_load_seconds": round(index_seconds, 2),
        "index_megabytes": round(len(index) * DIMENSIONS * 4 / 1e6, 1),
        "embed_p50_ms": round(percentile(embed_latency, 0.5), 2),
        "embed_p95_ms": round(percentile(embed_latency, 0.95), 2),
        "fulltext_p50_ms": round(percentile(text_latency, 0.5), 2),
        "fulltext_p95_ms": round(percentile(text_latency, 0.95), 2),
        "fulltext_p99_ms": round(percentile(text_latency, 0.99), 2),
        "fulltext_recall_at_3": round(recall_at_3(queries, text_rankings), 3),
        "same_top3_as_exhaustive": round(same_top3, 3),
        "top3_overlap_with_exhaustive": round(overlap / len(queries), 3),
        "baseline_p50_ms": round(percentile(base_latency, 0.5), 2),
        "baseline_p95_ms": round(percentile(base_latency, 0.95), 2),
        "baseline_p99_ms": round(percentile(base_latency, 0.99), 2),
        "baseline_recall_at_3": round(recall_at_3(queries, base_rankings), 3),
        "unweighted_p50_ms": round(percentile(unweighted_latency, 0.5), 2),
        "unweighted_p95_ms": round(percentile(unweighted_latency, 0.95), 2),
        "unweighted_p99_ms": round(percentile(unweighted_latency, 0.99), 2),
        "unweighted_recall_at_3": round(recall_at_3(queries, unweighted_rankings), 3),
    }


def run(quick: bool, databases: list[str], pg_url: str, n_questions: int | None, n_queries: int | None) -> dict:
    n_questions = n_questions or (20_000 if quick else 100_000)
    n_queries = n_queries or (200 if quick else 400)
    result: dict[str, Any] = {
        "benchmark": "search_scale",
        "quick": quick,
        "goal_p95_ms": GOAL_P95_MS,
        "load_average_1m": load_average(),
    }
    for dialect in databases:
        figures = measure(dialect, pg_url, n_questions, n_queries)
        result |= {f"{dialect}_{key}": value for key, value in figures.items()}
    # The headline figures: the worse of the databases measured.
    result["p95_ms"] = max(result[f"{d}_p95_ms"] for d in databases)
    result["baseline_p95_ms"] = max(result[f"{d}_baseline_p95_ms"] for d in databases)
    result["p50_ms"] = max(result[f"{d}_p50_ms"] for d in databases)
    result["baseline_p50_ms"] = max(result[f"{d}_baseline_p50_ms"] for d in databases)
    result["goal_met"] = result["p95_ms"] <= GOAL_P95_MS
    result["load_average_1m_after"] = load_average()
    return result


def table(result: dict[str, Any]) -> str:
    lines = [
        f"Similar-question search at scale (goal: p95 <= {GOAL_P95_MS:g} ms; "
        f"load average {result['load_average_1m']} -> {result['load_average_1m_after']})",
        f"{'database':<12}{'questions':>10}{'':>3}{'ranking':<26}{'p50 ms':>8}{'p95 ms':>8}{'p99 ms':>8}{'R@3':>7}",
    ]
    for dialect in ("sqlite", "postgresql"):
        if f"{dialect}_p50_ms" not in result:
            continue
        for label, prefix in (
            ("search_similar (hybrid)", ""),
            *([("hybrid, terms unweighted", "unweighted_")] if dialect == "postgresql" else []),
            ("full text alone", "fulltext_"),
            ("baseline: exhaustive OR", "baseline_"),
        ):
            lines.append(
                f"{dialect:<12}{result[f'{dialect}_questions']:>10}{'':>3}{label:<26}"
                f"{result[f'{dialect}_{prefix}p50_ms']:>8.1f}{result[f'{dialect}_{prefix}p95_ms']:>8.1f}"
                f"{result[f'{dialect}_{prefix}p99_ms']:>8.1f}{result[f'{dialect}_{prefix}recall_at_3']:>7.3f}"
            )
        lines.append(
            f"{'':<12}full text: top 3 identical to the exhaustive ranking: "
            f"{result[f'{dialect}_same_top3_as_exhaustive']:.1%} of queries (overlap "
            f"{result[f'{dialect}_top3_overlap_with_exhaustive']:.1%}); "
            f"store filled in {result[f'{dialect}_load_seconds']} s"
        )
        lines.append(
            f"{'':<12}vectors: {result[f'{dialect}_index_megabytes']} MB in memory, read in "
            f"{result[f'{dialect}_index_load_seconds']} s at the first search; the question's vector (the model, "
            f"apart from the search): p50 {result[f'{dialect}_embed_p50_ms']} ms, "
            f"p95 {result[f'{dialect}_embed_p95_ms']} ms"
        )
    lines.append(f"goal met: {result['goal_met']} (p95 {result['p95_ms']} ms, the worse database)")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = base_parser(__doc__.split("\n\n")[0])
    parser.add_argument("--database", choices=("sqlite", "postgresql", "both"), default="both")
    parser.add_argument("--questions", type=int, help="answered questions in the store (default 100k, quick 20k)")
    parser.add_argument("--queries", type=int, help="queries per database (default 400, quick 200)")
    args = parser.parse_args(argv)
    one_blas_thread()  # as the app computes
    databases = ["sqlite", "postgresql"] if args.database == "both" else [args.database]
    if "postgresql" in databases and not postgres_reachable(args.pg_url):
        parser.error(f"PostgreSQL is not reachable at {args.pg_url} (pass --pg-url, or --database sqlite)")
    emit(run(args.quick, databases, args.pg_url, args.questions, args.queries), args.json, table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
