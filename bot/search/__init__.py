"""Similar answered questions and lessons: the database's full text and sentence vectors, behind one interface.

`search_similar` ranks the union of two candidate lists:
- full text (bot/search/fulltext.py): the engine's best CANDIDATES documents for the words asked, with their
  relevance (SQLite FTS5 bm25, PostgreSQL ts_rank per term weighted by its IDF);
- vectors (bot/search/vectors.py): the CANDIDATES documents whose vectors are nearest the question's (cosine),
  so that a question is found by meaning even when it shares no word with the asker's;
by score = TEXT_WEIGHT x (relevance / the best relevance among the candidates) + VECTOR_WEIGHT x cosine,
multiplied by (1 + TAG_BOOST) for each of the asker's tags the document carries. The weights are the ones
chosen on the eight dev sites (bench/search.py, bench/RESULTS.md (6)).

When the embedding model cannot run, or the workspace has no vector yet, the ranking is the full text's alone
(as before vectors). A document still owed its vector (computed just after the change that made it) counts
with cosine 0 until it has one.

Privacy: a private channel's items are found only from that channel. Both candidate lists apply the rule
(full text in SQL, vectors in memory), and the rows shown are read with the same rule in SQL again.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import text as sql
from sqlalchemy.orm import Session

from bot.search import vectors
from bot.search.fulltext import PRIVACY, STOPWORDS, query_terms, ranked_documents
from bot.text import normalize_tag

if TYPE_CHECKING:
    import numpy as np

__all__ = [
    "CANDIDATES",
    "KIND_LESSON",
    "KIND_QUESTION",
    "STOPWORDS",
    "SUGGESTION_FLOOR",
    "SearchHit",
    "above_floor",
    "query_terms",
    "search_similar",
    "worth_showing",
]

KIND_QUESTION = "question"
KIND_LESSON = "lesson"

MAX_LIMIT = 50
# Candidates from each half (full text, vectors): the ranking reorders these, never reaches further down.
CANDIDATES = 50
TEXT_WEIGHT, VECTOR_WEIGHT = 0.3, 0.7
# Each of the asker's tags the document also carries multiplies its score by (1 + TAG_BOOST) (0.1: chosen in
# every leave-one-site-out fold, on both databases; 0.2 before vectors).
TAG_BOOST = 0.1
# Suggestions after /ask show only hits scoring at least this (with vectors): the lowest floor at which no dev
# site's store shows something for more than 15 % of another site's questions, chosen leaving one site out
# (0.48 in every fold; bench/search.py --fit, bench/RESULTS.md (6)); the goal is fewer than 1 in 5.
SUGGESTION_FLOOR = 0.48
# `/ask search` and the Home's search, which the person asked for, show a match by meaning alone (no word in
# common) from this cosine on: about where all-MiniLM-L6-v2 puts two questions on the same topic worded apart
# ("how do I undo my last commit" / "revert the most recent git change": 0.57; unrelated questions: below 0.1).
SEARCH_SIMILARITY = 0.5


@dataclass(frozen=True, slots=True)
class SearchHit:
    kind: str  # KIND_QUESTION or KIND_LESSON
    id: int
    channel_id: str
    message_ts: str | None
    text: str
    tags: tuple[str, ...]
    score: float  # higher is more similar
    author_id: str  # who asked the question or wrote the lesson
    answer_text: str | None = None  # the accepted answer (questions only)
    answer_user_id: str | None = None
    answer_ts: str | None = None
    # The cosine between the question's vector and this document's; None when vectors took no part.
    similarity: float | None = None
    words_matched: bool = True  # the full text found it (it shares a word with the question)


def above_floor(hits: Sequence[SearchHit], floor: float = SUGGESTION_FLOOR) -> list[SearchHit]:
    """The hits worth interrupting an asker with: scoring at least the floor. Without vectors (the model cannot
    run here, or the workspace has none yet) scores are only relative, and every hit is kept, as before."""
    return [hit for hit in hits if hit.similarity is None or hit.score >= floor]


def worth_showing(hits: Sequence[SearchHit], similarity: float = SEARCH_SIMILARITY) -> list[SearchHit]:
    """What an explicit search shows: every hit that shares a word with the search (as before vectors), and the
    ones found by meaning alone whose cosine is at least `similarity` (else the nearest vectors would always
    show something, however unrelated)."""
    return [
        hit
        for hit in hits
        if hit.words_matched or hit.similarity is None or (hit.similarity is not None and hit.similarity >= similarity)
    ]


def embed_query(text: str) -> np.ndarray | None:
    """The question's vector, or None when the embedding model cannot run here."""
    embed = vectors.embedder_or_none()
    return None if embed is None else embed([text])[0]


