"""The inbox worker: the requests the HTTP server acknowledged into the inbox (models/inbox.py), handed to
Bolt in the order they arrived.

Bolt runs each as it runs a Socket Mode request (`mode="socket_mode"`: its signature was checked when it
arrived, and by now it may be older than the five minutes a signature is valid for), through the same
middleware and listeners as any request: the ack step stores, lazy listeners talk to Slack in Bolt's pool.
The worker takes the next batch only while that pool has room, so a flood waits in the inbox, on disk, not
in memory. It runs as a thread of `serve` (and of the tests, the playground), or of `python app.py work` on
other machines, with PostgreSQL.

A database outage stops the batch before anything of it is lost: it stays in the inbox (PostgreSQL rolls
the claim back, SQLite deletes only handled rows) and the worker retries with a growing pause.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

from slack_bolt import App, BoltRequest
from slack_bolt.request.internals import parse_body
from slack_sdk.webhook import WebhookClient
from sqlalchemy.exc import SQLAlchemyError

from models.inbox import Inbox, InboxRequest
from models.session import Store

logger = logging.getLogger("peerlearn.worker")

BATCH = 50
IDLE_POLL = 0.05  # seconds between looks at an empty inbox filled by another process
MAX_PAUSE = 30.0  # seconds, the longest wait between tries while the database is down
MAX_TRIES = 5  # a request whose listener says "try again" this often while the database answers is dropped


# The work after the acks (this worker, Bolt's lazy listeners) runs at a lower CPU priority than the HTTP
# threads: acks have Slack's 3-second deadline, the work after them has none (on a busy machine it waits, in
# the inbox). Linux sets a niceness per thread (bench/RESULTS.md: ack p50 at 1 client 1.8-3.9 ms -> 0.6 ms).
BACKGROUND_NICENESS = 10


def lower_this_threads_priority() -> None:
    """Give this thread BACKGROUND_NICENESS more than the process (Linux only: elsewhere the call would name
    a process, not a thread)."""
    if sys.platform == "linux":
        try:
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), BACKGROUND_NICENESS)
        except OSError:  # a sandbox that forbids it: the same priority as the acks, as before
            logger.debug("could not lower the priority of %s", threading.current_thread().name)


class Redeliver(Exception):
    """The listener could not store the request (its answer was a 503): try it again later."""


class InboxWorker:
    def __init__(
        self,
        inbox: Inbox,
        app: App,
        store: Store,
        *,
        has_room: Callable[[], bool] = lambda: True,
        batch: int = BATCH,
        after_batch: Callable[[], None] = lambda: None,
    ) -> None:
        self.inbox = inbox
        self.app = app
        self.store = store
        self.has_room = has_room
        self.batch_size = batch
        self.after_batch = after_batch  # what the stored changes make owed (search vectors) is computed then
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._busy = threading.Lock()  # held while a batch is being handled
        self._tries: dict[int, int] = {}  # inbox id -> 503s so far

    # --- running ------------------------------------------------------------------------------------------

    def start(self) -> InboxWorker:
        self._thread = threading.Thread(target=self.run, name="peerlearn-inbox-worker", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        self._stopping.set()
        self.inbox.arrived.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def run(self) -> None:
        lower_this_threads_priority()
        pause = 0.0
        while not self._stopping.is_set():
            if pause:
                self._stopping.wait(pause)
            try:
                handled = self.run_once()
            except Exception as exc:
                pause = min(max(pause * 2, 1.0), MAX_PAUSE)
                logger.warning("the inbox worker will try again in %.0fs: %s", pause, exc.__class__.__name__)
                continue
            pause = 0.0
            if not handled:
                self.inbox.arrived.wait(IDLE_POLL)
                self.inbox.arrived.clear()

    def run_once(self) -> int:
        """Handle the next batch; how many requests it held. Raises (and leaves the batch in the inbox)
        when the database is down."""
        while not self.has_room() and not self._stopping.is_set():
            time.sleep(0.01)
        with self._busy, self.inbox.batch(self.batch_size) as requests:
            if requests and not self.store.ping():
                raise Redeliver("database unreachable")
            for request in requests:
                self.handle(request)
        if requests:
            self.after_batch()
        return len(requests)

    def wait_idle(self, timeout: float = 10.0) -> None:
        """Until every request stored so far has been handed to Bolt (tests; the lazy listeners it started
        may still run), or the inbox cannot be read (then nothing in it can be handled either)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._busy:
                try:
                    if self.inbox.pending() == 0:
                        return
                except SQLAlchemyError:
                    return
            self.inbox.arrived.set()
            time.sleep(0.002)
        raise TimeoutError(f"the inbox still held {self.inbox.pending()} request(s) after {timeout}s")

    # --- one request --------------------------------------------------------------------------------------

    def handle(self, request: InboxRequest) -> None:
        body = parse_body(request.body, request.content_type or None)
        response = self.app.dispatch(BoltRequest(body=body, mode="socket_mode"))
        if response.status == 503:
            tries = self._tries[request.id] = self._tries.get(request.id, 0) + 1
            if tries < MAX_TRIES:
                raise Redeliver(request.request_key)
            del self._tries[request.id]
            logger.error("dropping %s from the inbox: still failing after %s tries", request.request_key, tries)
            return
        self._tries.pop(request.id, None)
        if response.status >= 400:
            logger.error("Bolt answered %s to %s from the inbox", response.status, request.request_key)
            return
        if body.get("command") and response.body:
            self._say(body, response.body)

    def _say(self, command: dict[str, Any], ack_body: str) -> None:
        """What the ack would have shown the person (Slack shows a command's ack body), through the
        command's response_url instead."""
        try:
            message = json.loads(ack_body)
        except ValueError:
            message = {"text": ack_body}
        url = command.get("response_url")
        if not url:
            return
        try:
            WebhookClient(url, timeout=15).send_dict(message)
        except Exception:
            logger.exception("could not answer %s through its response_url", command.get("command"))
