"""The `.venv/bin/python app.py …` verbs: run (Socket Mode), serve (HTTP), migrate, and admin tools."""

from __future__ import annotations

import argparse
import logging
import os
import sys
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from datetime import datetime
from typing import TYPE_CHECKING

from bot.config import SETUP_HELP, ConfigError, Settings
from bot.runtime.logging import configure_logging

if TYPE_CHECKING:
    from bot.runtime.wiring import Runtime
    from models.session import Store

# Each verb imports what it needs: the admin verbs start without loading Bolt or the HTTP server.

# numpy computes with one BLAS thread (bot.embedding.one_blas_thread, called where the model and the vectors are
# loaded). This variable is that function's one companion: OpenBLAS reads it once, as numpy is imported, to start
# its thread pool, which the function cannot undo afterwards; set here, before anything imports numpy, the app's
# process never starts the threads it would not use.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

logger = logging.getLogger("peerlearn")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=".venv/bin/python app.py",  # as the README shows it: the virtualenv `make install` creates
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
    serve.add_argument("--threads", type=int, default=8, help="threads answering HTTP requests (default: 8)")
    verbs.add_parser(
        "work",
        help="only the inbox worker and the scheduler, no HTTP: more hands for the requests `serve` acknowledged "
        "(PostgreSQL, any machine)",
    )
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
    add_data_verbs(verbs)
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
                print(f"No Slack tokens configured: starting the local playground. To use Slack, see {SETUP_HELP}")
            port = args.port if args.verb else None
            return run_playground(settings, settings.port if port is None else port, any_port_if_taken=port is None)
        check_database(settings, verb)
        if verb == "migrate":
            return migrate(settings)
        if verb in DATA_VERBS:
            return run_data_verb(settings, args)
        if verb == "digest":
            return digest_now(
                settings, args.team, args.channel, dry_run=args.dry_run, as_json=args.json, force=args.force
            )
        if verb == "serve":
            return serve(settings, args.host, args.port or settings.port, args.threads)
        if verb == "work":
            return work(settings)
        return run_socket_mode(settings)
    except ConfigError as problem:
        print(f"PeerLearn can't start: {problem}", file=sys.stderr)
        return 2


# Long-running verbs wait for a database that does not answer yet, as they wait out an outage (Slack gets 503).
WAITS_FOR_DATABASE = ("serve", "work")


def check_database(settings: Settings, verb: str) -> None:
    """Before a verb opens the database: a DATABASE_URL that cannot work is a ConfigError (one line, exit 2);
    a database that does not answer is one too, except for `serve` and `work`, which say so and wait."""
    from bot.database_url import DatabaseUnreachable, connect_once

    try:
        connect_once(settings.database_url)
    except DatabaseUnreachable as problem:
        if verb not in WAITS_FOR_DATABASE:
            raise ConfigError(str(problem)) from None
        logger.warning("%s Until it answers, Slack gets 503 and /healthz says why.", problem)


def has_slack_credentials(settings: Settings) -> bool:
    """Any Slack token or secret set: the operator means to connect to Slack (and hears what is missing)."""
    return any((settings.bot_token, settings.app_token, settings.signing_secret, settings.client_id))


def migrate(settings: Settings) -> int:
    from models.migrate import upgrade_to_head
    from models.session import Store

    store = Store.from_url(settings.database_url)
    upgrade_to_head(store.engine)
    print(f"Database at {store.engine.url.render_as_string(hide_password=True)} is up to date.")
    return 0


def serve(settings: Settings, host: str, port: int, threads: int = 8) -> int:
    """One process per replica: Bolt under waitress (bot/runtime/http.py), the inbox worker and the scheduler
    as threads, until SIGTERM or SIGINT. Then it stops accepting, and the requests already received and the
    lazy listeners already started have WORKER_GRACE seconds to finish; what they leave undone stays owed
    (the inbox; questions not yet posted, bot/posting.py) for the next start or another replica."""
    import signal

    from bot.runtime.http import HttpServer
    from bot.runtime.wiring import build_runtime
    from models.migrate import upgrade_in_child

    # "Add to Slack" (SLACK_CLIENT_ID/SECRET) takes each workspace's token from the database instead.
    settings.require("SLACK_SIGNING_SECRET", *([] if settings.oauth_enabled else ["SLACK_BOT_TOKEN"]))
    # Serve at once; until the database answers (and is migrated) Slack gets 503 and /healthz says why. It
    # stays up for weeks: it migrates in a child process, and so never loads Alembic (models/migrate.py).
    runtime = build_runtime(settings, migrate=upgrade_in_child, wait_for_database=True)
    try:
        server = HttpServer(runtime.wsgi_app, host=host, port=port, threads=threads)
    except OSError as problem:
        runtime.close()
        raise ConfigError(f"cannot listen on {host}:{port} ({problem.strerror or problem})") from None
    runtime.when_ready(lambda: (runtime.start_worker(), runtime.start_scheduler()))
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: server.stop_accepting())
    logger.info("PeerLearn serving HTTP on %s:%s (POST /slack/events, GET /healthz)", host, server.port)
    try:
        server.serve()
        deadline = time.monotonic() + WORKER_GRACE
        logger.info("stopping: no new connections; finishing what was received")
        if not server.drain(WORKER_GRACE):
            logger.warning("requests still running %.0fs after the stop; leaving them", WORKER_GRACE)
        stop_working(runtime, max(deadline - time.monotonic(), 1.0))
    finally:
        server.stop()
        runtime.close()
    return 0


