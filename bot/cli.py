"""The `python app.py …` verbs: run (Socket Mode), serve (HTTP), migrate, and admin tools."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from bot.config import SETUP_HELP, ConfigError, Settings
from bot.logging_setup import configure_logging
from models.migrate import upgrade_to_head
from models.session import Store

logger = logging.getLogger("peerlearn")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python app.py",
        description="PeerLearn: peer knowledge sharing in Slack. With no verb, runs in Socket Mode, or, when no "
        "Slack token is configured at all, starts the local playground.",
    )
    verbs = parser.add_subparsers(dest="verb", metavar="VERB")
    verbs.add_parser("run", help="connect to Slack in Socket Mode (the default; needs SLACK_APP_TOKEN)")
    playground = verbs.add_parser(
        "playground",
        help="try PeerLearn without Slack: a local page on 127.0.0.1 against the built-in Slack emulator",
    )
    playground.add_argument("--port", type=int, default=None, help="port (default: $PORT or 3000, else a free one)")
    serve = verbs.add_parser("serve", help="serve Slack's HTTP requests on POST /slack/events (production)")
    serve.add_argument("--host", default="0.0.0.0", help="interface to listen on (default: all)")
    serve.add_argument("--port", type=int, default=None, help="port (default: $PORT or 3000)")
    serve.add_argument("--threads", type=int, default=8, help="worker threads (default: 8)")
    verbs.add_parser("migrate", help="upgrade the database to the latest schema and exit")
    digest = verbs.add_parser(
        "digest",
        help="build (and post) a channel's weekly digest now",
        description="Build the channel's digest of the last 7 days and post it, claiming this week's digest "
        "like the scheduler does (so it is not posted twice this week). --force posts another one anyway.",
    )
    digest.add_argument("--team", required=True, help="workspace (team) id, e.g. T0123")
    digest.add_argument("--channel", required=True, help="channel id, e.g. C0123")
    digest.add_argument("--dry-run", action="store_true", help="print the digest instead of posting it")
    digest.add_argument("--json", action="store_true", help="with --dry-run: print the Block Kit JSON")
    digest.add_argument("--force", action="store_true", help="post even if this week's digest already went out")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = Settings.from_env()
        configure_logging(settings.log_level, settings.log_format)
        verb = args.verb or ("run" if has_slack_credentials(settings) else "playground")
        if verb == "playground":
            from bot.playground.web import run as run_playground

            if args.verb is None:
                print(f"No Slack tokens configured: starting the local playground. To use Slack: {SETUP_HELP}")
            port = args.port if args.verb else None
            return run_playground(settings, settings.port if port is None else port, any_port_if_taken=port is None)
        if verb == "migrate":
            return migrate(settings)
        if verb == "digest":
            return digest_now(
                settings, args.team, args.channel, dry_run=args.dry_run, as_json=args.json, force=args.force
            )
        if verb == "serve":
            return serve(settings, args.host, args.port or settings.port, args.threads)
        return run_socket_mode(settings)
    except ConfigError as problem:
        print(f"PeerLearn can't start: {problem}", file=sys.stderr)
        return 2


def has_slack_credentials(settings: Settings) -> bool:
    """Any Slack token or secret set: the operator means to connect to Slack (and hears what is missing)."""
    return any((settings.bot_token, settings.app_token, settings.signing_secret, settings.client_id))


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
    runtime.when_ready(runtime.start_scheduler)
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
    runtime.start_scheduler()
    logger.info("PeerLearn connecting to Slack in Socket Mode")
    try:
        SocketModeHandler(runtime.bolt_app, settings.app_token).start()
    finally:
        runtime.close()
    return 0


def digest_now(settings: Settings, team_id: str, channel_id: str, *, dry_run: bool, as_json: bool, force: bool) -> int:
    """The admin verb: print the channel's digest (--dry-run) or post it now."""
    import json

    from bot import digest
    from bot.app_factory import build_web_client
    from bot.clock import Clock
    from bot.services import Services
    from bot.slack_errors import explain

    if not dry_run:
        settings.require("SLACK_BOT_TOKEN")
    store = Store.from_url(settings.database_url)
    try:
        upgrade_to_head(store.engine)
        services = Services(settings=settings, store=store, clock=Clock())
        now = services.clock.now()
        if dry_run:
            # Links need the workspace's URL (auth.test); without a token the digest prints without them.
            base_url = digest.Workspaces(build_web_client(settings)).base_url(team_id) if settings.bot_token else None
            message = digest.preview(services, team_id, channel_id, now, base_url)
            print(
                json.dumps(message.as_kwargs(), indent=2, ensure_ascii=False)
                if as_json
                else digest.render_text(message)
            )
            return 0
        outcome = digest.post_now(services, build_web_client(settings), team_id, channel_id, now, force=force)
    finally:
        store.dispose()
    if outcome.status == digest.DIGEST_POSTED:
        print(f"Posted the digest in {channel_id} (week {outcome.week_key}, message ts {outcome.message_ts}).")
        return 0
    if outcome.status == digest.TAKEN:
        print(
            f"Not posted: this week's digest ({outcome.week_key}) for {channel_id} is {outcome.error}. "
            "Pass --force to post another one anyway.",
            file=sys.stderr,
        )
        return 1
    print(f"Not posted: {outcome.error}. {explain(outcome.error or '')}", file=sys.stderr)
    return 1
