"""What the product counts for Prometheus: Slack API calls (ObservedWebClient), digest runs, disabled
workspaces, requests refused for a database outage.

Metrics live in prometheus_client's process-wide registry (one process = one replica), served by
`GET /metrics` (bot/runtime/metrics.py adds the server's own: requests, acks, the listener pool). Modules
count through the objects here, e.g. `bot.metrics.DIGEST_RUNS.labels("posted").inc()`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from prometheus_client import Counter, Histogram
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.web import SlackResponse

from bot.slack_errors import error_code

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
