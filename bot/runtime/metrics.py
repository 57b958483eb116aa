"""The runtime's Prometheus metrics: Slack's requests and our acks, the lazy-listener pool, and the page
`GET /metrics` serves (every metric of this process: the product's, bot/metrics.py, and these)."""

from __future__ import annotations

import contextvars
import threading
import time
import weakref
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, Counter, Gauge, Histogram, generate_latest

from bot.metrics import ObservedWebClient, SlackErrorObserver

ACK_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 10.0)

REQUESTS = Counter(
    "peerlearn_requests",
    "HTTP requests from Slack, by kind (command, event, action, view, oauth, …) and HTTP status.",
    ["kind", "status"],
)
ACKS = Counter("peerlearn_acks", "Requests from Slack acknowledged with a 2xx response, by kind.", ["kind"])
ACK_SECONDS = Histogram(
    "peerlearn_ack_seconds",
    "Time from receiving a Slack request to the response (the ack; Slack allows 3 s).",
    ["kind"],
    buckets=ACK_BUCKETS,
)
IN_FLIGHT = Gauge("peerlearn_requests_in_flight", "Slack requests being processed right now.")
LISTENER_QUEUE_DEPTH = Gauge(
    "peerlearn_listener_queue_depth", "Lazy listener tasks (Slack calls after the ack) waiting for a worker thread."
)
LISTENER_TASKS_RUNNING = Gauge("peerlearn_listener_tasks_running", "Lazy listener tasks running right now.")

# --- Slack API calls of each request ----------------------------------------------------------------------


def observe_request_client(on_error: SlackErrorObserver | None) -> Callable[..., Any]:
    """A Bolt global middleware: this request's (and its lazy listeners') WebClient is observed."""

    def observe_slack_calls(context: Any, next: Callable[[], Any]) -> Any:
        client = context.get("client")
        if client is not None and not isinstance(client, ObservedWebClient):
            context["client"] = ObservedWebClient.like(client, on_error)
        return next()

    return observe_slack_calls


# --- the lazy listener pool --------------------------------------------------------------------------

_executors: weakref.WeakSet[ObservedExecutor] = weakref.WeakSet()


class ObservedExecutor(ThreadPoolExecutor):
    """Bolt's listener thread pool, counting queued and running tasks. Each task runs in a copy of the
    submitter's contextvars, so lazy listeners log with the request's team, channel and event id."""

    def __init__(self, max_workers: int = 5, initializer: Callable[[], object] | None = None) -> None:
        super().__init__(max_workers=max_workers, thread_name_prefix="peerlearn-listener", initializer=initializer)
        self._counts_lock = threading.Lock()
        self.queued = 0
        self.running = 0
        # Called with each task's function once it has run (bot/runtime/vectors.py: what a listener stored is
        # embedded after it).
        self.after_task: list[Callable[[Callable[..., Any]], None]] = []
        _executors.add(self)

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        context = contextvars.copy_context()
        with self._counts_lock:
            self.queued += 1

        def run() -> Any:
            with self._counts_lock:
                self.queued -= 1
                self.running += 1
            try:
                return context.run(fn, *args, **kwargs)
            finally:
                with self._counts_lock:
                    self.running -= 1
                for hook in list(self.after_task):
                    hook(fn)

        try:
            return super().submit(run)
        except BaseException:
            with self._counts_lock:
                self.queued -= 1
            raise


LISTENER_QUEUE_DEPTH.set_function(lambda: sum(executor.queued for executor in list(_executors)))
LISTENER_TASKS_RUNNING.set_function(lambda: sum(executor.running for executor in list(_executors)))


# --- HTTP ------------------------------------------------------------------------------------------------

StartResponse = Callable[..., Any]


def observe_slack_request(
    kind: str, handle: Callable[[StartResponse], Iterable[bytes]], start_response: StartResponse
) -> Iterable[bytes]:
    """Run one Slack request (`handle`, WSGI), counting it, its status and how long the ack took."""
    status = ["500"]

    def recording_start_response(status_line: str, headers: Any, *exc_info: Any) -> Any:
        status[0] = status_line.split(" ", 1)[0]
        return start_response(status_line, headers, *exc_info)

    started = time.perf_counter()
    IN_FLIGHT.inc()
    try:
        body = list(handle(recording_start_response))
    finally:
        IN_FLIGHT.dec()
        record_slack_request(kind, status[0], started)
    return body


def record_slack_request(kind: str, status: str, started: float) -> None:
    """Count one answered Slack request: its status, and for an ack (2xx) the time since `started`
    (time.perf_counter)."""
    REQUESTS.labels(kind, status).inc()
    if status.startswith("2"):
        ACKS.labels(kind).inc()
        ACK_SECONDS.labels(kind).observe(time.perf_counter() - started)


def render() -> tuple[bytes, str]:
    """The metrics page: (body, content type)."""
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
