"""The semantic half of the search: one sentence vector per searchable document, stored, kept in step, searched.

Stored (migration 0013): `search_vectors` holds one vector per `search_documents` row, the model's name and a
hash of the text it was computed from. A document's vector is normalise(v(text) + ANSWER_WEIGHT x v(accepted
answer)), or v(text) for a lesson or a question without answer text. The triggers of 0002 rebuild a document as
a new row whenever anything in it changes (an edit, an accept, forget-user's redaction) and the old vector is
deleted with the old row (ON DELETE CASCADE), in the same transaction: a stale vector is never read. A vector
is written only if its document still holds the text it was computed from (checked in the INSERT itself).

Owed and resumable: a document without a vector of the current model is owed one; `fill_missing` computes
them, newest first, in batches, each committed. The running app calls it after the inbox worker's batches and
the lazy listeners (bot/runtime/vectors.py) and from a scheduler tick; `python app.py reindex` calls it too.
Two processes computing the same vector is harmless: the second one's write replaces the first's.

Searched (`VectorIndex`): each process holds a workspace's vectors in memory (float32, one row per document,
384 x 4 bytes each) and catches up before each search by reading the vectors with a `seq` above the last it
has read (PostgreSQL: writers take their numbers from the one-row counter, which they hold locked until they
commit, so numbers become visible in order; SQLite serialises writers). Nearest neighbours are one matrix-
vector product; the privacy rule (a private channel's items only from that channel) is applied to them in
memory, and the search checks each again in SQL with the vector's seq (bot/search/__init__.py), which also
drops a vector whose document is gone. Vectors of deleted documents stay in memory until a search meets them
or the periodic sweep (SWEEP_SECONDS) finds fewer vectors in the database than in memory.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from sqlalchemy import bindparam
from sqlalchemy import text as sql
from sqlalchemy.orm import Session

from bot.services import Services

if TYPE_CHECKING:
    import numpy as np

logger = logging.getLogger("peerlearn.search")

ANSWER_WEIGHT = 0.5  # the accepted answer's part in a question's vector (the study's setting)
FILL_BATCH = 32  # documents embedded and written per transaction
SWEEP_SECONDS = 600.0  # how often a process compares its vectors in memory with the database's
# Nearest vectors at scale (bench/search_scale.py): from CLUSTERED_FROM vectors on, a workspace's vectors are
# grouped in sqrt(n) clusters (k-means, KMEANS_ROUNDS rounds on SAMPLE_PER_CLUSTER vectors per cluster) and a
# search compares those of the PROBES clusters nearest the question; below, all of them (exact).
CLUSTERED_FROM = 20_000
PROBES = 32
KMEANS_ROUNDS = 6
SAMPLE_PER_CLUSTER = 40
REBUILD_TAIL_SHARE = 0.2  # clusters made again once this share of the vectors came after them


class Embed(Protocol):
    def __call__(self, texts: Sequence[str]) -> np.ndarray: ...


# --- the embedding runtime, loaded once per process ----------------------------------------------------------

_unavailable_said = threading.Event()


def model_name() -> str:
    from bot.embedding import MODEL_NAME

    return MODEL_NAME


def embedder_or_none() -> Embed | None:
    """The process's embedder's `embed`, or None when the runtime cannot run here (said once in the log: search
    then ranks by full text alone, and no vector is computed)."""
    try:
        from bot.embedding import EmbeddingUnavailable, embedder
    except ImportError as problem:  # numpy or the tokenizer library missing altogether
        _say_unavailable(problem)
        return None
    try:
        return embedder().embed
    except EmbeddingUnavailable as problem:
        _say_unavailable(problem)
        return None


def _say_unavailable(problem: Exception) -> None:
    if not _unavailable_said.is_set():
        _unavailable_said.set()
        logger.error(
            "semantic search is off: the embedding model cannot be loaded (%s); search uses full text only", problem
        )


# --- computing and storing ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Owed:
    """A document that has no vector of the current model."""

    id: int
    team_id: str
    title: str
    body: str


def content_hash(model: str, title: str, body: str) -> str:
    """What a vector was computed from (the model and the document's two texts)."""
    return hashlib.sha256("\0".join((model, title, body)).encode()).hexdigest()


def document_vectors(embed: Embed, documents: Sequence[Owed]) -> np.ndarray:
    """normalise(v(text) + ANSWER_WEIGHT x v(answer)) per document (v(text) alone without answer text)."""
    import numpy as np

    answered = [i for i, document in enumerate(documents) if document.body.strip()]
    vectors = np.array(embed([document.title for document in documents]), dtype=np.float32)
    if answered:
        vectors[answered] += ANSWER_WEIGHT * np.asarray(embed([documents[i].body for i in answered]), np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.where(norms > 0, norms, 1.0)


def missing(
    session: Session, model: str, *, limit: int, team_id: str | None = None, from_id: int | None = None
) -> list[Owed]:
    """Documents owed a vector of `model`, newest first; with `from_id`, only those whose id is at least that
    (an index range: what was added since a look that found nothing owed)."""
    team = "AND d.team_id = :team_id" if team_id is not None else ""
    recent = "AND d.id >= :from_id" if from_id is not None else ""
    rows = session.execute(
        sql(f"""
SELECT d.id, d.team_id, d.title, d.body FROM search_documents d
WHERE NOT EXISTS (SELECT 1 FROM search_vectors v WHERE v.document_id = d.id AND v.model = :model) {team} {recent}
ORDER BY d.id DESC LIMIT :limit"""),
        {"model": model, "limit": limit, "team_id": team_id, "from_id": from_id},
    )
    return [Owed(int(row.id), row.team_id, row.title, row.body) for row in rows]


def last_document_id(session: Session) -> int:
    return int(session.execute(sql("SELECT coalesce(max(id), 0) FROM search_documents")).scalar_one())


def count_missing(session: Session, model: str, team_id: str | None = None) -> int:
    team = "AND d.team_id = :team_id" if team_id is not None else ""
    return int(
        session.execute(
            sql(f"""
SELECT count(*) FROM search_documents d
WHERE NOT EXISTS (SELECT 1 FROM search_vectors v WHERE v.document_id = d.id AND v.model = :model) {team}"""),
            {"model": model, "team_id": team_id},
        ).scalar_one()
    )


def next_numbers(session: Session, count: int) -> int:
    """Reserve `count` seq numbers; returns the last of them. On PostgreSQL the counter row stays locked until
    the caller commits, so vectors become visible in the order of their numbers."""
    return int(
        session.execute(
            sql(
                "INSERT INTO search_vector_counter (id, value) VALUES (1, :count) "
                "ON CONFLICT (id) DO UPDATE SET value = search_vector_counter.value + :count "
                "RETURNING value"
            ),
            {"count": count},
        ).scalar_one()
    )


_WRITE = """
INSERT INTO search_vectors (document_id, team_id, model, content_hash, vector, seq)
SELECT d.id, d.team_id, :model, :content_hash, :vector, :seq FROM search_documents d
WHERE d.id = :id AND d.title = :title AND d.body = :body
ON CONFLICT (document_id) DO UPDATE SET model = excluded.model, content_hash = excluded.content_hash,
    vector = excluded.vector, seq = excluded.seq
"""


def store_vectors(session: Session, model: str, documents: Sequence[Owed], vectors: np.ndarray) -> int:
    """Write these documents' vectors (in the caller's transaction); each only if its document still holds the
    text it was computed from. Returns how many were written."""
    from bot.embedding import to_bytes

    if not documents:
        return 0
    last = next_numbers(session, len(documents))
    written = 0
    for offset, (document, vector) in enumerate(zip(documents, vectors, strict=True)):
        result = session.execute(
            sql(_WRITE),
            {
                "id": document.id,
                "title": document.title,
                "body": document.body,
                "model": model,
                "content_hash": content_hash(model, document.title, document.body),
                "vector": to_bytes(vector),
                "seq": last - len(documents) + 1 + offset,
            },
        )
        written += int(result.rowcount or 0)  # type: ignore[attr-defined]
    return written


def fill_missing(
    session: Session,
    embed: Embed,
    *,
    team_id: str | None = None,
    from_id: int | None = None,
    batch: int = FILL_BATCH,
    limit: int | None = None,
    stop: Callable[[], bool] = lambda: False,
    progress: Callable[[int], None] | None = None,
) -> int:
    """Compute and store the vectors owed (newest documents first; with `from_id`, of documents from that id
    on), `batch` per transaction, until none is owed, `limit` are done or `stop()`. No transaction is open
    while embedding. Returns how many were written; `progress(written so far)` after each batch."""
    model = model_name()
    done = 0
    while (limit is None or done < limit) and not stop():
        size = batch if limit is None else min(batch, limit - done)
        owed = missing(session, model, limit=size, team_id=team_id, from_id=from_id)
        session.rollback()  # nothing written: end the read's transaction before the slow part
        if not owed:
            break
        vectors = document_vectors(embed, owed)
        written = store_vectors(session, model, owed, vectors)
        session.commit()
        done += written
        if progress is not None:
            progress(done)
        if written == 0:  # every one changed meanwhile: the next pass reads them again
            break
    return done


TICK_LIMIT = 256  # vectors a scheduler tick computes at most (the rest: the next tick, or the filler)


def tick(services: Services, client: object, now: object) -> int:
    """The scheduler's look for owed vectors, over every document (the filler after the inbox's work looks only
    at the newest): computes at most TICK_LIMIT. Embedding unavailable: said once, nothing done."""
    embed = embedder_or_none()
    if embed is None:
        return 0
    with services.store.session() as session:
        return fill_missing(session, embed, limit=TICK_LIMIT, stop=services.stopping.is_set)


def forget_all(session: Session, team_id: str | None = None) -> int:
    """Delete the vectors (of one workspace): every document is owed one again (`reindex --all`)."""
    team = "WHERE team_id = :team_id" if team_id is not None else ""
    result = session.execute(sql(f"DELETE FROM search_vectors {team}"), {"team_id": team_id})
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


# --- held in memory and searched --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Near:
    document_id: int
    seq: int  # of the vector that gave this cosine: the search checks it is still the document's
    cosine: float


class VectorIndex:
    """One workspace's vectors in this process, caught up by `seq` before each search. Thread-safe."""

    def __init__(self, team_id: str, model: str) -> None:
        import numpy as np

        from bot.embedding import one_blas_thread

        one_blas_thread()
        self.team_id = team_id
        self.model = model
        self._lock = threading.Lock()
        self._size = 0
        self._matrix = np.zeros((0, 0), dtype=np.float32)
        self._ids = np.zeros(0, dtype=np.int64)
        self._seqs = np.zeros(0, dtype=np.int64)
        self._channels = np.zeros(0, dtype=np.int32)
        self._private = np.zeros(0, dtype=bool)
        self._live = np.zeros(0, dtype=bool)
        self._row_of: dict[int, int] = {}
        self._channel_codes: dict[str, int] = {}
        self._last_seq = 0
        self._next_sweep = time.monotonic() + SWEEP_SECONDS
        self._clusters: np.ndarray | None = None  # unit centroids, when the vectors are clustered
        self._starts: np.ndarray | None = None  # cluster c is rows _starts[c] .. _starts[c + 1]
        self._clustered = 0  # rows from here on came after the clustering (always compared)

    def __len__(self) -> int:
        return len(self._row_of)

    def catch_up(self, session: Session) -> int:
        """Read the vectors written since the last call; returns how many."""
        from bot.embedding import from_bytes

        with self._lock:
            rows = session.execute(
                sql("""
SELECT v.document_id, v.seq, v.vector, d.channel_id, d.channel_private
FROM search_vectors v JOIN search_documents d ON d.id = v.document_id
WHERE v.team_id = :team_id AND v.seq > :seq AND v.model = :model ORDER BY v.seq"""),
                {"team_id": self.team_id, "seq": self._last_seq, "model": self.model},
            ).all()
            for row in rows:
                self._put(
                    int(row.document_id), int(row.seq), from_bytes(row.vector), row.channel_id, row.channel_private
                )
                self._last_seq = max(self._last_seq, int(row.seq))
            if time.monotonic() >= self._next_sweep:
                self._sweep(session)
            return len(rows)

    def nearest(self, query: np.ndarray, k: int, viewer_channel_id: str | None, *, exact: bool = False) -> list[Near]:
        """The `k` documents whose vectors are closest to `query` (a unit vector) that the viewer may see. From
        CLUSTERED_FROM vectors on, only the vectors of the PROBES clusters nearest the query are compared (and
        every vector added since the clusters were made); `exact=True` compares them all (the benchmark's
        reference)."""
        import numpy as np

        query = np.asarray(query, dtype=np.float32)
        with self._lock:
            if self._size == 0 or k <= 0:
                return []
            if not exact:
                self._cluster_if_due()
            ranges = self._probed_rows(query) if not exact and self._clusters is not None else [(0, self._size)]
            if not ranges:
                return []
            cosines = np.concatenate([self._matrix[start:end] @ query for start, end in ranges])
            rows = np.concatenate([np.arange(start, end) for start, end in ranges])
            viewer = self._channel_codes.get(viewer_channel_id or "", -1)
            visible = self._live[rows] & (~self._private[rows] | (self._channels[rows] == viewer))
            cosines = np.where(visible, cosines, -np.inf)
            k = min(k, len(rows))
            top = np.argpartition(-cosines, k - 1)[:k] if k < len(rows) else np.arange(len(rows))
            top = top[np.isfinite(cosines[top])]
            top = top[np.argsort(-cosines[top], kind="stable")]
            return [Near(int(self._ids[rows[i]]), int(self._seqs[rows[i]]), float(cosines[i])) for i in top]

    def prepare(self) -> None:
        """Make the clusters now if they are due (else the next search would)."""
        with self._lock:
            self._cluster_if_due()

    # --- clusters (an inverted file): at 100k vectors, comparing every one costs more than a search may ---

    def _cluster_if_due(self) -> None:
        if self._size >= CLUSTERED_FROM and self._tail_share() > REBUILD_TAIL_SHARE:
            self._cluster()

    def _tail_share(self) -> float:
        """The share of the vectors added since the clusters were made (1.0: never made)."""
        return 1.0 if self._clusters is None else (self._size - self._clustered) / max(self._size, 1)

    def _probed_rows(self, query: np.ndarray) -> list[tuple[int, int]]:
        """Row ranges to compare: the PROBES clusters nearest the query, and the rows added since."""
        import numpy as np

        assert self._clusters is not None and self._starts is not None
        nearest = np.argsort(-(self._clusters @ query))[:PROBES]
        ranges = [(int(self._starts[c]), int(self._starts[c + 1])) for c in sorted(nearest)]
        ranges.append((self._clustered, self._size))
        return [(start, end) for start, end in ranges if end > start]

    def _cluster(self) -> None:
        """k-means (a few rounds, on a sample) over the live vectors, then the rows reordered by cluster, so each
        cluster is one slice of the matrix. Made when the vectors reach CLUSTERED_FROM, and again once a
        REBUILD_TAIL_SHARE of them came after (seconds at 100k vectors, in the search that finds it due)."""
        import numpy as np

        self._compact()
        size = self._size
        matrix = self._matrix[:size]
        count = max(1, int(np.sqrt(size)))
        rng = np.random.default_rng(0)
        sample = matrix[rng.choice(size, size=min(size, count * SAMPLE_PER_CLUSTER), replace=False)]
        centroids = sample[rng.choice(len(sample), size=count, replace=False)].copy()
        for _ in range(KMEANS_ROUNDS):
            assigned = np.argmax(sample @ centroids.T, axis=1)
            for cluster in range(count):
                members = sample[assigned == cluster]
                if len(members):
                    centroid = members.sum(axis=0)
                    centroids[cluster] = centroid / max(float(np.linalg.norm(centroid)), 1e-12)
        assigned = np.concatenate(
            [np.argmax(matrix[start : start + 8192] @ centroids.T, axis=1) for start in range(0, size, 8192)]
        )
        order = np.argsort(assigned, kind="stable")
        self._reorder(order)
        self._clusters = centroids
        self._starts = np.searchsorted(assigned[order], np.arange(count + 1))
        self._clustered = size

    def cosines(self, query: np.ndarray, document_ids: Iterable[int]) -> dict[int, Near]:
        """The cosine of each of these documents that has a vector here."""
        import numpy as np

        with self._lock:
            rows = [
                (document_id, self._row_of[document_id]) for document_id in document_ids if document_id in self._row_of
            ]
            if not rows:
                return {}
            positions = np.array([row for _, row in rows])
            values = self._matrix[positions] @ np.asarray(query, dtype=np.float32)
            return {
                document_id: Near(document_id, int(self._seqs[row]), float(value))
                for (document_id, row), value in zip(rows, values, strict=True)
            }

    def forget(self, document_ids: Iterable[int]) -> None:
        """Drop these documents' vectors from memory (the search found them gone or replaced)."""
        with self._lock:
            for document_id in document_ids:
                row = self._row_of.pop(document_id, None)
                if row is not None:
                    self._live[row] = False

    # --- inside the lock ---

    def _put(self, document_id: int, seq: int, vector: np.ndarray, channel_id: str, private: bool) -> None:
        row = self._row_of.get(document_id)
        if row is not None and row < self._clustered:  # its cluster may not fit the new vector: add it anew
            self._live[row] = False
            row = None
        if row is None:
            self._grow(self._size + 1, len(vector))  # may compact first: the new row's place comes after
            row = self._size
            self._size += 1
            self._row_of[document_id] = row
        self._matrix[row] = vector
        self._ids[row] = document_id
        self._seqs[row] = seq
        self._channels[row] = self._channel_codes.setdefault(channel_id, len(self._channel_codes))
        self._private[row] = bool(private)
        self._live[row] = True

    def _grow(self, needed: int, dimensions: int) -> None:
        import numpy as np

        capacity = len(self._ids)
        if needed <= capacity:
            return
        live = self._live[: self._size]
        if self._size and live.sum() < self._size * 3 // 4:  # a quarter or more is dead: compact first
            self._compact()
            needed = self._size + 1
            if needed <= capacity:
                return
        capacity = max(needed, capacity * 2, 1024)
        matrix = np.zeros((capacity, dimensions), dtype=np.float32)
        if self._size:
            matrix[: self._size] = self._matrix[: self._size]
        self._matrix = matrix
        for name, dtype in (("_ids", np.int64), ("_seqs", np.int64), ("_channels", np.int32), ("_private", bool)):
            array = np.zeros(capacity, dtype=dtype)
            array[: self._size] = getattr(self, name)[: self._size]
            setattr(self, name, array)
        live = np.zeros(capacity, dtype=bool)
        live[: self._size] = self._live[: self._size]
        self._live = live

    def _compact(self) -> None:
        """Drop the dead rows (the clusters go with them: made again when due)."""
        import numpy as np

        keep = np.flatnonzero(self._live[: self._size])
        if len(keep) < self._size:
            self._reorder(keep)
            self._clusters, self._starts, self._clustered = None, None, 0

    def _reorder(self, rows: np.ndarray) -> None:
        """Keep these rows, in this order, at the start of the arrays."""
        for name in ("_matrix", "_ids", "_seqs", "_channels", "_private", "_live"):
            array = getattr(self, name)
            array[: len(rows)] = array[rows]
            array[len(rows) : self._size] = 0
        self._size = len(rows)
        self._row_of = {int(document_id): row for row, document_id in enumerate(self._ids[: self._size])}

    def _sweep(self, session: Session) -> None:
        """Forget the vectors deleted in the database (documents dropped or rebuilt) when there are any."""
        self._next_sweep = time.monotonic() + SWEEP_SECONDS
        stored = session.execute(
            sql("SELECT count(*) FROM search_vectors WHERE team_id = :team_id AND model = :model"),
            {"team_id": self.team_id, "model": self.model},
        ).scalar_one()
        if int(stored) >= len(self._row_of):
            return
        current = set(
            session.execute(
                sql("SELECT document_id, seq FROM search_vectors WHERE team_id = :team_id AND model = :model"),
                {"team_id": self.team_id, "model": self.model},
            ).tuples()
        )
        for document_id, row in list(self._row_of.items()):
            if (document_id, int(self._seqs[row])) not in current:
                del self._row_of[document_id]
                self._live[row] = False


_indexes: dict[tuple[str, str, str], VectorIndex] = {}
_indexes_lock = threading.Lock()


def index_for(session: Session, team_id: str, model: str) -> VectorIndex:
    """This process's index of one workspace in the session's database, caught up."""
    key = (session.get_bind().engine.url.render_as_string(hide_password=True), team_id, model)
    with _indexes_lock:
        index = _indexes.get(key)
        if index is None:
            index = _indexes[key] = VectorIndex(team_id, model)
    index.catch_up(session)
    return index


def warm_indexes(session: Session) -> int:
    """Read every workspace's vectors into this process's memory (and cluster them when due), so that the first
    search does not wait for it. Returns the vectors held."""
    model = model_name()
    teams = session.execute(sql("SELECT DISTINCT team_id FROM search_vectors WHERE model = :model"), {"model": model})
    held = 0
    for (team_id,) in teams.all():
        index = index_for(session, team_id, model)
        index.prepare()
        held += len(index)
    return held


def forget_indexes() -> None:
    """Drop every index held in memory (tests, whose databases are emptied between them)."""
    with _indexes_lock:
        _indexes.clear()


def current_seqs(session: Session, document_ids: Sequence[int]) -> dict[int, int]:
    """The seq of each of these documents' current vectors (the ones without a vector are absent)."""
    if not document_ids:
        return {}
    statement = sql("SELECT document_id, seq FROM search_vectors WHERE document_id IN :ids").bindparams(
        bindparam("ids", expanding=True)
    )
    return {int(document_id): int(seq) for document_id, seq in session.execute(statement, {"ids": list(document_ids)})}
