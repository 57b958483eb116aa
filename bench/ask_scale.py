"""The cost of one /ask as the company's history grows: 10k → 100k → 1M questions on PostgreSQL, 10k → 100k on SQLite.

    python bench/ask_scale.py [--quick] [--json] [--database sqlite|postgresql|both] [--sizes 10000,100000]
                              [--asks N]

For each database and size, a scratch store (a temporary SQLite file, or a PostgreSQL database next to
PEERLEARN_BENCH_PG_URL, dropped afterwards) is migrated and filled with a company's history
(bench/history.py: one workspace, 5,000 people, N questions over two years, 3 answers each, accepts, votes,
past routing DMs, lessons, declared topics, tags Zipf-distributed), then `derive_tables` (what a running
store would have derived from it: the planner's statistics, routing's evidence, tag statistics, the stats
rollup).

Then PeerLearn runs as `serve` runs it (bot/runtime/wiring.py in a process of its own per size, started
fresh: the HTTP server, its inbox worker working, Bolt's lazy listeners) against the Slack emulator
(bot/playground/emulator), on a clock that starts at a Tuesday 12:00 UTC, the end of the history. Signed
/ask commands go over HTTP, one at a time, from askers in public channels: most with the tags of a common
topic, some with one common tag, a rare tag or a tag nobody used before (KIND_SHARES); the same asks at
every size, sent to each size's server in turn (every size's server runs at once, idle between its asks),
so a machine busy with other work weighs on every size alike. Per /ask, measured:
- ask: from Bolt taking the request off the inbox (the worker's dispatch) to the last Slack call of its work:
  the similar answers shown to the asker (chat.postEphemeral), or, when nothing similar was found, the
  routing DMs sent and the asker told (route_now);
- route: when similar answers were shown, routing waits for the asker; the asker clicks "Still need help"
  (as a person would) and this is from Bolt taking the click to its last Slack call: the DMs planned (route
  rows written), those due now sent, the asker told. 0 when the ask routed at once;
- total = ask + route: the worker's time from the request to suggestions shown and DMs planned (p50, p95);
- statements: every SQL statement PeerLearn's store executed in both windows (SQLAlchemy
  `before_cursor_execute`; the asks run one at a time, so each window holds only that ask's work). The
  inbox's own reads and writes (models/inbox.py: engines of their own) are not counted.
Statements per ask vary with what routing finds, not with size: the experts it plans (each DM sent now is a
claim and a write; one in a zone where it is not working time is scheduled instead) and the topics nobody
knows (a knowledge gap row each; one ask in ten has a tag nobody used before). The table gives the median
and the maximum; the JSON also the median by DMs sent.

For the largest size, the statements that cost the most per /ask, in each window (time and calls per ask,
next to the smallest size's time): what grows. Warm-up asks first (not measured). --quick: 10k and 100k on both
databases, 40 asks per size (the full run: 10k/100k/1M on PostgreSQL, 10k/100k on SQLite, 100 asks).
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import random
import re
import statistics
import sys
import threading
import time
import traceback
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import Engine, create_engine, event, text

from bench.harness import (
    Corpus,
    base_parser,
    emit,
    load_average,
    percentile,
    postgres_reachable,
    progress,
    scratch_database,
)
from bench.history import CHANNELS, is_private, load_history, people, zone_of
from bot.clock import Clock
from bot.config import Settings
from bot.messages.suggestions import ACTION_SIMILAR_STILL_NEED_HELP
from bot.playground.emulator.fake_api import BOT_TOKEN, Call, FakeSlackAPI
from bot.playground.emulator.world import SlackWorld
from bot.routing.upkeep import rebuild
from bot.runtime.wiring import build_runtime, serve_in_thread
from models.migrate import upgrade_to_head
from models.session import Store, normalize_url
from models.stats_rollup import rebuild_stats
from models.tag_stats import rebuild_tag_stats

SIGNING_SECRET = "ask-scale-bench-secret"
SIZES = {"postgresql": [10_000, 100_000, 1_000_000], "sqlite": [10_000, 100_000]}
ASKS, ASKS_QUICK = 100, 40
WARMUP = 8
COMMON_TAGS = 30  # the most common tags (Zipf ranks) the topical asks are drawn from
RARE_FROM = 200  # tags of this Zipf rank and below are rare
# What people ask about: a common topic (its tags), one common tag, a rare tag, a tag nobody used before (a
# knowledge gap: nobody to DM about it).
KIND_SHARES = (("topic", 0.6), ("single_tag", 0.15), ("rare_tag", 0.15), ("new_tag", 0.1))
TOP_STATEMENTS = 6
PHASES = ("ask", "route")
SETTLE_TIMEOUT = 120.0
CORPUS_SEED, ASKS_SEED = 7, 1


# --- what a running store would have derived from its history --------------------------------------------


def derive_tables(url: str) -> None:
    """What a store that has been running holds besides its rows, built after a bulk load: the planner's
    statistics (VACUUM ANALYZE on PostgreSQL, ANALYZE on SQLite), as autovacuum would have them; the tables
    PeerLearn keeps up to date from its rows (routing's evidence, tag statistics, the stats rollup: what `app.py
    rebuild-evidence` computes), and the statistics again for those; on SQLite a checkpointed write-ahead log."""
    analyze(url)
    store = Store.from_url(url)
    try:
        with store.engine.connect() as conn:
            teams = sorted(team for (team,) in conn.execute(text("SELECT DISTINCT team_id FROM questions")))
        for team_id in teams:
            with store.session() as session:
                rebuild(session, team_id)
            with store.session() as session:
                rebuild_tag_stats(session, team_id)
            with store.session() as session:
                rebuild_stats(session, team_id)
    finally:
        store.dispose()
    analyze(url)


def analyze(url: str) -> None:
    engine = create_engine(normalize_url(url), isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            if engine.dialect.name == "postgresql":
                conn.execute(text("VACUUM ANALYZE"))
            else:
                conn.execute(text("ANALYZE"))
                # The load's one big transaction left its pages in the write-ahead log; a running store's
                # checkpoints keep it short.
                conn.execute(text("PRAGMA wal_checkpoint(TRUNCATE)"))
    finally:
        engine.dispose()


# --- the clock: the end of the history, running --------------------------------------------------------------


def history_end(today: datetime) -> datetime:
    """The last Tuesday 12:00 UTC before `today`: working time in most of the people's zones."""
    noon = today.astimezone(UTC).replace(hour=12, minute=0, second=0, microsecond=0)
    days_back = (noon.weekday() - 1) % 7 or 7
    return noon - timedelta(days=days_back)


class RunningClock(Clock):
    """Starts at `start` and runs at the wall clock's pace."""

    def __init__(self, start: datetime) -> None:
        self.start = start
        self.began = time.monotonic()

    def now(self) -> datetime:
        return self.start + timedelta(seconds=time.monotonic() - self.began)


# --- what is measured ----------------------------------------------------------------------------------------

_IN_LIST = re.compile(r"\((?:\s*(?:\?|%\([^)]*\)s|\$\d+|:\w+)\s*,\s*)+(?:\?|%\([^)]*\)s|\$\d+|:\w+)\s*\)")
_SPACE = re.compile(r"\s+")


def statement_key(statement: str, width: int = 150) -> str:
    """A statement's text with whitespace collapsed and parameter lists of any length as one `(…)`, cut to
    `width`: the same query gets the same key whatever its IN-list holds."""
    return _IN_LIST.sub("(…)", _SPACE.sub(" ", statement).strip())[:width]


@dataclass(frozen=True, slots=True)
class Executed:
    started: float  # time.monotonic()
    seconds: float
    key: str


class StatementLog:
    """Every statement an engine executes, with when it started and how long it took."""

    def __init__(self, engine: Engine) -> None:
        self.records: list[Executed] = []
        self._local = threading.local()
        event.listen(engine, "before_cursor_execute", self._before)
        event.listen(engine, "after_cursor_execute", self._after)

    def _before(self, conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        self._local.started = time.monotonic()

    def _after(self, conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        started = getattr(self._local, "started", None)
        if started is not None:
            self.records.append(Executed(started, time.monotonic() - started, statement_key(statement)))

    def since(self, moment: float) -> list[Executed]:
        """The statements started at `moment` or later."""
        return [record for record in list(self.records) if record.started >= moment]


class DispatchTimes:
    """When Bolt started each request (the inbox worker's and the HTTP server's `app.dispatch`)."""

    def __init__(self, app: Any) -> None:
        self.starts: list[float] = []
        dispatch: Callable[..., Any] = app.dispatch

        def timed(request: Any) -> Any:
            self.starts.append(time.monotonic())
            return dispatch(request)

        app.dispatch = timed


@dataclass(frozen=True, slots=True)
class AskSample:
    kind: str  # "topic", "single_tag", "rare_tag" or "new_tag" (KIND_SHARES)
    ask_ms: float  # taking the /ask to suggestions shown (or DMs planned, when nothing similar was found)
    route_ms: float  # taking "Still need help" to DMs planned; 0 when the ask routed at once
    statements: int
    suggested: bool  # similar answers were shown
    dms: int  # routing DMs sent now

    @property
    def total_ms(self) -> float:
        return self.ask_ms + self.route_ms


def summarize(samples: Sequence[AskSample]) -> dict[str, Any]:
    """The figures of one size: total, ask and route p50/p95 in ms, statements per ask (median, min, max)."""
    totals = [sample.total_ms for sample in samples]
    statements = [sample.statements for sample in samples]
    routes = [sample.route_ms for sample in samples if sample.suggested]
    return {
        "asks": len(samples),
        "p50_ms": round(percentile(totals, 0.5), 1),
        "p95_ms": round(percentile(totals, 0.95), 1),
        "ask_p50_ms": round(percentile([s.ask_ms for s in samples], 0.5), 1),
        "ask_p95_ms": round(percentile([s.ask_ms for s in samples], 0.95), 1),
        "route_p50_ms": round(percentile(routes, 0.5), 1),
        "route_p95_ms": round(percentile(routes, 0.95), 1),
        "statements_per_ask": statistics.median(statements) if statements else 0,
        "statements_min": min(statements, default=0),
        "statements_max": max(statements, default=0),
        "suggested_share": round(sum(s.suggested for s in samples) / max(len(samples), 1), 2),
        "dms_per_ask": round(statistics.mean(s.dms for s in samples), 2) if samples else 0.0,
        # What makes the statement count vary: the median count by DMs sent now.
        "statements_by_dms": {
            str(dms): statistics.median(s.statements for s in samples if s.dms == dms)
            for dms in sorted({s.dms for s in samples})
        },
    }


def ratio(figures: dict[int, dict[str, Any]], key: str = "p95_ms") -> float:
    """The largest size's figure over the smallest's (10k), measured in the same run."""
    smallest, largest = min(figures), max(figures)
    return round(figures[largest][key] / max(figures[smallest][key], 1e-9), 2)


def top_statements(
    per_size: dict[int, dict[str, tuple[int, float]]], asks: dict[int, int], limit: int = TOP_STATEMENTS
) -> list[dict[str, Any]]:
    """The statements with the most time per /ask at the largest size, with that time at the smallest size."""
    smallest, largest = min(per_size), max(per_size)
    rows = []
    for key, (count, seconds) in per_size[largest].items():
        small = per_size[smallest].get(key, (0, 0.0))
        rows.append(
            {
                "statement": key,
                "ms_per_ask": round(seconds * 1000 / max(asks[largest], 1), 2),
                "calls_per_ask": round(count / max(asks[largest], 1), 2),
                "ms_per_ask_smallest": round(small[1] * 1000 / max(asks[smallest], 1), 2),
            }
        )
    rows.sort(key=lambda row: -row["ms_per_ask"])
    return rows[:limit]


def by_statement(records: Sequence[Executed]) -> dict[str, tuple[int, float]]:
    totals: dict[str, list[float]] = defaultdict(lambda: [0, 0.0])
    for record in records:
        totals[record.key][0] += 1
        totals[record.key][1] += record.seconds
    return {key: (int(count), seconds) for key, (count, seconds) in totals.items()}


# --- the asks ------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Ask:
    kind: str
    user: str
    channel: str
    text: str


def make_asks(corpus: Corpus, count: int, rng: random.Random) -> list[Ask]:
    """Questions as people ask them: of a common topic with its tags, with one common tag, a rare tag, or a tag
    nobody used before."""
    common = set(corpus.tags[:COMMON_TAGS])
    topical = [number for number, (_, tags) in enumerate(corpus.topics) if tags and tags[0] in common]
    rare = corpus.tags[RARE_FROM:]
    askers = people()
    public = [channel for channel in CHANNELS if not is_private(channel)]
    kinds = [kind for kind, _ in KIND_SHARES]
    weights = [share for _, share in KIND_SHARES]
    asks = []
    for _ in range(count):
        kind = rng.choices(kinds, weights)[0]
        topic = rng.choice(topical) if kind == "topic" else rng.randrange(len(corpus.topics))
        tags = {
            "topic": list(corpus.topics[topic][1]),
            "single_tag": [rng.choice(corpus.tags[:COMMON_TAGS])],
            "rare_tag": [rng.choice(rare)],
            "new_tag": [f"unheard{rng.randrange(10**6)}"],
        }[kind]
        words = corpus.sentence(rng.randint(6, 14), topic)
        text = f"{words.capitalize()}? " + " ".join(f"#{tag}" for tag in tags)
        asks.append(Ask(kind, rng.choice(askers), rng.choice(public), text))
    return asks


def offers_help_button(call: Call) -> bool:
    return call.method == "chat.postEphemeral" and ACTION_SIMILAR_STILL_NEED_HELP in json.dumps(call.args)


def is_routing_dm(call: Call) -> bool:
    return call.method == "chat.postMessage" and call.ok and str(call.response.get("channel", "")).startswith("D")


# --- one size ------------------------------------------------------------------------------------------------


@dataclass
class SizeRun:
    figures: dict[str, Any]
    # Per phase ("ask", "route"): statement key -> (executions, seconds) over the measured asks.
    statements: dict[str, dict[str, tuple[int, float]]] = field(default_factory=dict)


def emulated_slack() -> FakeSlackAPI:
    """The emulator with the history's people (in their zones) and channels (everyone in the public ones)."""
    fake = FakeSlackAPI().start()
    everyone = people()
    for user_id in everyone:
        fake.add_user(user_id, tz=zone_of(user_id))
    for channel in CHANNELS:
        members = everyone[: len(everyone) // 10] if is_private(channel) else everyone
        fake.add_channel(channel, name=channel.lower(), private=is_private(channel), members=members)
    return fake


@contextmanager
def running_peerlearn(url: str, start: datetime) -> Iterator[tuple[Any, SlackWorld, FakeSlackAPI]]:
    fake = emulated_slack()
    settings = Settings(
        bot_token=BOT_TOKEN,
        signing_secret=SIGNING_SECRET,
        database_url=url,
        slack_api_url=fake.base_url,
        log_level="WARNING",
    )
    clock = RunningClock(start)
    runtime = build_runtime(settings, clock=clock)
    server = serve_in_thread(runtime)
    executor = runtime.bolt_app.listener_runner.listener_executor
    world = SlackWorld(fake, server.url, SIGNING_SECRET, clock, listener_executor=executor, runtime=runtime)
    try:
        yield runtime, world, fake
    finally:
        server.stop()
        runtime.close()
        fake.stop()


def measure_ask(
    world: SlackWorld,
    fake: FakeSlackAPI,
    log: StatementLog,
    dispatched: DispatchTimes,
    ask: Ask,
    executed: dict[str, list[Executed]],
) -> AskSample:
    """One /ask (and, when similar answers were shown, its "Still need help"), sent and waited for; the
    statements of each window are added to `executed` ("ask", "route")."""
    mark, first = fake.mark(), len(dispatched.starts)
    response = world.command(ask.user, "/ask", ask.text, ask.channel)
    if response.status != 200:
        raise RuntimeError(f"/ask was answered with HTTP {response.status}: {response.body!r}")
    world.settle(SETTLE_TIMEOUT)
    started = dispatched.starts[first]
    calls = fake.calls[mark:]
    if not calls:
        raise RuntimeError(f"the bot said nothing in Slack about {ask.text!r}")
    ask_ms = (max(call.at for call in calls) - started) * 1000
    window = log.since(started)
    executed.setdefault("ask", []).extend(window)
    statements = len(window)
    suggested = any(offers_help_button(call) for call in calls)
    route_ms = 0.0
    if suggested:
        mark, first = fake.mark(), len(dispatched.starts)
        world.click(ask.user, ACTION_SIMILAR_STILL_NEED_HELP, channel=ask.channel)
        world.settle(SETTLE_TIMEOUT)
        clicked = dispatched.starts[first]
        route_calls = fake.calls[mark:]
        route_ms = (max(call.at for call in route_calls) - clicked) * 1000 if route_calls else 0.0
        window = log.since(clicked)
        executed.setdefault("route", []).extend(window)
        statements += len(window)
        calls += route_calls
    return AskSample(ask.kind, ask_ms, route_ms, statements, suggested, sum(map(is_routing_dm, calls)))


def serve_size(conn: Connection, dialect: str, size: int, pg_url: str, start: datetime) -> None:
    """A size's store and server, in a process of its own (a freshly started server: nothing another size
    left in a process's caches, such as bot/search.py's lexemes per term, makes this size's asks cheaper).
    Loads and derives, says ("ready", figures), then answers the parent: an Ask (measured) or ("warm", Ask)
    gets its AskSample; "finish" gets the statements of the measured asks and ends it. Any failure is sent
    as ("error", traceback) for the parent to raise."""
    try:
        logging.getLogger("peerlearn").setLevel(logging.ERROR)  # e.g. no permalink for history the emulator lacks
        corpus = Corpus(seed=CORPUS_SEED)
        with scratch_database(dialect, pg_url) as url:
            store = Store.from_url(url)
            try:
                upgrade_to_head(store.engine)
            finally:
                store.dispose()
            began = time.perf_counter()
            load_history(url, size, start, corpus)
            loaded = time.perf_counter() - began
            derive_tables(url)
            derived = time.perf_counter() - began - loaded
            progress(f"{dialect} {size}: loaded in {loaded:.1f}s, derived in {derived:.1f}s")
            with running_peerlearn(url, start) as (runtime, world, fake):
                log = StatementLog(runtime.store.engine)
                dispatched = DispatchTimes(runtime.bolt_app)
                executed: dict[str, list[Executed]] = {"ask": [], "route": []}
                conn.send(("ready", {"load_seconds": round(loaded, 1), "derive_seconds": round(derived, 1)}))
                while (message := conn.recv()) != "finish":
                    warm = isinstance(message, tuple)
                    ask = message[1] if warm else message
                    conn.send(measure_ask(world, fake, log, dispatched, ask, {} if warm else executed))
                conn.send({phase: by_statement(records) for phase, records in executed.items()})
    except BaseException:
        conn.send(("error", traceback.format_exc()))
        raise


class SizeServer:
    """The parent's end of serve_size."""

    def __init__(self, dialect: str, size: int, pg_url: str, start: datetime) -> None:
        context = multiprocessing.get_context("spawn")
        self.size = size
        self.conn, child = context.Pipe()
        self.process = context.Process(target=serve_size, args=(child, dialect, size, pg_url, start), daemon=True)
        self.process.start()
        child.close()

    def receive(self) -> Any:
        reply = self.conn.recv()
        if isinstance(reply, tuple) and reply[0] == "error":
            raise RuntimeError(f"the {self.size} questions' server failed:\n{reply[1]}")
        return reply

    def ask(self, ask: Ask, *, measured: bool = True) -> AskSample:
        self.conn.send(ask if measured else ("warm", ask))
        sample: AskSample = self.receive()
        return sample

    def stop(self) -> None:
        self.process.join(timeout=60)
        if self.process.is_alive():
            self.process.kill()


def run_database(dialect: str, sizes: Sequence[int], pg_url: str, asks: int, start: datetime) -> dict[int, SizeRun]:
    """Every size's server at once, then the same asks sent to each size in turn (the order reversed every
    other ask): a machine busy with other work weighs on every size alike, so the ratio compares sizes, not
    moments. Each size's asks still run one at a time, its server otherwise idle."""
    plan = make_asks(Corpus(seed=CORPUS_SEED), WARMUP + asks, random.Random(ASKS_SEED))
    servers = [SizeServer(dialect, size, pg_url, start) for size in sizes]
    try:
        prepared = {server.size: server.receive()[1] for server in servers}
        for ask in plan[:WARMUP]:
            for server in servers:
                server.ask(ask, measured=False)
        samples: dict[int, list[AskSample]] = {size: [] for size in sizes}
        for number, ask in enumerate(plan[WARMUP:]):
            for server in servers if number % 2 == 0 else reversed(servers):
                samples[server.size].append(server.ask(ask))
        runs = {}
        for server in servers:
            server.conn.send("finish")
            statements = server.receive()
            figures = {**prepared[server.size], **summarize(samples[server.size])}
            progress(
                f"{dialect} {server.size}: p50 {figures['p50_ms']} ms, p95 {figures['p95_ms']} ms, "
                f"{figures['statements_per_ask']} statements per /ask (max {figures['statements_max']})"
            )
            runs[server.size] = SizeRun(figures, statements)
        return runs
    finally:
        for server in servers:
            server.stop()


# --- the run -------------------------------------------------------------------------------------------------


def run(databases: Sequence[str], sizes: dict[str, list[int]], pg_url: str, asks: int, quick: bool) -> dict[str, Any]:
    start = history_end(datetime.now(UTC))
    result: dict[str, Any] = {
        "benchmark": "ask_scale",
        "quick": quick,
        "asks_per_size": asks,
        "warmup_asks": WARMUP,
        "history_end": start.isoformat(),
        "load_average_1m": load_average(),
    }
    for dialect in databases:
        result[dialect] = database_result(run_database(dialect, sizes[dialect], pg_url, asks, start))
    result["load_average_1m_after"] = load_average()
    return result


def database_result(runs: dict[int, SizeRun]) -> dict[str, Any]:
    """Per database: the figures of each size (keyed by its question count as text), the p95 ratio of the
    largest size to the smallest, whether statements per /ask are the same at every size, and what grows."""
    figures = {size: run.figures for size, run in runs.items()}
    return {
        "sizes": sorted(runs),
        **{str(size): figures[size] for size in sorted(runs)},
        "ratio_p95": ratio(figures),
        "ratio_p50": ratio(figures, "p50_ms"),
        "statements_same": len({figures[size]["statements_per_ask"] for size in runs}) == 1,
        "top_statements": {
            phase: top_statements(
                {size: run.statements.get(phase, {}) for size, run in runs.items()},
                {size: figures[size]["asks"] for size in runs},
            )
            for phase in PHASES
        },
    }


def table(result: dict[str, Any]) -> str:
    lines = [
        f"One /ask as the history grows: the worker's time from taking it to suggestions shown and DMs planned "
        f"({result['asks_per_size']} asks per size; load average {result['load_average_1m']} -> "
        f"{result['load_average_1m_after']})",
        f"{'database':<12}{'questions':>10}{'load s':>8}{'p50 ms':>9}{'p95 ms':>9}{'ask p95':>9}{'route p95':>11}"
        f"{'stmts/ask':>11}{'max':>6}{'suggested':>11}{'DMs/ask':>9}",
    ]
    for dialect in ("postgresql", "sqlite"):
        if dialect not in result:
            continue
        for size in result[dialect]["sizes"]:
            f = result[dialect][str(size)]
            lines.append(
                f"{dialect:<12}{size:>10}{f['load_seconds']:>8}{f['p50_ms']:>9}{f['p95_ms']:>9}{f['ask_p95_ms']:>9}"
                f"{f['route_p95_ms']:>11}{f['statements_per_ask']:>11}{f['statements_max']:>6}"
                f"{f['suggested_share']:>11}{f['dms_per_ask']:>9}"
            )
    for dialect in ("postgresql", "sqlite"):
        if dialect not in result:
            continue
        sizes = result[dialect]["sizes"]
        lines.append(
            f"{dialect}: p95 at {max(sizes)} / at {min(sizes)}: {result[dialect]['ratio_p95']}x "
            f"(p50 {result[dialect]['ratio_p50']}x); statements per /ask the same at every size: "
            f"{result[dialect]['statements_same']}"
        )
        for phase in PHASES:
            lines.append(
                f"  top statements of the {phase} per /ask at {max(sizes)} (ms/ask, at {min(sizes)}, calls/ask):"
            )
            for row in result[dialect]["top_statements"][phase]:
                lines.append(
                    f"  {row['ms_per_ask']:>8.2f} {row['ms_per_ask_smallest']:>8.2f} {row['calls_per_ask']:>5}  "
                    f"{row['statement'][:110]}"
                )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = base_parser(__doc__.split("\n\n")[0])
    parser.add_argument("--database", choices=("sqlite", "postgresql", "both"), default="both")
    parser.add_argument("--sizes", help="comma-separated question counts, for every database chosen")
    parser.add_argument("--asks", type=int, help=f"measured asks per size (default {ASKS}; quick: {ASKS_QUICK})")
    args = parser.parse_args(argv)
    databases = ["postgresql", "sqlite"] if args.database == "both" else [args.database]
    if "postgresql" in databases and not postgres_reachable(args.pg_url):
        parser.error(f"PostgreSQL is not reachable at {args.pg_url} (pass --pg-url, or --database sqlite)")
    if args.sizes:
        sizes = {dialect: [int(size) for size in args.sizes.split(",")] for dialect in databases}
    else:
        sizes = {dialect: [10_000, 100_000] if args.quick else SIZES[dialect] for dialect in databases}
    asks = args.asks or (ASKS_QUICK if args.quick else ASKS)
    emit(run(databases, sizes, args.pg_url, asks, args.quick), args.json, table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
