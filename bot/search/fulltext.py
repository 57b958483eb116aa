"""The full-text half of the search (bot/search/__init__.py): the database's own engine's best documents.

`ranked_documents` over two engines:

- SQLite: the FTS5 table `search_fts` (porter stemming, unicode61), ranked by `bm25()` with column weights;
- PostgreSQL: the tsvector column `search_documents.tsv` (english config) with a GIN index, ranked by
  each query term's `ts_rank` (A/B/C weights) times the term's inverse document frequency, which
  ts_rank alone lacks (from the lexeme statistics below; see bench/search.py for how close it comes to
  SQLite's BM25).

Both index `search_documents` (migration 0002): one row per answered question (its text, accepted answer
and tags) or posted lesson, kept in sync by database triggers, so every write path updates the index.

The query is built from the asker's words: tokenised here (letters and digits only, English stopwords
dropped, at most MAX_TERMS distinct terms), each term quoted, terms joined with OR. Nothing the user
typed reaches the query syntax of either engine, so quotes, NEAR, `*`, `-` or parentheses are just text.
The privacy rule (a private channel's items are found only from that channel) is applied in SQL.

Cost (bench/search_scale.py; figures in bench/RESULTS.md). Both engines score every document the match
expression matches, then LIMIT; with ~100k documents an OR over common words matches most of them. So the
match expression is pruned by document frequency first: the query's terms, rarest first, go into the OR while
the documents they match add up to at most SCORING_BUDGET; the very common words left out (they weigh little:
BM25's inverse document frequency) then match nothing by themselves.
When the terms match few documents in all (any workspace of a few thousand items), nothing is left out
and the ranking is exactly the exhaustive one. When even the rarest term is too common, the documents
having the two rarest terms together are ranked (AND), or, if fewer than asked for, those of the rarest.
Document frequencies: SQLite counts each term's matches in FTS5, capped at the budget (cheap: the capped
count reads no more than that many doclist entries, and ranks nothing); PostgreSQL reads its own
statistics of the tsvector column (pg_stats.most_common_elems, kept by ANALYZE/autovacuum, cached here
for STATS_TTL seconds): a lexeme not among the most common counts as half the least common one, as
PostgreSQL's planner assumes. On PostgreSQL the pruned
expression only chooses the documents; each is ranked with every term (ts_rank is per document), so
its scores are the exhaustive ones. `exhaustive=True` skips pruning (the reference in the benchmark).
"""

from __future__ import annotations

import math
import re
import threading
import time
import unicodedata
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from sqlalchemy import text as sql
from sqlalchemy.orm import Session

MAX_TERMS = 32  # distinct query terms; more adds cost, not relevance
MAX_TERM_CHARS = 64
MAX_QUERY_CHARS = 4000  # questions are at most 3,000 characters; longer input is cut before tokenising

# Relevance weights of a document's parts: the question (or lesson) text and the accepted answer count alike,
# the tags less (a tag the asker gave is counted again by the ranking's tag boost, bot/search/__init__.py).
# Chosen on the dev sites leaving one site out, one setting for both engines (bench/search.py
# --column-weights, bench/RESULTS.md (6)): 1.0 / 1.0 / 0.4 in every fold; it was 1.0 / 0.6 / 0.8.
TITLE_WEIGHT, BODY_WEIGHT, TAGS_WEIGHT = 1.0, 1.0, 0.4
# At most this many documents matched (and so scored) per search, by engine: what one scored document costs
# differs (FTS5 reads a doclist; PostgreSQL fetches the row and runs ts_rank). bench/search_scale.py.
SCORING_BUDGET = {"sqlite": 4000, "postgresql": 1000}
STATS_TTL = 600.0  # seconds a PostgreSQL process trusts the lexeme statistics it read
# PostgreSQL: each query term's ts_rank is weighted by its inverse document frequency to this power (0: every
# term alike, ts_rank's own ranking). Chosen leaving one site out in bench/search.py (bench/RESULTS.md (6)).
IDF_POWER = 1.0

# PostgreSQL's english stopword list (snowball), so both engines ignore the same words.
_ENGLISH_STOPWORDS = """
    i me my myself we our ours ourselves you your yours yourself yourselves he him his himself she her hers
    herself it its itself they them their theirs themselves what which who whom this that these those am is
    are was were be been being have has had having do does did doing a an the and but if or because as until
    while of at by for with about against between into through during before after above below to from up
    down in out on off over under again further then once here there when where why how all any both each
    few more most other some such no nor not only own same so than too very s t can will just don should now
"""
STOPWORDS = frozenset(_ENGLISH_STOPWORDS.split())