@dataclass(frozen=True, slots=True)
class Weights:
    text: float = TEXT_WEIGHT
    vector: float = VECTOR_WEIGHT
    tag_boost: float = TAG_BOOST


@dataclass(frozen=True, slots=True)
class Candidate:
    """A document either half found, with what its score is made of."""

    document_id: int
    kind: str
    ref_id: int
    text_part: float  # its full-text relevance / the best among the candidates (0: not among the full text's)
    cosine: float | None  # None: vectors took no part in this search; 0.0: this document has no current vector
    tag_matches: int  # the asker's tags it carries
    row: Any = field(default=None, compare=False, repr=False)  # its light row (_CANDIDATE_ROWS)

    def score(self, weights: Weights) -> float:
        base = self.text_part if self.cosine is None else weights.text * self.text_part + weights.vector * self.cosine
        return base * (1.0 + weights.tag_boost * self.tag_matches)


def search_similar(
    session: Session,
    *,
    team_id: str,
    text: str,
    tags: Sequence[str] = (),
    viewer_channel_id: str | None,
    limit: int = 3,
    exclude_question_id: int | None = None,
    exhaustive: bool = False,
    query_vector: np.ndarray | None = None,
    use_vectors: bool = True,
) -> list[SearchHit]:
    """The answered questions and lessons of this workspace most similar to `text` and `tags`, best first.

    Items from a private channel are returned only when `viewer_channel_id` is that channel (pass None
    where no channel is involved, e.g. a DM or the App Home: then only public channels are searched).
    `query_vector`: the question's vector when the caller has it (else computed here, once);
    `use_vectors=False`: full text alone (the benchmark's comparison).
    """
    limit = max(0, min(limit, MAX_LIMIT))
    found = candidates(
        session,
        team_id=team_id,
        text=text,
        tags=tags,
        viewer_channel_id=viewer_channel_id,
        enough=limit,
        exclude_question_id=exclude_question_id,
        exhaustive=exhaustive,
        query_vector=query_vector,
        use_vectors=use_vectors,
    )
    top = ranked(found, Weights())[:limit]
    shown = _shown_rows(session, team_id, viewer_channel_id, [candidate.document_id for candidate, _ in top])
    hits = []
    for candidate, score in top:
        row = shown.get(candidate.document_id)
        if row is None:  # gone since its candidate's row was read (a rebuild in between)
            continue
        hits.append(
            SearchHit(
                kind=candidate.kind,
                id=candidate.ref_id,
                channel_id=row.channel_id,
                message_ts=row.message_ts,
                text=row.title,
                tags=tuple(candidate.row.tags.split()),
                score=score,
                author_id=row.author_id or "",
                answer_text=row.answer_text,
                answer_user_id=row.answer_user_id,
                answer_ts=row.answer_ts,
                similarity=candidate.cosine,
                words_matched=candidate.text_part > 0,
            )
        )
    return hits


def ranked(found: Sequence[Candidate], weights: Weights) -> list[tuple[Candidate, float]]:
    """The candidates with their scores, best first (ties: questions before lessons, older first)."""
    scored = [(candidate, candidate.score(weights)) for candidate in found]
    scored.sort(key=lambda pair: (-pair[1], pair[0].kind, pair[0].ref_id))
    return scored


def candidates(
    session: Session,
    *,
    team_id: str,
    text: str,
    tags: Sequence[str] = (),
    viewer_channel_id: str | None,
    enough: int = 3,
    exclude_question_id: int | None = None,
    exhaustive: bool = False,
    query_vector: np.ndarray | None = None,
    use_vectors: bool = True,
    nearest: bool = True,
) -> list[Candidate]:
    """What both halves found for this question, privacy applied (see search_similar). `nearest=False`: the
    vectors only re-score the full text's candidates (the benchmark's comparison)."""
    terms = query_terms(text, tags)
    if not terms:  # only stopwords (or nothing): nothing to look for
        return []
    lexical = ranked_documents(
        session,
        team_id=team_id,
        terms=terms,
        viewer_channel_id=viewer_channel_id,
        candidates=max(enough, CANDIDATES),
        enough=max(enough, 1),
        exclude_question_id=exclude_question_id,
        exhaustive=exhaustive,
    )
    near: dict[int, vectors.Near] = {}
    semantic = False
    index = vectors.index_for(session, team_id, vectors.model_name()) if use_vectors and _embedding_possible() else None
    if index is not None and len(index):
        query = query_vector if query_vector is not None else embed_query(text)
        if query is not None:
            semantic = True
            if nearest:
                near = {n.document_id: n for n in index.nearest(query, CANDIDATES + 1, viewer_channel_id)}
            near |= index.cosines(query, [d for d in lexical if d not in near])
    if not lexical and not near:
        return []
    rows = _candidate_rows(session, team_id, viewer_channel_id, exclude_question_id, set(lexical) | set(near))
    for document_id in [d for d, row in rows.items() if row.excluded]:  # the asker's own question
        del rows[document_id]
        near.pop(document_id, None)
    if index is not None and semantic:
        _drop_stale(session, index, near, rows)
    best = max(lexical.values(), default=0.0)
    wanted = {tag for tag in map(normalize_tag, tags) if tag}
    return [
        Candidate(
            document_id=document_id,
            kind=row.kind,
            ref_id=int(row.ref_id),
            text_part=lexical.get(document_id, 0.0) / best if best > 0 else 0.0,
            cosine=(near[document_id].cosine if document_id in near else 0.0) if semantic else None,
            tag_matches=len(wanted.intersection(row.tags.split())),
            row=row,
        )
        for document_id, row in rows.items()
        if document_id in lexical or document_id in near  # a stale vector's document is no candidate
    ]


