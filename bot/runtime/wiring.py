"""Everything a running PeerLearn is made of, wired once: store, services, Bolt app, WSGI app, inbox worker,
scheduler."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from apscheduler.schedulers.background import BackgroundScheduler
from slack_bolt import App
from sqlalchemy import Engine

from bot.asking import inbox_key
from bot.clock import Clock
from bot.config import Settings
from bot.routing import upkeep
from bot.runtime.app import create_app
from bot.runtime.http import HttpServer, Queueing, Screening, WSGIApp, create_wsgi_app
from bot.runtime.metrics import ObservedExecutor
from bot.runtime.scheduler import start_scheduler, stop_scheduler
from bot.runtime.vectors import VectorFiller
from bot.runtime.worker import InboxWorker
from bot.services import Services
from handlers.errors import is_database_outage
from models.inbox import Inbox
from models.migrate import applied_revisions, upgrade_to_head
from models.session import Store

logger = logging.getLogger("peerlearn")

# Lazy-listener tasks waiting for a thread, beyond which the inbox worker takes no more requests.
WORKER_BACKLOG = 20


@dataclass
class Runtime:
    settings: Settings
    store: Store
    clock: Clock
    services: Services
    bolt_app: App
    wsgi_app: WSGIApp
    # Where the HTTP server acknowledges events and /ask questions (models/inbox.py); None for an in-memory
    # SQLite store, whose requests Bolt handles before acking.
    inbox: Inbox | None = None
    # This process's inbox worker (bot/runtime/worker.py), when it has one: `start_worker`.
    worker: InboxWorker | None = None
    # Periodic jobs (bot/runtime/scheduler.py): started only by the long-running modes (run, serve), not by tests.
    scheduler: BackgroundScheduler | None = None
    # Set once the database is reachable and migrated; until then Slack's requests get 503 (see serve).
    ready: threading.Event = field(default_factory=threading.Event)
    # The revisions it was migrated to (set before `ready`): /healthz checks the database still has them.
    heads: set[str] = field(default_factory=set)
    stopping: threading.Event = field(default_factory=threading.Event)
    # Computes the search vectors owed after the work that made them owed (bot/runtime/vectors.py).
    vector_filler: VectorFiller | None = None

    def bot_token_for(self, team_id: str) -> str | None:
        """The token to call Slack with for this workspace: its installation's ("Add to Slack") or the
        single SLACK_BOT_TOKEN. For work outside a request (scheduler, digests)."""
        installations = self.bolt_app.installation_store
        if installations is None:
            return self.settings.bot_token
        bot = installations.find_bot(enterprise_id=None, team_id=team_id)
        return bot.bot_token if bot is not None else None

    def when_ready(self, start: Callable[[], object]) -> None:
        """Run `start` once the database is ready (now, if it is)."""

        def wait_then_start() -> None:
            if self.ready.wait() and not self.stopping.is_set():
                start()

        threading.Thread(target=wait_then_start, name="peerlearn-when-ready", daemon=True).start()

    def start_worker(self) -> InboxWorker | None:
        """Handle the inbox in this process (`serve`, `work`, tests, the playground)."""
        if self.worker is None and self.inbox is not None:
            self.worker = new_worker(self).start()
        return self.worker

    def start_scheduler(self) -> BackgroundScheduler:
        if self.scheduler is None:
            self.scheduler = start_scheduler(self.services, self.bolt_app.client, self.bot_token_for)
        return self.scheduler

    def close(self) -> None:
        self.stopping.set()
        stop_scheduler(self.scheduler)
        self.scheduler = None
        if self.worker is not None:
            self.worker.stop()
            self.worker = None
        if self.inbox is not None:
            self.inbox.close()
        self.store.dispose()


def build_runtime(
    settings: Settings,
    clock: Clock | None = None,
    migrate: Callable[[Engine], None] = upgrade_to_head,
    wait_for_database: bool = False,
) -> Runtime:
    """`migrate` upgrades the schema (models/migrate.py: here or in a child process). `wait_for_database`:
    migrate in the background, retrying until the database answers, instead of failing at start (a replica
    started during a database outage serves 503s, then recovers by itself)."""
    store = Store.from_url(settings.database_url)
    if not wait_for_database:
        migrate(store.engine)
    services = Services(settings=settings, store=store, clock=clock or Clock())
    bolt_app = create_app(services)
    ready = threading.Event()
    heads: set[str] = set()
    inbox = Inbox.for_database(settings.database_url)
    queueing = None
    if inbox is not None:
        queueing = Queueing(inbox, lambda body: inbox_key(body, settings), settings.signing_secret, services.clock)
    wsgi_app = create_wsgi_app(
        bolt_app,
        store,
        lambda: heads if ready.is_set() else None,
        queueing=queueing,
        screening=Screening(settings.signing_secret),
    )
    runtime = Runtime(
        settings,
        store,
        services.clock,
        services,
        bolt_app,
        wsgi_app,
        inbox=inbox,
        ready=ready,
        heads=heads,
        stopping=services.stopping,
    )
    pool = bolt_app.listener_runner.listener_executor
    runtime.vector_filler = VectorFiller(store, pool, services.stopping)
    if isinstance(pool, ObservedExecutor):
        pool.after_task.append(runtime.vector_filler.after_task)
    if wait_for_database:
        threading.Thread(
            target=migrate_when_reachable, args=(runtime, migrate), name="peerlearn-migrate", daemon=True
        ).start()
    else:
        mark_ready(runtime)
    return runtime


def mark_ready(runtime: Runtime) -> None:
    """The database is migrated: remember to which revisions, let requests in, then compute the routing
    evidence of anyone who has answers but none yet (after an upgrade: everyone; bot/routing/upkeep.py), and
    queue the search vectors owed (after the upgrade to 0013: every document's; bot/runtime/vectors.py)."""
    runtime.heads.update(applied_revisions(runtime.store.engine))
    runtime.ready.set()
    fill_missing_evidence(runtime.store)
    if runtime.vector_filler is not None:
        runtime.vector_filler.wake()


def fill_missing_evidence(store: Store) -> None:
    """Routing works meanwhile (with what is filled so far); a failure is logged, and the next start (or
    `app.py rebuild-evidence`) finishes the job."""
    try:
        with store.session() as session:
            filled = upkeep.fill_missing(session)
    except Exception:
        logger.exception("computing routing evidence from past answers failed; `app.py rebuild-evidence` does it")
        return
    if filled:
        logger.info("computed the routing evidence of %d people from their past answers", filled)


def new_worker(runtime: Runtime) -> InboxWorker:
    """A worker for this runtime's inbox, taking a batch only while Bolt's lazy-listener pool has room."""
    assert runtime.inbox is not None
    pool = runtime.bolt_app.listener_runner.listener_executor
    assert isinstance(pool, ObservedExecutor)  # bot/runtime/app.py gives Bolt this pool, which counts its queue
    filler = runtime.vector_filler
    return InboxWorker(
        runtime.inbox,
        runtime.bolt_app,
        runtime.store,
        has_room=lambda: pool.queued < WORKER_BACKLOG,
        after_batch=filler.wake if filler is not None else lambda: None,
    )


def migrate_when_reachable(
    runtime: Runtime,
    migrate: Callable[[Engine], None] = upgrade_to_head,
    first_delay: float = 1.0,
    max_delay: float = 30.0,
) -> None:
    """Upgrade the schema, retrying with backoff while the database is unreachable; then mark ready."""
    delay = first_delay
    while not runtime.stopping.is_set():
        try:
            migrate(runtime.store.engine)
            mark_ready(runtime)
        except Exception as exc:
            if is_database_outage(exc):
                logger.warning("database unreachable at start (%s); retrying in %.0fs", exc.__class__.__name__, delay)
            else:
                logger.exception("migrating the database failed; retrying in %.0fs", delay)
            runtime.stopping.wait(delay)
            delay = min(delay * 2, max_delay)
            continue
        logger.info("database reachable and migrated; serving Slack's requests")
        return


def serve_in_thread(runtime: Runtime, host: str = "127.0.0.1", port: int = 0, threads: int = 8) -> HttpServer:
    """The HTTP server on a thread, with this process's inbox worker."""
    runtime.start_worker()
    return HttpServer(runtime.wsgi_app, host=host, port=port, threads=threads).start()