def work(settings: Settings) -> int:
    """An inbox worker (bot/runtime/worker.py) and the scheduler, without HTTP, until SIGTERM or SIGINT; then
    the current batch and the lazy listeners it started finish (WORKER_GRACE)."""
    import signal

    from bot.runtime.wiring import build_runtime
    from models.migrate import upgrade_in_child

    settings.require(*([] if settings.oauth_enabled else ["SLACK_BOT_TOKEN"]))
    # A worker stays up: it migrates in a child process, and so never loads Alembic (models/migrate.py).
    runtime = build_runtime(settings, migrate=upgrade_in_child, wait_for_database=True)
    if runtime.inbox is None:
        raise ConfigError("the inbox needs a database file or PostgreSQL, not an in-memory SQLite database")
    runtime.when_ready(lambda: (runtime.start_worker(), runtime.start_scheduler()))
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: runtime.stopping.set())
    logger.info("PeerLearn worker running")
    try:
        while not runtime.stopping.wait(0.5):
            pass
        stop_working(runtime, WORKER_GRACE)
    finally:
        runtime.close()
    return 0


WORKER_GRACE = 20.0  # seconds a stopping process gives its requests and lazy listeners (Slack calls retried…)


def stop_working(runtime: Runtime, grace: float) -> None:
    """No new work: the worker finishes its batch, no post starts (bot/posting.py), and the lazy listeners
    already started or queued have `grace` seconds."""
    runtime.stopping.set()
    if runtime.worker is not None:
        runtime.worker.stop()
    finish_listeners(runtime.bolt_app.listener_runner.listener_executor, grace)


def finish_listeners(executor: Executor, grace: float) -> None:
    """Let the lazy listeners already started or queued finish, for at most `grace` seconds; then leave. The
    questions they had not posted stay owed (bot/posting.py: no post starts once the runtime is stopping) and
    the next start posts them."""
    waiting = threading.Thread(target=executor.shutdown, kwargs={"wait": True}, daemon=True)
    waiting.start()
    waiting.join(grace)
    if waiting.is_alive():
        logger.error("lazy listeners still running %.0fs after the stop; leaving without them", grace)
        logging.shutdown()
        os._exit(1)


def run_socket_mode(settings: Settings) -> int:
    from slack_bolt.adapter.socket_mode import SocketModeHandler

    from bot.runtime.wiring import build_runtime

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

    from bot.digest import content, posting
    from bot.messages.errors import explain
    from bot.runtime.wiring import build_runtime
    from bot.services import Services
    from bot.workspaces import WorkspaceClients
    from models.migrate import upgrade_to_head
    from models.session import Store

    # With a token (or "Add to Slack" installations) the digest links to its messages and can be posted;
    # without one, --dry-run still prints it, without links.
    online = bool(settings.bot_token or settings.oauth_enabled)
    if not online and not dry_run:
        settings.require("SLACK_BOT_TOKEN")
    runtime = build_runtime(settings) if online else None
    if runtime is not None:
        services = runtime.services
    else:
        store = Store.from_url(settings.database_url)
        upgrade_to_head(store.engine)
        services = Services(settings=settings, store=store)
    client = runtime.bolt_app.client if runtime is not None else None
    token_for = runtime.bot_token_for if runtime is not None else None
    try:
        now = services.clock.now()
        if dry_run:
            base_url = WorkspaceClients(client, token_for).base_url(team_id) if client is not None else None
            message = posting.preview(services, team_id, channel_id, now, base_url)
            print(
                json.dumps(message.as_kwargs(), indent=2, ensure_ascii=False)
                if as_json
                else content.render_text(message)
            )
            return 0
        assert client is not None
        outcome = posting.post_now(services, client, team_id, channel_id, now, force=force, token_for=token_for)
    finally:
        if runtime is not None:
            runtime.close()
        else:
            services.store.dispose()
    if outcome.status == posting.DIGEST_POSTED:
        print(f"Posted the digest in {channel_id} (week {outcome.week_key}, message ts {outcome.message_ts}).")
        return 0
    if outcome.status == posting.TAKEN:
        print(
            f"Not posted: this week's digest ({outcome.week_key}) for {channel_id} is {outcome.error}. "
            "Pass --force to post another one anyway.",
            file=sys.stderr,
        )
        return 1
    print(f"Not posted: {outcome.error}. {explain(outcome.error or '')}", file=sys.stderr)
    return 1