def _drop_stale(
    session: Session, index: vectors.VectorIndex, near: dict[int, vectors.Near], facts: dict[int, Any]
) -> None:
    """Never let a vector count that is not its document's current one: drop from `near` every cosine whose
    vector is not the one stored now, and forget from memory those whose document has no such vector any more
    (deleted or rebuilt; an excluded or invisible document keeps its vector)."""
    stale = [d for d, n in near.items() if d not in facts or facts[d].vector_seq != n.seq]
    if not stale:
        return
    current = vectors.current_seqs(session, stale)
    gone = [d for d in stale if current.get(d, -1) < near[d].seq]
    if gone:
        index.forget(gone)
    for document_id in stale:
        del near[document_id]


def _embedding_possible() -> bool:
    return vectors.embedder_or_none() is not None


def _candidate_rows(
    session: Session, team_id: str, viewer: str | None, exclude_question_id: int | None, ids: set[int]
) -> dict[int, Any]:
    """The candidates the viewer may see, with what ranking them needs (kind, tags) and their current vector's
    seq (None: none yet); `excluded`: the question being asked (its own vector found it). What a hit shows is
    read for the few shown only (_shown_rows)."""
    params = {"ids": _id_list(session, ids), "team_id": team_id, "viewer": viewer, "exclude": exclude_question_id or 0}
    statement = _CANDIDATE_ROWS.format(ids=_ID_LIST[session.get_bind().dialect.name])
    return {int(row.id): row for row in session.execute(sql(statement), params).all()}


def _shown_rows(session: Session, team_id: str, viewer: str | None, ids: Sequence[int]) -> dict[int, Any]:
    """What the hits show (text, link, author, accepted answer), privacy applied again."""
    if not ids:
        return {}
    params = {"ids": _id_list(session, ids), "team_id": team_id, "viewer": viewer}
    statement = _SHOWN_ROWS.format(ids=_ID_LIST[session.get_bind().dialect.name])
    return {int(row.id): row for row in session.execute(sql(statement), params).all()}


def _id_list(session: Session, ids: Iterable[int]) -> object:
    """Document ids as ONE bound value (a JSON array on SQLite, an array on PostgreSQL), so that the statement's
    text is the same whatever their number and each engine reuses its prepared statement (an expanding IN makes
    a new statement for every count)."""
    ordered = sorted(ids)
    return json.dumps(ordered) if session.get_bind().dialect.name == "sqlite" else ordered


_ID_LIST = {
    "sqlite": "d.id IN (SELECT value FROM json_each(:ids))",
    "postgresql": "d.id = ANY(CAST(:ids AS integer[]))",
}

_CANDIDATE_ROWS = f"""
SELECT d.id, d.kind, d.ref_id, d.tags, v.seq AS vector_seq,
       CASE WHEN d.kind = 'question' AND d.ref_id = :exclude THEN 1 ELSE 0 END AS excluded
FROM search_documents d
LEFT JOIN search_vectors v ON v.document_id = d.id
WHERE {{ids}} AND d.team_id = :team_id AND {PRIVACY}
"""

_SHOWN_ROWS = f"""
SELECT d.id, d.channel_id, d.message_ts, d.title,
       coalesce(q.asker_id, l.author_id) AS author_id,
       a.text AS answer_text, a.user_id AS answer_user_id, a.ts AS answer_ts
FROM search_documents d
LEFT JOIN questions q ON d.kind = 'question' AND q.id = d.ref_id
LEFT JOIN answers a ON a.id = q.accepted_answer_id
LEFT JOIN lessons l ON d.kind = 'lesson' AND l.id = d.ref_id
WHERE {{ids}} AND d.team_id = :team_id AND {PRIVACY}
"""
