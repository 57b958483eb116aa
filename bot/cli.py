"""The `python app.py …` verbs: run (Socket Mode), serve (HTTP), migrate, and admin tools."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from bot.config import ConfigError, Settings
from bot.logging_setup import configure_logging
from models.migrate import upgrade_to_head
from models.session import Store

logger = logging.getLogger("peerlearn")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python app.py",
        description="PeerLearn: peer knowledge sharing in Slack. With no verb, runs in Socket Mode.",
    )
    verbs = parser.add_subparsers(dest="verb", metavar="VERB")
    verbs.add_parser("run", help="connect to Slack in Socket Mode (the default; needs SLACK_APP_TOKEN)")
    serve = verbs.add_parser("serve", help="serve Slack's HTTP requests on POST /slack/events (production)")
    serve.add_argument("--host", default="0.0.0.0", help="interface to listen on (default: all)")
    serve.add_argument("--port", type=int, default=None, help="port (default: $PORT or 3000)")
    serve.add_argument("--threads", type=int, default=8, help="worker threads (default: 8)")
    verbs.add_parser("migrate", help="upgrade the database to the latest schema and exit")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = Settings.from_env()
        configure_logging(settings.log_level, settings.log_format)
        verb = args.verb or "run"
        if verb == "migrate":
            return migrate(settings)
        if verb == "serve":
            return serve(settings, args.host, args.port or settings.port, args.threads)
        return run_socket_mode(settings)
    except ConfigError as problem:
        print(f"PeerLearn can't start: {problem}", file=sys.stderr)
        return 2


def migrate(settings: Settings) -> int:
    store = Store.from_url(settings.database_url)
    upgrade_to_head(store.engine)
    print(f"Database at {store.engine.url.render_as_string(hide_password=True)} is up to date.")
    return 0


def serve(settings: Settings, host: str, port: int, threads: int) -> int:
    from bot.runtime import build_runtime, serve_forever

    # "Add to Slack" (SLACK_CLIENT_ID/SECRET) takes each workspace's token from the database instead.
    settings.require("SLACK_SIGNING_SECRET", *([] if settings.oauth_enabled else ["SLACK_BOT_TOKEN"]))
    # Serve at once; until the database answers (and is migrated) Slack gets 503 and /healthz says why.
    runtime = build_runtime(settings, wait_for_database=True)
    try:
        serve_forever(runtime, host, port, threads)
    finally:
        runtime.close()
    return 0


def run_socket_mode(settings: Settings) -> int:
    from slack_bolt.adapter.socket_mode import SocketModeHandler

    from bot.runtime import build_runtime

    settings.require("SLACK_BOT_TOKEN", "SLACK_APP_TOKEN")
    runtime = build_runtime(settings)
    logger.info("PeerLearn connecting to Slack in Socket Mode")
    SocketModeHandler(runtime.bolt_app, settings.app_token).start()
    return 0