# Letters and digits in any script (what FTS5's unicode61 tokenizer keeps); everything else separates.
_WORD = re.compile(r"[^\W_]+")


def query_terms(text: str, tags: Sequence[str] = ()) -> list[str]:
    """The distinct search terms of a question and its tags, in the order written, safe to quote."""
    # NFC as stored questions are (bot.text.clean); lower() rather than casefold(), which would turn "ß"
    # into "ss" where the engines keep "ß". Case is folded again by the engines either way.
    words = _WORD.findall(unicodedata.normalize("NFC", text[:MAX_QUERY_CHARS]).lower())
    for tag in list(tags)[:MAX_TERMS]:
        words.extend(_WORD.findall(unicodedata.normalize("NFC", tag[:MAX_TERM_CHARS]).lower()))
    terms: list[str] = []
    seen: set[str] = set()
    for word in words:
        if word in STOPWORDS or word in seen or (len(word) < 2 and word.isascii()):
            continue
        seen.add(word)
        terms.append(word[:MAX_TERM_CHARS])
        if len(terms) == MAX_TERMS:
            break
    return terms


def fts5_query(terms: Sequence[str]) -> str:
    """`"a" OR "b"`: every term a quoted string, so no FTS5 operator can come from user text."""
    return " OR ".join('"' + term.replace('"', '""') + '"' for term in terms)


def tsquery(terms: Sequence[str]) -> str:
    """`'a' | 'b'` for to_tsquery: every term a quoted lexeme, so no tsquery operator can come from user text."""
    return " | ".join("'" + term.replace("\\", "\\\\").replace("'", "''") + "'" for term in terms)


def fts5_and_query(terms: Sequence[str]) -> str:
    return " AND ".join(fts5_query([term]) for term in terms)


def tsquery_and(terms: Sequence[str]) -> str:
    return " & ".join(tsquery([term]) for term in terms)


def selective_terms(terms: Sequence[str], frequencies: Sequence[float], budget: float) -> list[str]:
    """The rarest terms, kept in the order written, while the documents they match add up to at most
    `budget`; empty when even the rarest term alone matches more."""
    kept: set[int] = set()
    total = 0.0
    for position in sorted(range(len(terms)), key=lambda i: (frequencies[i], i)):
        total += frequencies[position]
        if total > budget:
            break
        kept.add(position)
    return [term for position, term in enumerate(terms) if position in kept]


def pruned_queries(
    session: Session, dialect: str, terms: Sequence[str], frequencies: Sequence[float] | None = None
) -> list[str]:
    """The match expressions to try in turn (the next one only when the previous found too few documents).
    `frequencies`: the terms' document counts when the caller has them (else read here)."""
    budget = SCORING_BUDGET[dialect]
    if dialect == "sqlite":
        frequencies = _sqlite_frequencies(session, terms, budget) if frequencies is None else frequencies
        any_of, all_of = fts5_query, fts5_and_query
    else:
        frequencies = _postgres_frequencies(session, terms) if frequencies is None else frequencies
        any_of, all_of = tsquery, tsquery_and
    chosen = selective_terms(terms, frequencies, budget)
    if chosen:
        return [any_of(chosen)]
    rarest = [terms[i] for i in sorted(range(len(terms)), key=lambda i: (frequencies[i], i))[:2]]
    return [all_of(rarest), any_of(rarest[:1])] if len(rarest) > 1 else [any_of(rarest)]


def _sqlite_frequencies(session: Session, terms: Sequence[str], budget: int) -> list[float]:
    """How many documents each term matches, counted up to budget + 1 (one statement, nothing ranked)."""
    cap = int(budget) + 1
    statement = " UNION ALL ".join(
        f"SELECT {i}, (SELECT count(*) FROM (SELECT 1 FROM search_fts WHERE search_fts MATCH :t{i} LIMIT {cap}))"
        for i in range(len(terms))
    )
    rows = session.execute(sql(statement), {f"t{i}": fts5_query([term]) for i, term in enumerate(terms)})
    counts = {int(position): count for position, count in rows}
    return [float(counts.get(i, 0)) for i in range(len(terms))]


