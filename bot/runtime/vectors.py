"""Search vectors computed after the ack: the owed ones (bot/search/vectors.py), right after the work that made
them owed.

Whatever changes searchable text runs in the inbox worker's batches (an edit, an accept, a deletion: stored before
the ack) or in Bolt's lazy listeners (a lesson or question gets its link once posted). After each, the
filler is woken: it runs as a task in Bolt's listener pool (at the background priority of the work after the
ack), one at a time, and computes what is owed among the documents added since its last look that found
nothing owed (an index range, so a look costs little however big the workspace); at most RUN_LIMIT per task,
then it queues itself again behind the other work while more is owed. The scheduler's `vectors` tick looks at
every document (bot/search/vectors.py: tick), so a vector left owed by a crash, a restart or another
replica's change is computed there; `python app.py reindex` does it all at once.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import Executor
from typing import Any

from bot.search import vectors
from models.session import Store

logger = logging.getLogger("peerlearn.search")

RUN_LIMIT = 256  # vectors one task computes before queueing itself behind the other work


class VectorFiller:
    def __init__(self, store: Store, executor: Executor, stopping: threading.Event) -> None:
        self.store = store
        self.executor = executor
        self.stopping = stopping
        self._lock = threading.Lock()
        self._queued = False
        self._from_id: int | None = None  # documents below this id had their vectors at the last full look

    def wake(self) -> None:
        """Queue a look for owed vectors, unless one is queued already. Never raises."""
        with self._lock:
            if self._queued or self.stopping.is_set():
                return
            self._queued = True
        try:
            self.executor.submit(self.run)
        except RuntimeError:  # the pool is shut down: the process is stopping
            with self._lock:
                self._queued = False

    def after_task(self, fn: Callable[..., Any]) -> None:
        """ObservedExecutor's hook: after any task but this filler's own."""
        if getattr(fn, "__self__", None) is not self:
            self.wake()

    def run(self) -> int:
        with self._lock:
            self._queued = False
        embed = vectors.embedder_or_none()
        if embed is None:
            return 0
        try:
            with self.store.session() as session:
                start = vectors.last_document_id(session)
                session.rollback()
                written = vectors.fill_missing(
                    session, embed, from_id=self._from_id, limit=RUN_LIMIT, stop=self.stopping.is_set
                )
                if self._from_id is None:  # the first look of this process: read the vectors in now, not at a search
                    vectors.warm_indexes(session)
        except Exception:
            if self.stopping.is_set():  # the process is stopping and closed the store under it: the next start
                logger.debug("search vectors left owed at the stop", exc_info=True)
            else:
                logger.exception("computing search vectors failed; the next change or the vectors tick tries again")
            return 0
        if written >= RUN_LIMIT:
            self.wake()  # more owed: behind what else waits in the pool
        elif not self.stopping.is_set():
            # Nothing owed from _from_id on: next time, look only at documents added from `start` on (`start`
            # itself included: SQLite gives a rebuilt newest document its old id again).
            self._from_id = start if self._from_id is None else max(self._from_id, start)
        return written
