"""Ack latency and throughput over HTTP: `python app.py serve` next to a bare Bolt app that only acks.

    python bench/ack_latency.py [--quick] [--json] [--database sqlite|postgresql|both] [--levels 1,8,32]

Three processes besides this one: the Slack Web API emulator (tests/slack FakeSlackAPI, in its own process,
so its work is not on this process's interpreter), `python app.py serve` (its front on uvicorn, its worker
process behind it, the bot's WebClient on the emulator through SLACK_API_URL, a scratch SQLite file or
PostgreSQL database) and, as the baseline measured in the same run, a bare Bolt app on the same machine
(the design's sync `App` on waitress, 8 threads, Bolt's WSGI adapter, process_before_response=True,
signature checks on) whose listeners only ack.

The load: signed `/ask` slash commands (a synthetic question with tags each, a fresh trigger_id and a
response_url the emulator knows) and Events API thread replies (message events with thread_ts on questions
posted earlier, a fresh event_id each), alternating, sent by 1, 8 and 32 concurrent clients. Each client is a
thread with one keep-alive connection that writes requests signed beforehand (Slack accepts a signature for
five minutes) and reads the response, so the client costs little CPU (this machine has 2 cores). A request
counts from its first byte sent to its last byte read. Each level is sent in 5 rounds (3 with --quick) in
which the three setups below take turns in a rotating order, and a setup's figures pool its rounds (see
ROUNDS). Between runs the bot's work after the acks (posting, suggestions, routing: Bolt's lazy listeners)
is waited for, so each run starts from a quiet server.

PeerLearn is measured twice per level: as `serve` runs it (its inbox worker process handling the acked
requests on this machine meanwhile: posting, search, routing, and the Slack emulator answering those calls),
and as the front alone ("front only": the worker processes SIGSTOPped during the run and resumed after it:
what the acks cost when the work after them does not take their CPU, as on a machine with a core to spare
for the worker). On this 2-core machine the load generator takes most of one core, and the worker's work,
with the Slack emulator's and the database's share of it, slows every process, the bare app's acks included
(measured: its 1-client p99 0.5 -> 1.1-2.4 ms while our worker runs next to it), so the first measure mixes
the ack path with the machine's load.

Reported per level and server: p50/p99 latency, requests per second, non-200 responses; the goal is
PeerLearn's p99 within 1.2x of the bare app's and its throughput at least 0.8x, at every level.
--quick: SQLite only, fewer requests per level (same figures).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import random
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import create_engine, text

from bench.common import (
    ROOT,
    Corpus,
    base_parser,
    emit,
    load_average,
    percentile,
    postgres_reachable,
    progress,
    scratch_database,
    wait_healthy,
)
from models.inbox import Inbox, inbox_file

SIGNING_SECRET = "ack-latency-bench-secret"
BOT_TOKEN = "xoxb-test-token"  # what the emulator accepts (tests/slack/fake_api.py)
TEAM_ID, TEAM_DOMAIN, APP_ID, BOT_USER_ID = "T0001", "peerlearn-test", "A0001", "UBOT"
CHANNEL = "C_LOAD"
ASKERS = [f"U_ASK{n:03d}" for n in range(50)]
ANSWERERS = [f"U_ANS{n:03d}" for n in range(50)]
THREADS = 8  # the bare app's waitress threads; `serve --threads 8` (its default): the front's forwarding threads
START_TIMEOUT = 60.0
P99_GOAL, RPS_GOAL = 1.2, 0.8
# Each level is sent in rounds, the three setups taking turns in a rotating order (bare, PeerLearn, front only;
# then PeerLearn, front only, bare; …), and each setup's rounds are pooled into its figures. On this shared
# 2-core machine the speed of everything drifts over minutes (the bare app's 1-client p99 moved 0.45-1.28 ms
# between full runs); measured one after the other, a setup could be slower only because its turn came at a
# slower minute. Taking turns gives each setup the same minutes.
ROUNDS, ROUNDS_QUICK = 5, 3


# --- the processes ------------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def serve_fake_slack(response_urls: int) -> None:
    """Child process: the emulator with the load's people and channel; prints its URLs, runs until stdin closes."""
    from bot.playground.emulator.fake_api import FakeSlackAPI

    fake = FakeSlackAPI().start()
    for user in ASKERS + ANSWERERS:
        fake.add_user(user, tz="Europe/Berlin")
    fake.add_channel(CHANNEL, name="load", members=ASKERS + ANSWERERS)
    urls = [fake.new_response_url(ASKERS[n % len(ASKERS)], CHANNEL) for n in range(response_urls)]
    print(json.dumps({"base_url": fake.base_url, "response_urls": urls}), flush=True)
    sys.stdin.read()
    fake.stop()


