"""Build the Bolt app: a WebClient on SLACK_API_URL with Slack's retry handlers, and every listener."""

from __future__ import annotations

import logging

from slack_bolt import App
from slack_sdk import WebClient
from slack_sdk.http_retry.builtin_handlers import (
    ConnectionErrorRetryHandler,
    RateLimitErrorRetryHandler,
    ServerErrorRetryHandler,
)
from slack_sdk.http_retry.handler import RetryHandler

from bot.config import Settings
from bot.services import Services


def retry_handlers() -> list[RetryHandler]:
    """429 waits for Retry-After; 5xx and dropped connections retry with backoff (slack_sdk's handlers)."""
    return [
        RateLimitErrorRetryHandler(max_retry_count=3),
        ServerErrorRetryHandler(max_retry_count=2),
        ConnectionErrorRetryHandler(max_retry_count=2),
    ]


def build_web_client(settings: Settings) -> WebClient:
    return WebClient(
        token=settings.bot_token,
        base_url=settings.slack_api_url,
        timeout=15,
        retry_handlers=retry_handlers(),
        logger=logging.getLogger("peerlearn.slack_sdk"),
    )


def create_app(services: Services, client: WebClient | None = None) -> App:
    # Imported here so that bot/ stays importable (and testable) without the Slack surface.
    import handlers

    settings = services.settings
    app = App(
        client=client or build_web_client(settings),
        signing_secret=settings.signing_secret or "",
        # Listeners store what a request changes before the HTTP response (the ack) goes out, so
        # nothing Slack considers delivered can be lost; Slack API calls run after it, in lazy listeners.
        process_before_response=True,
        request_verification_enabled=bool(settings.signing_secret),
        logger=logging.getLogger("peerlearn.bolt"),
    )
    handlers.register_all(app, services)
    return app
