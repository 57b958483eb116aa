"""Durability under kill -9 and SIGTERM: is every event and every /ask Slack considers delivered (it got HTTP 200)
stored, and every acked question posted in its channel exactly once?

    python bench/durability.py [--events 1000] [--asks 300] [--slack-delay 0.4] [--stops 8] [--only events|asks]
                               [--quick] [--json] [--database-url URL] [--senders 4]

Events. `python app.py serve` runs as a child process against the emulated Slack Web API. Thread replies to a
question, then helpful reactions on those answers, are sent as signed Events API deliveries by several
sender threads at once while the server is killed with SIGKILL at random moments (every 0.3–1.5 s) and
restarted. A delivery that got no 200 (connection refused or reset, 5xx) is redelivered with the same
event_id and X-Slack-Retry-Num, as Slack does, until acknowledged. At the end every acknowledged event
must have its row: an answer (team, channel, ts) or a vote (team, channel, message ts, voter, reaction),
each exactly once. Reported: events, deliveries, acked, stored, lost (acked but not stored),
duplicates, kills; and, as the baseline measured in the same run, the same kind of traffic with no kills.

Questions. A burst of signed /ask commands from several senders while Slack is slow (the emulator runs in a
process of its own, which survives every restart, and takes --slack-delay seconds over each chat.postMessage:
half before doing it, half after, before its answer), and --stops stops of `serve` every 2–5 s meanwhile, in
turn: killed with SIGKILL, sent SIGTERM (each followed by a new serve). The questions' part is
bench/ask_durability.py. The stops go on while
the acked questions are being posted. Slack never retries a slash command; a person whose /ask got no 200
asks again (a new request). After the stops the bench waits until every acked question is in the channel and
recorded as posted (a question a stop left owed is posted by the posting tick of a later start, after a killed
attempt's 2-minute lease). Counted from the emulator's record of chat.postMessage (every post Slack did,
answered or not), each question known by a marker in its text: requests, acked, acked and posted exactly
once, lost (acked, never posted), posted twice, requests not acked but posted anyway (stored before the stop
cut the answer), questions still owed at the end, contract violations. The baseline: a third of the burst on
the same slow Slack with no stops.

--database-url defaults to a temporary SQLite file. With a PostgreSQL URL, a scratch database is created
next to the one named (which is only used to connect) and dropped afterwards.
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import random
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TypeVar

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import create_engine, func, select, text  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402

from bench.harness import wait_healthy  # noqa: E402
from bot.playground.emulator.fake_api import APP_ID, BOT_TOKEN, BOT_USER_ID, TEAM_DOMAIN, TEAM_ID, FakeSlackAPI  # noqa: E402
from bot.playground.emulator.signing import SlackSender, event_envelope, slash_command_fields  # noqa: E402
from models.inbox import Inbox  # noqa: E402
from models.question import Answer, Question, Vote  # noqa: E402
from models.session import Store, normalize_url  # noqa: E402
from models.workspace import ProcessedEvent  # noqa: E402

SIGNING_SECRET = "durability-bench-secret"
CHANNEL = "C_DURABLE"
ASKER = "U_ASKER"
ANSWERERS = tuple(f"U_EXPERT{i}" for i in range(5))
VOTERS = tuple(f"U_VOTER{i}" for i in range(20))
START_TIMEOUT = 60.0
SIGTERM_WAIT = (
    60.0  # serve's own stop: one grace (20 s, bot/runtime/cli.py) for its requests and listeners, and a margin
)


# --- the server under test -----------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Server:
    """`python app.py serve` as a child process that can be killed with SIGKILL and started again."""

    def __init__(self, database_url: str, slack_api_url: str, log_path: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "PEERLEARN_"))}
        self.env.update(
            SLACK_BOT_TOKEN=BOT_TOKEN,
            SLACK_SIGNING_SECRET=SIGNING_SECRET,
            DATABASE_URL=database_url,
            SLACK_API_URL=slack_api_url,
            LOG_LEVEL="WARNING",
        )
        self.process: subprocess.Popen[bytes] | None = None
        self.up = threading.Event()
        self.starts = 0

    def start(self) -> None:
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, str(ROOT / "app.py"), "serve", "--host", "127.0.0.1", "--port", str(self.port)],
                cwd=self.log_path.parent,
                env=self.env,
                stdout=log,
                stderr=log,
            )
        self.starts += 1
        self.wait_healthy()
        self.up.set()

    def wait_healthy(self) -> None:
        wait_healthy(self.url, self.process, "the server", self.log_path, START_TIMEOUT)

    def kill(self) -> None:
        """SIGKILL: no cleanup, no flush, whatever was in flight is cut."""
        self.up.clear()
        if self.process is not None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=30)

    def stop(self) -> None:
        self.up.clear()
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)

    def terminate(self) -> None:
        """SIGTERM, as an orchestrator stops it: the requests under way are answered, the listeners get the grace."""
        self.up.clear()
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=SIGTERM_WAIT)


# --- Slack's side: events and their redelivery --------------------------------------------------------


@dataclass
class Delivery:
    event_id: str
    event: dict
    kind: str  # "answer" or "vote"
    key: tuple[str, ...]
    attempts: int = 0
    acked: bool = False


def reply_deliveries(question_ts: str, count: int, rng: random.Random) -> list[Delivery]:
    base = float(question_ts)
    deliveries = []
    for number in range(count):
        ts = f"{base + 1 + number:.6f}"
        user = rng.choice(ANSWERERS)
        event = {
            "type": "message",
            "user": user,
            "text": f"Answer {number}: try it this way",
            "ts": ts,
            "thread_ts": question_ts,
            "parent_user_id": ASKER,
            "channel": CHANNEL,
            "event_ts": ts,
            "channel_type": "channel",
        }
        deliveries.append(Delivery(f"EvAns{uuid.uuid4().hex[:12]}", event, "answer", (CHANNEL, ts)))
    return deliveries


def vote_deliveries(answers: list[Delivery], count: int, rng: random.Random) -> list[Delivery]:
    pairs = [(answer, voter) for answer in answers for voter in VOTERS]
    deliveries = []
    for answer, voter in rng.sample(pairs, min(count, len(pairs))):
        ts = answer.event["ts"]
        event = {
            "type": "reaction_added",
            "user": voter,
            "reaction": "+1",
            "item_user": answer.event["user"],
            "item": {"type": "message", "channel": CHANNEL, "ts": ts},
            "event_ts": ts,
        }
        deliveries.append(Delivery(f"EvVote{uuid.uuid4().hex[:12]}", event, "vote", (CHANNEL, ts, voter, "+1")))
    return deliveries


def deliver_all(server: Server, deliveries: list[Delivery], senders: int, on_ack: Callable[[], None]) -> None:
    """Several senders deliver every event until each is acknowledged with 200, redelivering like Slack."""
    sender = SlackSender(server.url + "/slack/events", SIGNING_SECRET, timeout=15)

    def send_until_acked(delivery: Delivery) -> None:
        while True:
            if not server.up.wait(timeout=START_TIMEOUT * 2):
                raise RuntimeError("the server stayed down")
            envelope = event_envelope(
                delivery.event,
                team_id=TEAM_ID,
                api_app_id=APP_ID,
                event_id=delivery.event_id,
                event_time=int(time.time()),
                bot_user_id=BOT_USER_ID,
            )
            retry = delivery.attempts or None
            delivery.attempts += 1
            try:
                status = sender.event(envelope, retry_num=retry, retry_reason="http_error").status
            except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
                status = 0  # refused or cut by the kill
            if status == 200:
                delivery.acked = True
                on_ack()
                return
            if delivery.attempts > 200:
                raise RuntimeError(f"{delivery.event_id} never acknowledged (last status {status})")

    in_threads(deliveries, send_until_acked, senders, "sender")


T = TypeVar("T")


def in_threads(items: Iterable[T], handle: Callable[[T], None], threads: int, name: str) -> None:
    """`handle` every item, `threads` at a time, each thread taking the next item until none is left; the
    first failure is raised once all threads have stopped."""
    work: queue.Queue[T] = queue.Queue()
    for item in items:
        work.put(item)
    failures: list[BaseException] = []

    def run() -> None:
        try:
            while True:
                try:
                    item = work.get_nowait()
                except queue.Empty:
                    return
                handle(item)
        except BaseException as problem:
            failures.append(problem)

    running = [threading.Thread(target=run, name=f"{name}-{i}") for i in range(threads)]
    for thread in running:
        thread.start()
    for thread in running:
        thread.join()
    if failures:
        raise failures[0]


# --- the run ----------------------------------------------------------------------------------------------


@dataclass
class Result:
    events: int
    deliveries: int
    acked: int
    stored: int
    lost: int
    duplicates: int
    kills: int
    seconds: float
    events_per_second: float
    lost_event_ids: list[str] = field(default_factory=list)


KillPlan = Callable[[Server, threading.Event], int]


def kill_at_random(rng: random.Random, low: float = 0.3, high: float = 1.5) -> KillPlan:
    """Kill every low–high seconds (uniformly random) until the senders are done; restart each time."""

    def plan(server: Server, done: threading.Event) -> int:
        kills = 0
        while not done.wait(rng.uniform(low, high)):
            server.kill()
            kills += 1
            server.start()
        return kills

    return plan


def kill_after_acks(counts: list[int], acked: Callable[[], int], changed: threading.Condition) -> KillPlan:
    """Kill right after the n-th acknowledgement, for each n in `counts` (no clocks involved)."""

    def plan(server: Server, done: threading.Event) -> int:
        kills = 0
        for count in sorted(counts):
            with changed:
                changed.wait_for(lambda n=count: acked() >= n or done.is_set(), timeout=START_TIMEOUT * 4)
            if done.is_set():
                break
            server.kill()
            kills += 1
            server.start()
        return kills

    return plan


def measure(
    database_url: str,
    events: int,
    *,
    senders: int = 4,
    seed: int = 7,
    kill_plan: Callable[[Callable[[], int], threading.Condition], KillPlan] | None = None,
    workdir: Path | None = None,
) -> Result:
    """One run: a fresh server on `database_url` (migrated at start), `events` deliveries, kills per plan."""
    rng = random.Random(seed)
    with tempfile.TemporaryDirectory(prefix="peerlearn-durability-") as scratch:
        folder = workdir or Path(scratch)
        fake = FakeSlackAPI().start()
        server = Server(database_url, fake.base_url, folder / "server.log")
        try:
            for user in (ASKER, *ANSWERERS, *VOTERS):
                fake.add_user(user)
            fake.add_channel(CHANNEL, name="durable", members=[ASKER, *ANSWERERS, *VOTERS])
            server.start()
            question_ts = ask_question(server, fake)
            wait_until_posted(database_url, question_ts)

            acks = 0
            changed = threading.Condition()

            def on_ack() -> None:
                nonlocal acks
                with changed:
                    acks += 1
                    changed.notify_all()

            answers = reply_deliveries(question_ts, max(1, events * 3 // 5), rng)
            votes = vote_deliveries(answers, events - len(answers), rng)
            done = threading.Event()
            kills: list[int] = []
            plan = kill_plan(lambda: acks, changed) if kill_plan else None
            killer = threading.Thread(target=lambda: kills.append(plan(server, done)) if plan else None)
            started = time.monotonic()
            killer.start()
            try:
                deliver_all(server, answers, senders, on_ack)
                deliver_all(server, votes, senders, on_ack)
            finally:
                done.set()
                with changed:
                    changed.notify_all()
                killer.join()
            seconds = time.monotonic() - started
            wait_until_handled(database_url)
        finally:
            server.stop()
            fake.stop()
        return count_stored(database_url, answers + votes, sum(kills), seconds)


def ask_question(server: Server, fake: FakeSlackAPI) -> str:
    sender = SlackSender(server.url + "/slack/events", SIGNING_SECRET)
    fields = slash_command_fields(
        team_id=TEAM_ID,
        team_domain=TEAM_DOMAIN,
        api_app_id=APP_ID,
        channel_id=CHANNEL,
        channel_name="durable",
        user_id=ASKER,
        user_name=ASKER.lower(),
        command="/ask",
        text="How do we keep every answer when the server dies? #durability",
        response_url=fake.new_response_url(ASKER, CHANNEL),
        trigger_id=fake.new_trigger_id(ASKER),
    )
    response = sender.slash_command(fields)
    if response.status != 200:
        raise RuntimeError(f"/ask was answered with {response.status}: {response.body}")
    return str(fake.wait_for("chat.postMessage", timeout=30).response["ts"])


def wait_until_posted(database_url: str, question_ts: str, timeout: float = 30.0) -> None:
    """Replies are matched to the question by its message ts, stored right after Slack answered the post."""
    store = Store.from_url(database_url)
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with store.session() as session:
                if session.scalar(select(Question.id).where(Question.message_ts == question_ts)) is not None:
                    return
            time.sleep(0.02)
        raise RuntimeError("the question was posted but its ts never reached the database")
    finally:
        store.dispose()


def wait_until_handled(database_url: str, timeout: float = 900.0) -> None:
    """Until the server's inbox (models/inbox.py) is empty: every acked delivery has reached the listeners
    (acks outpace the worker: the backlog of a long run takes minutes to drain)."""
    inbox = Inbox.for_database(database_url)
    if inbox is None:
        return
    try:
        deadline = time.monotonic() + timeout
        while inbox.pending() and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        inbox.close()


def count_stored(database_url: str, deliveries: list[Delivery], kills: int, seconds: float) -> Result:
    store = Store.from_url(database_url)
    try:
        with store.session() as session:
            answers = {(a.channel_id, a.ts) for a in session.scalars(select(Answer).where(Answer.team_id == TEAM_ID))}
            votes = {
                (v.channel_id, v.message_ts, v.voter_id, v.reaction)
                for v in session.scalars(select(Vote).where(Vote.team_id == TEAM_ID))
            }
            answer_rows = session.scalar(select(func.count()).select_from(Answer)) or 0
            vote_rows = session.scalar(select(func.count()).select_from(Vote)) or 0
            claimed = session.scalar(select(func.count()).select_from(ProcessedEvent)) or 0
            questions = session.scalar(select(func.count()).select_from(Question)) or 0
    finally:
        store.dispose()
    acked = [d for d in deliveries if d.acked]
    stored = [d for d in deliveries if d.key in (answers if d.kind == "answer" else votes)]
    lost = [d.event_id for d in acked if d.key not in (answers if d.kind == "answer" else votes)]
    duplicates = (answer_rows - len(answers)) + (vote_rows - len(votes)) + max(0, questions - 1)
    duplicates += max(0, claimed - len(deliveries))
    return Result(
        events=len(deliveries),
        deliveries=sum(d.attempts for d in deliveries),
        acked=len(acked),
        stored=len(stored),
        lost=len(lost),
        duplicates=duplicates,
        kills=kills,
        seconds=round(seconds, 2),
        events_per_second=round(len(deliveries) / seconds, 1) if seconds else 0.0,
        lost_event_ids=lost[:20],
    )


@contextmanager
def scratch_database(url: str | None) -> Iterator[str]:
    """A throwaway database: a SQLite file, or a new PostgreSQL database next to the one named."""
    if not url or url.startswith("sqlite"):
        with tempfile.TemporaryDirectory(prefix="peerlearn-durability-db-") as folder:
            yield f"sqlite:///{Path(folder) / 'durability.db'}"
        return
    admin_url = normalize_url(url)
    name = f"peerlearn_durability_{uuid.uuid4().hex[:8]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=1000, help="events to deliver under kills (default 1000)")
    parser.add_argument("--asks", type=int, default=300, help="/ask questions in the burst (default 300)")
    parser.add_argument("--slack-delay", type=float, default=0.4, help="seconds over each chat.postMessage")
    parser.add_argument("--stops", type=int, default=None, help="stops during the /ask run (default 8, quick 4)")
    parser.add_argument("--only", choices=("events", "asks"), help="run one of the two parts")
    parser.add_argument("--quick", action="store_true", help="200 events and 40 questions (a smoke run)")
    parser.add_argument("--senders", type=int, default=4, help="concurrent sender threads (default 4)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--database-url", default=None, help="default: a temporary SQLite file")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args(argv)
    events = 200 if args.quick else args.events
    asks = 40 if args.quick else args.asks
    rng = random.Random(args.seed)
    backend = make_url(normalize_url(args.database_url or "sqlite://")).get_backend_name()
    figures: dict[str, object] = {"database": backend}
    failed = False

    if args.only != "asks":
        with scratch_database(args.database_url) as url:
            baseline = measure(url, max(50, events // 5), senders=args.senders, seed=args.seed)
        with scratch_database(args.database_url) as url:
            killed = measure(
                url,
                events,
                senders=args.senders,
                seed=args.seed,
                kill_plan=lambda _acked, _changed: kill_at_random(rng),
            )
        figures |= {"with_kills": asdict(killed), "baseline_no_kills": asdict(baseline)}
        failed |= bool(killed.lost or killed.duplicates or baseline.lost or baseline.duplicates)
        if not args.json:
            print(f"database: {backend}")
            for label, result in (("kill -9 at random moments", killed), ("baseline, no kills", baseline)):
                print(
                    f"{label:>26}: {result.events} events, {result.deliveries} deliveries, {result.acked} acked, "
                    f"{result.stored} stored, {result.lost} lost, {result.duplicates} duplicates, "
                    f"{result.kills} kills, {result.seconds}s ({result.events_per_second} events/s)"
                )
    if args.only != "events":
        from bench.ask_durability import measure_asks, stop_in_turn

        with scratch_database(args.database_url) as url:
            asks_baseline = measure_asks(url, max(20, asks // 3), senders=args.senders, slack_delay=args.slack_delay)
        with scratch_database(args.database_url) as url:
            plan = stop_in_turn(rng, args.stops or (4 if args.quick else 8))
            stopped = measure_asks(url, asks, senders=args.senders, slack_delay=args.slack_delay, stop_plan=plan)
        figures |= {"asks_with_stops": asdict(stopped), "baseline_asks_no_stops": asdict(asks_baseline)}
        failed |= any(
            result.lost or result.posted_twice or result.still_owed or result.violations
            for result in (stopped, asks_baseline)
        )
        if not args.json:
            print(f"database: {backend}, Slack taking {args.slack_delay}s over each chat.postMessage")
            for label, outcome in (("/ask, serve stopped in turn", stopped), ("baseline, no stops", asks_baseline)):
                stops = ", ".join(f"{how} {count}" for how, count in outcome.stops.items())
                print(
                    f"{label:>28}: {outcome.requests} requests, {outcome.acked} acked, {outcome.posted_once} posted "
                    f"exactly once, {outcome.lost} lost, {outcome.posted_twice} posted twice, "
                    f"{outcome.posted_unacked} posted though not acked, {outcome.still_owed} still owed, "
                    f"{outcome.violations} contract violations; stops: {stops}; burst and stops {outcome.seconds}s, "
                    f"all posted {outcome.drain_seconds}s after them"
                )
    if args.json:
        print(json.dumps(figures))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