class _LexemeStatistics:
    """PostgreSQL's estimate of how many documents hold each common lexeme (pg_stats of search_documents.tsv),
    per database, re-read every STATS_TTL seconds; and each query term's lexemes (the english stemmer's)."""

    MAX_TERMS_CACHED = 50_000

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._documents: dict[str, tuple[float, tuple[dict[str, float], float, float]]] = {}
        self._lexemes: dict[str, tuple[str, ...]] = {}

    def frequencies(self, session: Session, terms: Sequence[str]) -> list[float]:
        common, other, _ = self._common(session)
        if not common:  # never analysed (a new or small store): nothing is known to be common
            return [0.0] * len(terms)
        lexemes = self._lexemes_of(session, terms)
        return [max((common.get(lexeme, other) for lexeme in lexemes[term]), default=0.0) for term in terms]

    def idf_weights(self, session: Session, frequencies: Sequence[float]) -> list[float]:
        """Each term's weight in the ranking: BM25's inverse document frequency of its commonest lexeme, from
        its document count as `frequencies` gives it (the same statistics); all 1.0 (ts_rank's own ranking)
        while the column was never analysed."""
        common, _, documents = self._common(session)
        if not common or documents <= 0:
            return [1.0] * len(frequencies)
        return [idf(documents, frequency) ** IDF_POWER for frequency in frequencies]

    def _common(self, session: Session) -> tuple[dict[str, float], float, float]:
        """The common lexemes' document counts, and the count to assume for any other lexeme: half the least
        common one's, as PostgreSQL's own planner assumes (tsquery selectivity). Counting the others as 0 let a
        query of "rare" words match thousands of documents once a workspace had a million (bench/ask_scale.py)."""
        key = session.get_bind().engine.url.render_as_string(hide_password=True)
        now = time.monotonic()
        with self._lock:
            cached = self._documents.get(key)
        if cached is not None and cached[0] > now:
            return cached[1]
        row = session.execute(sql(_PG_LEXEME_STATS)).first()
        common: dict[str, float] = {}
        other = documents = 0.0
        if row is not None and row.elems and row.freqs and row.reltuples and row.reltuples > 0:
            documents = float(row.reltuples)
            # most_common_elem_freqs carries three summary numbers after one frequency per element: the least
            # and the greatest of those frequencies, and the share of empty values.
            common = {elem: freq * row.reltuples for elem, freq in zip(row.elems, row.freqs, strict=False)}
            if len(row.freqs) > len(row.elems):
                other = row.freqs[len(row.elems)] * row.reltuples / 2
        with self._lock:
            self._documents[key] = (now + STATS_TTL, (common, other, documents))
        return common, other, documents

    def _lexemes_of(self, session: Session, terms: Sequence[str]) -> dict[str, tuple[str, ...]]:
        with self._lock:
            known = {term: self._lexemes[term] for term in terms if term in self._lexemes}
        missing = [term for term in terms if term not in known]
        if missing:
            rows = session.execute(sql(_PG_LEXEMES), {"terms": missing}).all()
            found = {term: tuple(lexemes or ()) for term, lexemes in rows}
            with self._lock:
                if len(self._lexemes) > self.MAX_TERMS_CACHED:
                    self._lexemes.clear()
                self._lexemes.update(found)
            known |= found
        return known


_PG_LEXEME_STATS = """
SELECT CAST(CAST(s.most_common_elems AS text) AS text[]) AS elems, s.most_common_elem_freqs AS freqs, c.reltuples
FROM pg_stats s JOIN pg_class c ON c.oid = to_regclass('search_documents')
WHERE s.schemaname = current_schema() AND s.tablename = 'search_documents' AND s.attname = 'tsv'
"""
_PG_LEXEMES = """
SELECT t.term, tsvector_to_array(to_tsvector('english', t.term)) FROM unnest(CAST(:terms AS text[])) AS t(term)
"""
_STATISTICS = _LexemeStatistics()


def _postgres_frequencies(session: Session, terms: Sequence[str]) -> list[float]:
    return _STATISTICS.frequencies(session, terms)


def idf(documents: float, frequency: float) -> float:
    """BM25's inverse document frequency (never negative) of a term in `frequency` of `documents` documents."""
    frequency = min(max(frequency, 0.0), documents)
    return math.log(1.0 + (documents - frequency + 0.5) / (frequency + 0.5))


@contextmanager
def _planned_for_its_values(session: Session, dialect: str) -> Iterator[None]:
    """PostgreSQL: plan the search for this query's terms. psycopg prepares a statement run five times, and
    PostgreSQL then may switch to a generic plan, which cannot know how many documents these terms match
    (measured: twice the latency at 100k documents). Only for this statement, inside the caller's transaction."""
    if dialect != "postgresql":
        yield
        return
    session.execute(sql("SET LOCAL plan_cache_mode = force_custom_plan"))
    yield  # on an error the caller's transaction rolls back, and the setting with it
    session.execute(sql("RESET plan_cache_mode"))


