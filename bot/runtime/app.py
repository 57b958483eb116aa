"""Build the Bolt app: a WebClient on SLACK_API_URL with Slack's retry handlers, and every listener.

With SLACK_CLIENT_ID/SLACK_CLIENT_SECRET the app serves "Add to Slack" (bot/runtime/oauth.py) and takes each
workspace's token from the installation store; otherwise it uses the single SLACK_BOT_TOKEN.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any
from urllib.error import URLError

from slack_bolt import App
from slack_bolt.logger.messages import warning_client_prioritized_and_token_skipped
from slack_bolt.oauth.oauth_flow import OAuthFlow
from slack_sdk import WebClient
from slack_sdk.http_retry.builtin_handlers import (
    ConnectionErrorRetryHandler,
    RateLimitErrorRetryHandler,
    ServerErrorRetryHandler,
)
from slack_sdk.http_retry.handler import RetryHandler
from slack_sdk.http_retry.request import HttpRequest
from slack_sdk.http_retry.response import HttpResponse
from slack_sdk.http_retry.state import RetryState

from bot.config import Settings
from bot.metrics import ObservedWebClient, SlackErrorObserver
from bot.runtime.metrics import ObservedExecutor, observe_request_client
from bot.runtime.worker import lower_this_threads_priority
from bot.services import Services

LISTENER_THREADS = 5  # Bolt's default pool size for lazy listeners (the Slack calls after the ack)

# Methods that do something new each time they are called: a repeat shows twice (a second message).
NOT_REPEATABLE = frozenset({"chat.postMessage", "chat.postEphemeral", "chat.scheduleMessage", "views.push"})


def retry_handlers() -> list[RetryHandler]:
    """429 waits for Retry-After; 5xx and dropped connections retry with backoff (slack_sdk's handlers), except
    for a call that may have been done already and would show twice (NOT_REPEATABLE): its caller decides."""
    return [
        RateLimitErrorRetryHandler(max_retry_count=3),
        RepeatableOnly(ServerErrorRetryHandler(max_retry_count=2)),
        RepeatableOnly(ConnectionErrorRetryHandler(max_retry_count=2)),
    ]


def not_an_attempt_failure(record: logging.LogRecord) -> bool:
    """slack_sdk logs every try that got no answer at ERROR, before its retry handlers retry it (often with
    success). A call that finally failed is logged once by its caller, which knows what it was for."""
    return not record.getMessage().startswith("Failed to send a request to Slack API server")


class RepeatableOnly(RetryHandler):
    """`inner`'s retries, but for NOT_REPEATABLE methods only those of a request Slack never received: its
    connection failed before the whole request went out (urllib's URLError). A 5xx, or a connection cut
    while waiting for the answer, may come after Slack did it (bot/posting.py looks before posting again)."""

    def __init__(self, inner: RetryHandler) -> None:
        super().__init__(inner.max_retry_count, inner.interval_calculator)
        self.inner = inner

    def _can_retry(
        self,
        *,
        state: RetryState,
        request: HttpRequest,
        response: HttpResponse | None = None,
        error: Exception | None = None,
    ) -> bool:
        method = request.url.rstrip("/").rsplit("/", 1)[-1].split("?", 1)[0]
        if method in NOT_REPEATABLE and (response is not None or not isinstance(error, URLError)):
            return False
        return self.inner._can_retry(state=state, request=request, response=response, error=error)


def build_web_client(settings: Settings, on_error: SlackErrorObserver | None = None) -> ObservedWebClient:
    """The app's client (and the template of Bolt's per-request clients): every call is counted, and
    `on_error` hears about Slack errors (a refused token disables its workspace)."""
    sdk_logger = logging.getLogger("peerlearn.slack_sdk")
    if not_an_attempt_failure not in sdk_logger.filters:
        sdk_logger.addFilter(not_an_attempt_failure)
    client = ObservedWebClient(
        token=None if settings.oauth_enabled else settings.bot_token,
        base_url=settings.slack_api_url,
        timeout=15,
        retry_handlers=retry_handlers(),
        logger=sdk_logger,
    )
    client.on_error = on_error
    return client


class ClientGivenOnPurpose(logging.Filter):
    """Drops Bolt's warning that SLACK_BOT_TOKEN is unused because a client was given: Bolt reads the
    variable itself, and the client we give it carries that very token."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.getMessage() != warning_client_prioritized_and_token_skipped()


def bolt_logger() -> logging.Logger:
    """Bolt's framework logger, without that one warning."""
    logger = logging.getLogger("peerlearn.bolt")
    if not any(isinstance(f, ClientGivenOnPurpose) for f in logger.filters):
        logger.addFilter(ClientGivenOnPurpose())
    return logger


def create_app(services: Services, client: WebClient | None = None) -> App:
    # Imported here so that bot/ stays importable (and testable) without the Slack surface.
    import handlers
    from handlers.errors import answer_unhandled_error, slack_error_observer
    from handlers.payloads import before_authorize

    settings = services.settings
    on_slack_error = slack_error_observer(services)
    oauth_flow: OAuthFlow | None = None
    authorize: Callable[..., Any] | None = None  # an Authorize; Bolt's annotation is narrower than it accepts
    if settings.oauth_enabled:
        from bot.runtime.oauth import InstallationAuthorize, InstallFlow, build_oauth_settings

        oauth_settings = build_oauth_settings(settings, services.store, services.clock)
        oauth_flow = InstallFlow(settings=oauth_settings, logger=logging.getLogger("peerlearn.oauth.flow"))
        authorize = InstallationAuthorize(oauth_settings.installation_store)
    app = App(
        client=client or build_web_client(settings, on_slack_error),
        signing_secret=settings.signing_secret or "",
        # Listeners store what a request changes before the HTTP response (the ack) goes out, so
        # nothing Slack considers delivered can be lost; Slack API calls run after it, in lazy listeners.
        process_before_response=True,
        request_verification_enabled=bool(settings.signing_secret),
        # Not Bolt's auth.test at start, which stops the app when Slack refuses the token or can't be reached:
        # the `tokens` tick checks it at start and while it is refused (bot/workspaces.py), and Bolt asks
        # auth.test at the first request.
        token_verification_enabled=False,
        oauth_flow=oauth_flow,
        authorize=authorize,
        # A payload without what the listeners need is answered first; then every log line of a request (and
        # of its lazy listeners) names its team, channel and event.
        before_authorize=before_authorize,
        listener_executor=ObservedExecutor(max_workers=LISTENER_THREADS, initializer=lower_this_threads_priority),
        logger=bolt_logger(),
    )
    # Bolt builds a fresh WebClient per request; observe it too (metrics, refused tokens).
    app.middleware(observe_request_client(on_slack_error))
    # Database down: a clear "try again" for people, a non-2xx for events so that Slack redelivers them.
    app.error(answer_unhandled_error)
    handlers.register_all(app, services)
    return app