def serve_bare_bolt(port: int, slack_api_url: str) -> None:
    """Child process: the baseline, a Bolt app whose listeners only ack, on waitress like `serve`."""
    import waitress
    from slack_bolt import App
    from slack_bolt.adapter.wsgi import SlackRequestHandler
    from slack_sdk import WebClient

    app = App(
        client=WebClient(token=BOT_TOKEN, base_url=slack_api_url),
        signing_secret=SIGNING_SECRET,
        process_before_response=True,
    )
    app.command("/ask")(lambda ack: ack())
    app.event("message")(lambda: None)
    handler = SlackRequestHandler(app)
    logging.getLogger("waitress.queue").setLevel(logging.ERROR)  # as `serve` has it (bot/logging_setup.py)

    def application(environ: dict[str, Any], start_response: Any) -> Any:
        if environ.get("PATH_INFO") == "/healthz":
            start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "2")])
            return [b"ok"]
        return handler(environ, start_response)

    waitress.serve(application, host="127.0.0.1", port=port, threads=THREADS, ident="bare-bolt", _quiet=True)


@dataclass
class Process:
    name: str
    process: subprocess.Popen[bytes]
    url: str = ""
    log: Path | None = None

    @property
    def pid(self) -> int:
        return self.process.pid

    def wait_healthy(self) -> None:
        wait_healthy(self.url, self.process, self.name, self.log, START_TIMEOUT)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


def child_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "PEERLEARN_", "DATABASE_URL"))}
    env.update(extra)
    return env


@contextmanager
def fake_slack(response_urls: int) -> Iterator[tuple[Process, dict[str, Any]]]:
    process = subprocess.Popen(
        [sys.executable, __file__, "--serve-fake-slack", str(response_urls)],
        cwd=ROOT,
        env=child_env(),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    try:
        assert process.stdout is not None
        info = json.loads(process.stdout.readline())
        yield Process("fake Slack", process, info["base_url"]), info
    finally:
        if process.stdin is not None:
            process.stdin.close()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def start_peerlearn(database_url: str, slack_api_url: str, folder: Path) -> Process:
    port = free_port()
    log = folder / "peerlearn.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [
                sys.executable,
                str(ROOT / "app.py"),
                "serve",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--threads",
                "8",
            ],
            cwd=folder,  # no .env of the developer's: everything comes from the environment below
            env=child_env(
                SLACK_BOT_TOKEN=BOT_TOKEN,
                SLACK_SIGNING_SECRET=SIGNING_SECRET,
                DATABASE_URL=database_url,
                SLACK_API_URL=slack_api_url,
                LOG_LEVEL="WARNING",
            ),
            stdout=out,
            stderr=out,
        )
    server = Process("PeerLearn", process, f"http://127.0.0.1:{port}", log)
    server.wait_healthy()
    return server


def start_bare_bolt(slack_api_url: str, folder: Path) -> Process:
    port = free_port()
    log = folder / "bare.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [sys.executable, __file__, "--serve-bare-bolt", str(port), slack_api_url],
            cwd=ROOT,
            env=child_env(),
            stdout=out,
            stderr=out,
        )
    server = Process("bare Bolt", process, f"http://127.0.0.1:{port}", log)
    server.wait_healthy()
    return server