# --- data verbs: stats, export, forget-user, rebuild-evidence (bot/stats.py, bot/export.py, bot/routing/upkeep.py)

DATA_VERBS = ("stats", "export", "forget-user", "rebuild-evidence", "reindex")


def add_data_verbs(verbs: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    stats = verbs.add_parser(
        "stats",
        help="analytics: questions, answer rate, time to answer, per tag, experts, knowledge gaps, weekly trend",
        description="Questions asked in the window, answer rate, median time to first and to accepted answer, the "
        "same per tag, go-to people per tag, knowledge gaps with a lunch-and-learn suggestion, and a weekly trend.",
    )
    stats.add_argument("--team", help="workspace (team) id, e.g. T0123 (default: every workspace)")
    stats.add_argument("--since", default="30d", help="window start: 30d, 12w, 48h or a date like 2026-10-01")
    stats.add_argument("--format", choices=("table", "csv", "json"), default="table", help="default: table")
    export = verbs.add_parser(
        "export",
        help="export a workspace's questions, answers, lessons, votes, topics and settings (JSON or CSV)",
        description="JSON: one object with a list per kind. CSV: one file per kind, in a .zip or a folder.",
    )
    export.add_argument("--team", required=True, help="workspace (team) id, e.g. T0123")
    export.add_argument("--format", choices=("csv", "json"), required=True)
    export.add_argument(
        "--output",
        help="JSON: a file (default: standard output). CSV: a .zip file, or else a folder "
        "(default: peerlearn-export-TEAM-DATE.zip)",
    )
    forget = verbs.add_parser(
        "forget-user",
        help="erase a person's data from PeerLearn's database (a right-to-erasure request)",
        description="Deletes the person's profile, topics, votes and routing requests; anonymises the questions, "
        "answers and lessons they wrote (author and text) and mentions of them in others' text. See bot/export.py.",
    )
    forget.add_argument("--team", required=True, help="workspace (team) id, e.g. T0123")
    forget.add_argument("--user", required=True, help="Slack user id, e.g. U0123ABCD")
    forget.add_argument("--dry-run", action="store_true", help="show what would change, change nothing")
    rebuild = verbs.add_parser(
        "rebuild-evidence",
        help="recompute what PeerLearn keeps up to date (routing's evidence, tag statistics, the stats rollup) "
        "from the questions and answers: for audits, or after a change that skipped the upkeep",
        description="Recomputes person_evidence and tag_evidence from every live answer, in batches of people "
        "(routing keeps working meanwhile; bot/routing/upkeep.py), then tag_stats and the stats rollup "
        "(models/tag_stats.py, models/stats_rollup.py).",
    )
    rebuild.add_argument("--team", help="workspace (team) id, e.g. T0123 (default: every workspace)")
    reindex = verbs.add_parser(
        "reindex",
        help="compute the search vectors that are missing (semantic search), with a progress bar; stopped, "
        "run it again and it goes on where it was",
        description="Computes the sentence vector of every answered question and lesson that has none of the "
        "current model, newest first, in batches, each committed (bot/search/vectors.py). The running app "
        "does the same in the background; this does it at once.",
    )
    reindex.add_argument("--team", help="workspace (team) id, e.g. T0123 (default: every workspace)")
    reindex.add_argument(
        "--all",
        action="store_true",
        help="delete the vectors first and compute every one again (until it is done, search ranks the "
        "documents without a vector lower; if stopped, `reindex` without --all finishes)",
    )


def run_data_verb(settings: Settings, args: argparse.Namespace) -> int:
    from sqlalchemy import select

    from bot.clock import Clock
    from models.migrate import upgrade_to_head
    from models.session import Store
    from models.workspace import Workspace

    store = Store.from_url(settings.database_url)
    try:
        upgrade_to_head(store.engine)
        now = Clock().now()
        with store.session() as session:
            teams = list(session.scalars(select(Workspace.team_id).order_by(Workspace.team_id)))
        if args.team is not None and args.team not in teams:
            known = ", ".join(teams) or "none yet"
            print(f"No workspace {args.team} in this database (workspaces: {known}).", file=sys.stderr)
            return 1
        if args.verb == "stats":
            return print_stats(store, [args.team] if args.team else teams, args.since, args.format, now)
        if args.verb == "export":
            return export_workspace(store, args.team, args.format, args.output, now)
        if args.verb == "rebuild-evidence":
            return rebuild_evidence(store, [args.team] if args.team else teams)
        if args.verb == "reindex":
            return reindex(store, args.team, everything=args.all)
        return forget_user(store, args.team, args.user, dry_run=args.dry_run)
    finally:
        store.dispose()


def print_stats(store: Store, teams: Sequence[str], since_text: str, fmt: str, now: datetime) -> int:
    from bot import stats, stats_render

    try:
        since = stats.parse_since(since_text, now)
    except ValueError as problem:
        print(problem, file=sys.stderr)
        return 2
    with store.session() as session:
        reports = [stats.build_report(session, team, since, now, now) for team in teams]
    if fmt == "json":
        print(stats_render.render_json(reports))
    elif fmt == "csv":
        sys.stdout.write(stats_render.render_csv(reports))
    elif reports:
        sys.stdout.write(stats_render.render_table(reports))
    else:
        print("No workspaces in this database yet.")
    return 0


def export_workspace(store: Store, team_id: str, fmt: str, output: str | None, now: datetime) -> int:
    from pathlib import Path

    from bot import export

    with store.session() as session:
        if fmt == "json":
            if output is None:
                counts = export.export_json(session, team_id, sys.stdout, now)
            else:
                with Path(output).open("w", encoding="utf-8") as out:
                    counts = export.export_json(session, team_id, out, now)
        else:
            target = Path(output or f"peerlearn-export-{team_id}-{now:%Y%m%d}.zip")
            counts = export.export_csv(session, team_id, target)
            output = str(target)
    summary = ", ".join(f"{n} {kind}" for kind, n in counts.items())
    print(f"Exported {team_id}: {summary}" + (f" to {output}" if output else ""), file=sys.stderr)
    return 0


def rebuild_evidence(store: Store, teams: Sequence[str]) -> int:
    """Everything PeerLearn keeps up to date from the questions and answers, computed again: routing's evidence
    (bot/routing/upkeep.py), its tag statistics (models/tag_stats.py) and the stats rollup (models/stats_rollup.py)."""
    from bot.routing.upkeep import rebuild
    from models.stats_rollup import rebuild_stats
    from models.tag_stats import rebuild_tag_stats

    def progress(team_id: str) -> Callable[[int, int], None]:
        return lambda done, total: print(f"{team_id}: {done}/{total} people", flush=True)

    for team_id in teams:
        with store.session() as session:
            people = rebuild(session, team_id, progress(team_id))
        print(f"Rebuilt routing evidence of {team_id}: {people} people with answers.")
        with store.session() as session:
            tag_rows = rebuild_tag_stats(session, team_id)
        with store.session() as session:
            questions = rebuild_stats(session, team_id)
        print(f"Rebuilt tag statistics of {team_id} ({tag_rows} rows) and its stats rollup ({questions} questions).")
    return 0


def reindex(store: Store, team_id: str | None, *, everything: bool) -> int:
    """The search vectors owed (of one workspace or all), computed now with a progress bar on stderr."""
    from bot.runtime.progress import ProgressBar
    from bot.search import vectors

    embed = vectors.embedder_or_none()
    if embed is None:
        print("The embedding model cannot be loaded here (see the log line above): nothing computed.", file=sys.stderr)
        return 1
    where = team_id or "every workspace"
    with store.session() as session:
        if everything:
            dropped = vectors.forget_all(session, team_id)
            session.commit()
            print(f"Deleted {dropped} vectors of {where}.", file=sys.stderr)
        owed = vectors.count_missing(session, vectors.model_name(), team_id)
        session.rollback()
        bar = ProgressBar(owed, "vectors")
        written = vectors.fill_missing(session, embed, team_id=team_id, batch=REINDEX_BATCH, progress=bar.update)
        bar.close()
        left = vectors.count_missing(session, vectors.model_name(), team_id)
    print(f"Computed {written} search vectors of {where} in {bar.elapsed:.1f}s; {left} still missing.")
    return 0


REINDEX_BATCH = 64  # documents per transaction of `reindex`


def forget_user(store: Store, team_id: str, user_id: str, *, dry_run: bool) -> int:
    from bot import export

    try:
        with store.session() as session:
            report = export.forget_user(session, team_id, user_id)
            if dry_run:
                session.rollback()
    except (ValueError, export.ForgetIncomplete) as problem:
        print(f"Nothing was changed: {problem}", file=sys.stderr)
        return 1
    verb = "Would change" if dry_run else "Forgot"
    print(f"{verb} {user_id} in {team_id}:" if report.total else f"Nothing about {user_id} in {team_id}.")
    for what, count in report.changed.items():
        if count:
            print(f"  {what}: {count}")
    if report.bot_posts:
        print(
            f"  Note: {len(report.bot_posts)} PeerLearn post(s) in Slack still show their questions or lessons; "
            "delete them in Slack if needed."
        )
    if dry_run:
        print("Dry run: nothing was changed.")
    return 0
