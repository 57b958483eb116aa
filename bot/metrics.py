"""Prometheus metrics: Slack's requests and our acks, Slack API calls, listener queue depth, digest runs.

Metrics live in prometheus_client's process-wide registry (one process = one replica), served by
`GET /metrics`. Other modules count through the objects here, e.g.
`bot.metrics.DIGEST_RUNS.labels("posted").inc()`.
"""

from __future__ import annotations

import contextvars
import threading
import time
import weakref
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, Counter, Gauge, Histogram, generate_latest
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.web import SlackResponse

from bot.slack_errors import error_code

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
SLACK_API_CALLS = Counter(
    "peerlearn_slack_api_calls",
    "Slack Web API calls (after slack_sdk's retries), by method and outcome.",
    ["method", "outcome"],
)
SLACK_API_ERRORS = Counter(
    "peerlearn_slack_api_errors", "Failed Slack Web API calls, by method and Slack error code.", ["method", "error"]
)
SLACK_API_SECONDS = Histogram(
    "peerlearn_slack_api_seconds", "Slack Web API call duration, retries included.", ["method"]
)
LISTENER_QUEUE_DEPTH = Gauge(
    "peerlearn_listener_queue_depth", "Lazy listener tasks (Slack calls after the ack) waiting for a worker thread."
)
LISTENER_TASKS_RUNNING = Gauge("peerlearn_listener_tasks_running", "Lazy listener tasks running right now.")
DIGEST_RUNS = Counter(
    "peerlearn_digest_runs", "Weekly digest runs, by outcome (posted, empty, failed, skipped).", ["status"]
)
WORKSPACES_DISABLED = Counter(
    "peerlearn_workspaces_disabled", "Workspaces disabled because Slack refused their token, by reason.", ["reason"]
)
DATABASE_UNAVAILABLE = Counter(
    "peerlearn_database_unavailable",
    "Requests answered with 'try again' because the database was unavailable.",
    ["kind"],
)


# --- Slack Web API calls -----------------------------------------------------------------------------

SlackErrorObserver = Callable[[str | None, str, str], None]  # (team_id, method, error code)


class ObservedWebClient(WebClient):
    """A WebClient that counts every call by method and outcome and reports Slack errors to `on_error`.

    Bolt builds a plain WebClient per request (copying the app client's base_url and retry handlers), so
    `observe_request_client` swaps it for one of these at the start of each request.
    """

    on_error: SlackErrorObserver | None = None

    def api_call(self, api_method: str, **kwargs: Any) -> SlackResponse:  # type: ignore[override]
        started = time.perf_counter()
        try:
            response = super().api_call(api_method, **kwargs)
        except SlackApiError as exc:
            code = error_code(exc)
            self._count(api_method, "error", code, started)
            if self.on_error is not None:
                self.on_error(self.default_params.get("team_id"), api_method, code)
            raise
        except Exception as exc:  # connection errors that outlived the retries, timeouts
            self._count(api_method, "error", exc.__class__.__name__, started)
            raise
        self._count(api_method, "ok", None, started)
        return response

    @staticmethod
    def _count(method: str, outcome: str, error: str | None, started: float) -> None:
        SLACK_API_CALLS.labels(method, outcome).inc()
        SLACK_API_SECONDS.labels(method).observe(time.perf_counter() - started)
        if error is not None:
            SLACK_API_ERRORS.labels(method, error).inc()

    @classmethod
    def like(cls, client: WebClient, on_error: SlackErrorObserver | None = None) -> ObservedWebClient:
        """The same client (token, base URL, retry handlers, team), observed."""
        observed = cls(
            token=client.token,
            base_url=client.base_url,
            timeout=client.timeout,
            ssl=client.ssl,
            proxy=client.proxy,
            headers=dict(client.headers),
            team_id=client.default_params.get("team_id"),
            logger=client.logger,
            retry_handlers=list(client.retry_handlers),
        )
        observed.on_error = on_error
        return observed


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

    def __init__(self, max_workers: int = 5) -> None:
        super().__init__(max_workers=max_workers, thread_name_prefix="peerlearn-listener")
        self._counts_lock = threading.Lock()
        self.queued = 0
        self.running = 0
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