def rss_mb(pid: int) -> float:
    """Resident set size of a process (VmRSS in /proc), in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# --- the requests --------------------------------------------------------------------------------------------


@dataclass
class Workload:
    """Requests are built (and signed) just before each level is sent, so signatures stay fresh."""

    corpus: Corpus
    response_urls: list[str]
    question_ts: list[str] = field(default_factory=list)  # posted questions that replies go to
    asked: int = 0
    rng: random.Random = field(default_factory=lambda: random.Random(5))

    def ask(self) -> tuple[str, bytes, str]:
        question = self.corpus.question(self.asked)
        tags = " ".join(f"#{tag}" for tag in question.tags)
        fields = {
            "token": "deprecated-verification-token",
            "team_id": TEAM_ID,
            "team_domain": TEAM_DOMAIN,
            "channel_id": CHANNEL,
            "channel_name": "load",
            "user_id": ASKERS[self.asked % len(ASKERS)],
            "user_name": "asker",
            "command": "/ask",
            "text": f"{question.text} {tags}",
            "api_app_id": APP_ID,
            "is_enterprise_install": "false",
            "response_url": self.response_urls[self.asked % len(self.response_urls)],
            "trigger_id": f"{self.asked}.{uuid.uuid4().hex}",
        }
        self.asked += 1
        return "ask", urlencode(fields).encode(), "application/x-www-form-urlencoded"

    def reply(self) -> tuple[str, bytes, str]:
        thread_ts = self.rng.choice(self.question_ts)
        ts = f"{time.time() + self.rng.random():.6f}"
        user = self.rng.choice(ANSWERERS)
        envelope = {
            "token": "deprecated-verification-token",
            "team_id": TEAM_ID,
            "api_app_id": APP_ID,
            "event": {
                "type": "message",
                "user": user,
                "text": self.corpus.sentence(12, self.rng.randrange(len(self.corpus.topics))),
                "ts": ts,
                "thread_ts": thread_ts,
                "parent_user_id": ASKERS[0],
                "channel": CHANNEL,
                "event_ts": ts,
                "channel_type": "channel",
            },
            "type": "event_callback",
            "event_id": f"Ev{uuid.uuid4().hex[:16]}",
            "event_time": int(time.time()),
            "authorizations": [{"team_id": TEAM_ID, "user_id": BOT_USER_ID, "is_bot": True}],
            "is_ext_shared_channel": False,
        }
        return "reply", json.dumps(envelope).encode(), "application/json"

    def batch(self, count: int) -> list[tuple[str, bytes]]:
        """`count` requests, asks and replies alternating, as raw HTTP/1.1 bytes."""
        requests = []
        for number in range(count):
            kind, body, content_type = self.reply() if number % 2 and self.question_ts else self.ask()
            requests.append((kind, http_request(body, content_type)))
        return requests


def http_request(body: bytes, content_type: str) -> bytes:
    from slack_sdk.signature import SignatureVerifier

    timestamp = str(int(time.time()))
    signature = SignatureVerifier(SIGNING_SECRET).generate_signature(timestamp=timestamp, body=body)
    head = (
        "POST /slack/events HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: Slackbot 1.0\r\n"
        f"Content-Type: {content_type}\r\nContent-Length: {len(body)}\r\n"
        f"X-Slack-Request-Timestamp: {timestamp}\r\nX-Slack-Signature: {signature}\r\n\r\n"
    )
    return head.encode() + body


class Connection:
    """One keep-alive HTTP connection that sends prepared requests and reads whole responses."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.sock: socket.socket | None = None
        self.buffer = b""

    def _connect(self) -> socket.socket:
        sock = socket.create_connection(("127.0.0.1", self.port), timeout=30)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock

    def open(self) -> socket.socket:
        if self.sock is None:
            self.sock = self._connect()
        return self.sock

    def roundtrip(self, request: bytes) -> int:
        self.open().sendall(request)
        while b"\r\n\r\n" not in self.buffer:
            self._read()
        head, _, rest = self.buffer.partition(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        status = int(lines[0].split()[1])
        length = 0
        close = False
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
            elif name.strip().lower() == b"connection" and value.strip().lower() == b"close":
                close = True
        while len(rest) < length:
            rest += self._recv()
        self.buffer = rest[length:]
        if close:
            self.close()
        return status

    def _read(self) -> None:
        self.buffer += self._recv()

    def _recv(self) -> bytes:
        assert self.sock is not None
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionError("the server closed the connection")
        return chunk

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
        self.sock, self.buffer = None, b""


@dataclass
class LevelResult:
    latencies_ms: list[float]
    kinds: list[str]
    seconds: float
    errors: int

    def figures(self) -> dict[str, float]:
        by_kind = {
            kind: [ms for ms, k in zip(self.latencies_ms, self.kinds, strict=True) if k == kind]
            for kind in ("ask", "reply")
        }
        return {
            "p50_ms": round(percentile(self.latencies_ms, 0.5), 2),
            "p99_ms": round(percentile(self.latencies_ms, 0.99), 2),
            "rps": round(len(self.latencies_ms) / self.seconds, 1),
            "errors": self.errors,
            "ask_p99_ms": round(percentile(by_kind["ask"], 0.99), 2),
            "reply_p99_ms": round(percentile(by_kind["reply"], 0.99), 2),
        }

    @classmethod
    def joined(cls, parts: list[LevelResult]) -> LevelResult:
        """The rounds of one server at one level as one sample: all latencies, the sending time summed."""
        return cls(
            [ms for part in parts for ms in part.latencies_ms],
            [kind for part in parts for kind in part.kinds],
            sum(part.seconds for part in parts),
            sum(part.errors for part in parts),
        )


def send(port: int, requests: list[tuple[str, bytes]], clients: int) -> LevelResult:
    """`clients` threads take the next prepared request in turn until none is left."""
    latencies: list[float] = []
    kinds: list[str] = []
    errors = 0
    lock = threading.Lock()
    pending = iter(requests)
    start = threading.Barrier(clients + 1)

    def client() -> None:
        nonlocal errors
        connection = Connection(port)
        connection.open()  # before the clock starts: the rounds would otherwise time a connect each
        start.wait()
        while True:
            with lock:
                item = next(pending, None)
            if item is None:
                break
            kind, request = item
            began = time.perf_counter()
            try:
                status = connection.roundtrip(request)
            except OSError:
                connection.close()
                status = 0
            elapsed = (time.perf_counter() - began) * 1000
            with lock:
                latencies.append(elapsed)
                kinds.append(kind)
                errors += status != 200
        connection.close()

    threads = [threading.Thread(target=client, daemon=True) for _ in range(clients)]
    for thread in threads:
        thread.start()
    start.wait()
    began = time.perf_counter()
    for thread in threads:
        thread.join()
    return LevelResult(latencies, kinds, time.perf_counter() - began, errors)


def wait_until_settled(database_url: str, timeout: float = 600.0) -> None:
    """Until the inbox is empty, every stored question is posted (the bot's work after the acks is done) and
    nothing moves."""
    engine = create_engine(database_url)
    inbox = Inbox.for_database(database_url)
    try:
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            with engine.connect() as conn:
                posting = conn.execute(text("SELECT count(*) FROM questions WHERE status = 'posting'")).scalar()
                answers = conn.execute(text("SELECT count(*) FROM answers")).scalar()
            waiting = inbox.pending() if inbox is not None else 0
            if waiting == 0 and posting == 0 and last == answers:
                return
            last = answers
            time.sleep(0.2)
        progress("warning: the bot was still working after the load when the next level started")
    finally:
        engine.dispose()
        if inbox is not None:
            inbox.close()


def posted_questions(database_url: str) -> list[str]:
    engine = create_engine(database_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(text("SELECT message_ts FROM questions WHERE message_ts IS NOT NULL")).scalars()
            return list(rows)
    finally:
        engine.dispose()


def port_of(server: Process) -> int:
    return int(server.url.rsplit(":", 1)[1])


# --- the run -------------------------------------------------------------------------------------------------


def requests_per_level(quick: bool) -> dict[int, int]:
    # At 1 client a p99 needs thousands of requests: a few stalls of 2-5 ms in a thousand (this machine's
    # scheduler; the bare app has them too) are the p99 of 400 requests and below the p99 of 2,000.
    return {1: 300, 8: 180, 32: 270} if quick else {1: 2000, 8: 2000, 32: 3000}


def child_pids(pid: int) -> list[int]:
    """A process's children: for `serve`, the inbox worker processes it started."""
    found = []
    for children in Path(f"/proc/{pid}/task").glob("*/children"):  # each thread's: a restarted worker's parent
        try:  # is the supervising thread
            found += [int(child) for child in children.read_text().split()]
        except FileNotFoundError:  # a thread that has just ended
            continue
    return found


@contextmanager
def workers_paused(server: Process, database_url: str) -> Iterator[None]:
    """SIGSTOP `serve`'s worker processes for the block, as if they had cores of their own: the front only
    acks; the work waits in the inbox until after.

    Never while a worker holds the SQLite inbox's write lock (removing the rows it handled): stopped there, it
    would keep every ack waiting, then failing over to Bolt in that same stopped process (a full run of
    2026-11-25 had 32-client requests time out after 30 s). Nothing a running worker does holds an ack for
    long (tests/test_inbox.py); a stopped one is this benchmark's own doing."""
    paused = child_pids(server.pid)
    inbox = inbox_file(database_url)
    for _ in range(1000):
        for pid in paused:
            os.kill(pid, signal.SIGSTOP)
        if inbox is None or not write_locked(inbox):
            break
        for pid in paused:
            os.kill(pid, signal.SIGCONT)
        time.sleep(0.01)
    else:
        raise RuntimeError("the worker kept the inbox locked for 10 s")
    try:
        yield
    finally:
        for pid in paused:
            os.kill(pid, signal.SIGCONT)


def write_locked(path: Path) -> bool:
    """Whether another connection is writing to this SQLite file now."""
    with contextlib.closing(sqlite3.connect(path, timeout=0, isolation_level=None)) as connection:
        try:
            connection.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as error:
            if "locked" in str(error):
                return True
            raise
        connection.execute("ROLLBACK")
        return False


def level_line(dialect: str, level: int, result: dict[str, Any]) -> str:
    def each(key: str) -> str:
        return " / ".join(str(result[f"c{level}_{setup}{key}"]) for setup in ("", "front_only_", "baseline_"))

    return f"{dialect}, {level} clients (PeerLearn / front only / bare): p99 ms {each('p99_ms')}, rps {each('rps')}"


def measure(dialect: str, pg_url: str, levels: list[int], quick: bool, folder: Path) -> dict[str, Any]:
    counts = requests_per_level(quick)
    per_level = {level: counts.get(level, counts[max(counts)]) for level in levels}
    rounds = ROUNDS_QUICK if quick else ROUNDS
    asks = sum(per_level.values()) + 200  # half of each PeerLearn run is /asks, two runs a level; the warm-up
    result: dict[str, Any] = {}
    with scratch_database(dialect, pg_url) as url, fake_slack(asks) as (_, info):
        workload = Workload(Corpus(seed=3), info["response_urls"])
        peerlearn = start_peerlearn(url, info["base_url"], folder)
        bare = start_bare_bolt(info["base_url"], folder)
        try:
            # Warm-up (imports, connections, the first auth.test), and questions for the replies to go to.
            send(port_of(peerlearn), workload.batch(100), 4)
            wait_until_settled(url)
            workload.question_ts = posted_questions(url)
            send(port_of(bare), workload.batch(100), 4)
            setups = (("baseline_", bare, False), ("", peerlearn, False), ("front_only_", peerlearn, True))
            for level in levels:
                outcomes: dict[str, list[LevelResult]] = {name: [] for name, _, _ in setups}
                cpu = dict.fromkeys(outcomes, 0.0)
                for number in range(rounds):  # interleaved, each round in another order (see ROUNDS)
                    for name, server, paused in setups[number % 3 :] + setups[: number % 3]:
                        requests = workload.batch(per_level[level] // rounds)
                        cpu_before = cpu_seconds(server.pid)
                        with workers_paused(server, url) if paused else contextlib.nullcontext():
                            outcomes[name].append(send(port_of(server), requests, level))
                            cpu[name] += cpu_seconds(server.pid) - cpu_before
                        if server is peerlearn:
                            wait_until_settled(url)
                            workload.question_ts = posted_questions(url)
                for name, parts in outcomes.items():
                    outcome = LevelResult.joined(parts)
                    per_request = round(cpu[name] * 1000 / len(outcome.latencies_ms), 2)
                    figures = outcome.figures() | {
                        "server_cpu_ms_per_request": per_request,
                        "round_p99_ms": [part.figures()["p99_ms"] for part in parts],
                    }
                    result |= {f"c{level}_{name}{key}": value for key, value in figures.items()}
                progress(level_line(dialect, level, result))
        finally:
            peerlearn.stop()
            bare.stop()
    return result


def run(quick: bool, databases: list[str], pg_url: str, levels: list[int]) -> dict[str, Any]:
    import tempfile

    result: dict[str, Any] = {
        "benchmark": "ack_latency",
        "quick": quick,
        "levels": levels,
        "server_threads": THREADS,
        "goal_p99_ratio": P99_GOAL,
        "goal_rps_ratio": RPS_GOAL,
        "load_average_1m": load_average(),
    }
    with tempfile.TemporaryDirectory(prefix="peerlearn-ack-") as folder:
        for dialect in databases:
            figures = measure(dialect, pg_url, levels, quick, Path(folder))
            result |= {f"{dialect}_{key}": value for key, value in figures.items()}
    top, first = max(levels), databases[0]
    result |= {
        "p99_ms": result[f"{first}_c{top}_p99_ms"],
        "baseline_p99_ms": result[f"{first}_c{top}_baseline_p99_ms"],
        "rps": result[f"{first}_c{top}_rps"],
        "baseline_rps": result[f"{first}_c{top}_baseline_rps"],
    }
    for setup in ("", "front_only_"):

        def ratios(key: str, setup: str = setup) -> list[float]:
            """PeerLearn's figure over the bare app's, at every level of every database."""
            return [
                result[f"{db}_c{level}_{setup}{key}"] / max(result[f"{db}_c{level}_baseline_{key}"], 1e-9)
                for db in databases
                for level in levels
            ]

        result[f"{setup}worst_p99_ratio"] = round(max(ratios("p99_ms")), 2)
        result[f"{setup}worst_rps_ratio"] = round(min(ratios("rps")), 2)
        met = result[f"{setup}worst_p99_ratio"] <= P99_GOAL and result[f"{setup}worst_rps_ratio"] >= RPS_GOAL
        result[f"{setup}goal_met"] = met
    result["load_average_1m_after"] = load_average()
    return result


def table(result: dict[str, Any]) -> str:
    lines = [
        f"Ack latency over HTTP, bare app on waitress with {result['server_threads']} threads, serve's front on "
        f"uvicorn (goal: p99 <= {P99_GOAL}x bare, "
        f"rps >= {RPS_GOAL}x bare; load average {result['load_average_1m']} -> {result['load_average_1m_after']})",
        f"{'database':<12}{'clients':>8}  {'server':<11}{'p50 ms':>8}{'p99 ms':>8}{'rps':>8}{'errors':>8}"
        f"{'ask p99':>9}{'reply p99':>10}{'cpu ms/req':>11}",
    ]
    for dialect in ("sqlite", "postgresql"):
        for level in result["levels"]:
            if f"{dialect}_c{level}_p99_ms" not in result:
                continue
            for label, prefix in (("PeerLearn", ""), ("front only", "front_only_"), ("bare Bolt", "baseline_")):
                key = f"{dialect}_c{level}_{prefix}"
                lines.append(
                    f"{dialect:<12}{level:>8}  {label:<11}{result[key + 'p50_ms']:>8.2f}{result[key + 'p99_ms']:>8.2f}"
                    f"{result[key + 'rps']:>8.1f}{result[key + 'errors']:>8}{result[key + 'ask_p99_ms']:>9.2f}"
                    f"{result[key + 'reply_p99_ms']:>10.2f}{result[key + 'server_cpu_ms_per_request']:>11.2f}"
                )
    lines.append(
        f"PeerLearn (`serve`, its worker process on this machine): worst p99 ratio {result['worst_p99_ratio']}, "
        f"worst throughput ratio {result['worst_rps_ratio']}: goal met: {result['goal_met']}"
    )
    lines.append(
        f"front only (the worker paused during each run, as with a core of its own): worst p99 ratio "
        f"{result['front_only_worst_p99_ratio']}, worst throughput ratio {result['front_only_worst_rps_ratio']}: "
        f"goal met: {result['front_only_goal_met']}"
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--serve-fake-slack"]:
        serve_fake_slack(int(argv[1]))
        return 0
    if argv[:1] == ["--serve-bare-bolt"]:
        serve_bare_bolt(int(argv[1]), argv[2])
        return 0
    parser = base_parser(__doc__.split("\n\n")[0])
    parser.add_argument("--database", choices=("sqlite", "postgresql", "both"), help="default: both (quick: sqlite)")
    parser.add_argument("--levels", default="1,8,32", help="concurrent clients, comma-separated (default 1,8,32)")
    args = parser.parse_args(argv)
    database = args.database or ("sqlite" if args.quick else "both")
    databases = ["sqlite", "postgresql"] if database == "both" else [database]
    if "postgresql" in databases and not postgres_reachable(args.pg_url):
        parser.error(f"PostgreSQL is not reachable at {args.pg_url} (pass --pg-url, or --database sqlite)")
    levels = [int(level) for level in args.levels.split(",")]
    emit(run(args.quick, databases, args.pg_url, levels), args.json, table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