def ranked_documents(
    session: Session,
    *,
    team_id: str,
    terms: Sequence[str],
    viewer_channel_id: str | None,
    candidates: int,
    enough: int,
    exclude_question_id: int | None = None,
    exhaustive: bool = False,
) -> dict[int, float]:
    """The engine's best `candidates` documents for these terms (search_documents ids) with their relevance
    (higher is better; comparable within one call only), the privacy rule applied: items from a private
    channel only when `viewer_channel_id` is that channel. A pruned match that found fewer than `enough`
    documents is followed by the next, broader one (see pruned_queries)."""
    if not terms or candidates <= 0:
        return {}
    params: dict[str, object] = {
        "team_id": team_id,
        "viewer": viewer_channel_id,
        "exclude": exclude_question_id,
        "candidates": candidates,
    }
    exclude = "AND NOT (d.kind = 'question' AND d.ref_id = :exclude)" if exclude_question_id is not None else ""
    dialect = session.get_bind().dialect.name
    weights = {"title": TITLE_WEIGHT, "body": BODY_WEIGHT, "tags": TAGS_WEIGHT}  # read now: the benchmark sets them
    frequencies = None  # the terms' document counts, read once where both the ranking and the pruning need them
    if dialect == "sqlite":
        statement = _SQLITE_SEARCH.format(exclude=exclude, **weights)
        or_query = fts5_query
    elif dialect == "postgresql":
        statement = _POSTGRES_SEARCH.format(exclude=exclude, **weights)
        frequencies = _postgres_frequencies(session, terms)
        params |= {
            "rank_terms": [tsquery([term]) for term in terms],
            "rank_weights": _STATISTICS.idf_weights(session, frequencies),
        }
        or_query = tsquery
    else:
        raise NotImplementedError(f"no full-text search for the {dialect} database")
    queries = [or_query(terms)] if exhaustive else pruned_queries(session, dialect, terms, frequencies)
    rows: Sequence[Any] = []
    with _planned_for_its_values(session, dialect):
        for query in queries:
            rows = session.execute(sql(statement), params | {"query": query}).all()
            if len(rows) >= enough:
                break  # else the next, broader query
    return {int(row.id): float(row.relevance) for row in rows}


# A private channel's items are found only from that channel (the viewer's); the same rule everywhere.
PRIVACY = "(NOT d.channel_private OR d.channel_id = :viewer)"

_SQLITE_SEARCH = f"""
SELECT d.id, -bm25(search_fts, {{title}}, {{body}}, {{tags}}) AS relevance
FROM search_fts JOIN search_documents d ON d.id = search_fts.rowid
WHERE search_fts MATCH :query AND d.team_id = :team_id AND {PRIVACY} {{exclude}}
ORDER BY relevance DESC, d.kind, d.ref_id
LIMIT :candidates
"""

# ts_rank weights are {D, C, B, A}: answer is C, tags B, text A (see migration 0002). ts_rank, not
# ts_rank_cd: cover density rewards terms standing close together, which says little for an OR of
# words (and measured clearly worse in bench/search.py). Normalization 1 divides by 1 + log(document
# length), as BM25 discounts long documents. ts_rank of an OR query is the mean of its terms' own ranks
# (each saturating with the term's occurrences), every term alike; here each term's rank is weighted by
# its inverse document frequency instead (idf_weights), which ts_rank lacks: a rare word matched counts
# more than a common one, as in BM25. Each term is its own quoted tsquery, parsed once per search.
_POSTGRES_SEARCH = f"""
WITH rank_terms AS MATERIALIZED (
    SELECT to_tsquery('english', t.term) AS query, t.weight
    FROM unnest(CAST(:rank_terms AS text[]), CAST(:rank_weights AS float8[])) AS t(term, weight)
)
SELECT d.id, (SELECT sum(r.weight * ts_rank('{{{{0, {{body}}, {{tags}}, {{title}}}}}}'::float4[],
                                            d.tsv, r.query, 1)) FROM rank_terms r) AS relevance
FROM search_documents d
WHERE d.tsv @@ to_tsquery('english', :query) AND d.team_id = :team_id AND {PRIVACY} {{exclude}}
ORDER BY relevance DESC, d.kind, d.ref_id
LIMIT :candidates
"""
