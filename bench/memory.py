"""Resident memory of `python app.py serve`: idle, under load, and held open by hostile clients.

    python bench/memory.py [--quick] [--json] [--database sqlite|postgresql] [--clients 8] [--requests N]
                           [--hostile 300]

The processes of bench/ack_latency.py (the Slack emulator in its own process, `serve` on a scratch database,
and as the baseline a bare Bolt app on waitress whose listeners only ack). Resident memory is VmRSS from
/proc/<pid>/status (`serve` is one process):
- idle: once /healthz answers and two seconds have passed (the scheduler and the migrations are done), before
  any Slack request;
- under load: sampled every 20 ms while signed `/ask` commands and thread replies (alternating) are sent by
  `--clients` concurrent clients (default 8); the peak is reported, and the RSS once the bot's work after the
  acks has finished (`after_load_rss_mb`);
- hostile clients, unauthenticated: `--hostile` connections each holding a nearly complete 1 MiB body, then
  as many sending their headers a byte a second. While they are held, signed requests are sent by one
  client (all must be acked, 200); reported: RSS while held (and per connection), whether the server closed
  every one of them by itself and how long it took, and the RSS afterwards.
Goal: idle <= 120 MB; hostile connections cost at most a few MB each while held, and nothing afterwards.
--quick: fewer requests under load (the same figures).
"""

from __future__ import annotations

import contextlib
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.ack_latency import (
    fake_slack,
    port_of,
    posted_questions,
    start_bare_bolt,
    start_peerlearn,
    wait_until_settled,
)
from bench.harness import Corpus, base_parser, emit, load_average, postgres_reachable, scratch_database
from bench.slack_load import Workload, send
from bot.runtime.http import MAX_BODY

GOAL_IDLE_MB = 120.0
SETTLE_SECONDS = 2.0
HOSTILE_WAIT = 60.0  # seconds to wait for the server to close the held connections (it should at 30 s)


def rss_mb(pid: int) -> float:
    """Resident set size of a process (VmRSS in /proc), in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


class Sampler:
    """The peak RSS of a process and its children, sampled on a thread while a block runs."""

    def __init__(self, pid: int, every: float = 0.02) -> None:
        self.pid, self.every = pid, every
        self.peak = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, rss_mb(self.pid))
            self._stop.wait(self.every)

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, rss_mb(self.pid))


def hold_body(port: int) -> socket.socket:
    """A connection whose request is all there but for its last kilobyte."""
    connection = socket.create_connection(("127.0.0.1", port))
    head = f"POST /slack/events HTTP/1.1\r\nHost: peerlearn\r\nContent-Length: {MAX_BODY}\r\n\r\n"
    connection.sendall(head.encode() + b"x" * (MAX_BODY - 1024))
    return connection


def start_headers(port: int) -> socket.socket:
    connection = socket.create_connection(("127.0.0.1", port))
    connection.sendall(b"POST /slack/events HTTP/1.1\r\nHost: peerlearn\r\n")
    return connection


def closed(connection: socket.socket) -> bool:
    """Whether the server has closed it (reset, or an end of stream, after any answer it sent first)."""
    connection.setblocking(False)
    try:
        while True:
            if not connection.recv(65536):
                return True
    except BlockingIOError:
        return False
    except OSError:
        return True


def hostile(port: int, pid: int, how: str, count: int, workload: Workload) -> dict[str, Any]:
    """`count` connections held open (`how`: a body held back, or headers sent a byte a second) while signed
    requests are sent; then wait for the server to close them."""
    before = rss_mb(pid)
    connections = [hold_body(port) if how == "body" else start_headers(port) for _ in range(count)]
    opened = time.monotonic()
    held = [rss_mb(pid)]
    signed = send(port, workload.batch(200), 1)
    open_ones = list(connections)
    while open_ones and time.monotonic() - opened < HOSTILE_WAIT:
        held.append(rss_mb(pid))
        if how == "headers":
            for connection in open_ones:
                with contextlib.suppress(OSError):
                    connection.send(b"X")
        time.sleep(1.0)
        open_ones = [connection for connection in open_ones if not closed(connection)]
    seconds_to_close = round(time.monotonic() - opened, 1)
    for connection in connections:
        connection.close()
    time.sleep(SETTLE_SECONDS)
    figures = signed.figures()
    return {
        "connections": count,
        "rss_before_mb": round(before, 1),
        "rss_held_mb": round(max(held), 1),
        "mb_per_connection": round((max(held) - before) / count, 3),
        "rss_after_mb": round(rss_mb(pid), 1),
        "closed_by_server": count - len(open_ones),
        "seconds_to_close": seconds_to_close,
        "signed_acked": 200 - int(figures["errors"]),
        "signed_p99_ms": figures["p99_ms"],
    }


def run(dialect: str, pg_url: str, clients: int, requests: int, hostile_connections: int) -> dict[str, Any]:
    result: dict[str, Any] = {
        "benchmark": "memory",
        "database": dialect,
        "clients": clients,
        "requests": requests,
        "goal_idle_rss_mb": GOAL_IDLE_MB,
        "hostile_connections": hostile_connections,
        "load_average_1m": load_average(),
    }
    with (
        tempfile.TemporaryDirectory(prefix="peerlearn-memory-") as folder,
        scratch_database(dialect, pg_url) as url,
        fake_slack(requests // 2 + 300) as (_, info),
    ):
        peerlearn = start_peerlearn(url, info["base_url"], Path(folder))
        bare = start_bare_bolt(info["base_url"], Path(folder))
        try:
            time.sleep(SETTLE_SECONDS)
            result["idle_rss_mb"] = round(rss_mb(peerlearn.pid), 1)
            result["baseline_idle_rss_mb"] = round(rss_mb(bare.pid), 1)
            workload = Workload(Corpus(seed=3), info["response_urls"])
            # Questions for the replies to go to (part of the load, counted in the peak).
            with Sampler(peerlearn.pid) as peerlearn_peak:
                send(port_of(peerlearn), workload.batch(100), 4)
                wait_until_settled(url)
                workload.question_ts = posted_questions(url)
                send(port_of(peerlearn), workload.batch(requests), clients)
                wait_until_settled(url)
            result["loaded_rss_mb"] = round(peerlearn_peak.peak, 1)
            result["after_load_rss_mb"] = round(rss_mb(peerlearn.pid), 1)
            with Sampler(bare.pid) as bare_peak:
                send(port_of(bare), workload.batch(100), 4)
                send(port_of(bare), workload.batch(requests), clients)
            result["baseline_loaded_rss_mb"] = round(bare_peak.peak, 1)
            result["baseline_after_load_rss_mb"] = round(rss_mb(bare.pid), 1)
            for how in ("body", "headers"):
                figures = hostile(port_of(peerlearn), peerlearn.pid, how, hostile_connections, workload)
                result |= {f"hostile_{how}_{key}": value for key, value in figures.items()}
        finally:
            peerlearn.stop()
            bare.stop()
    result["goal_met"] = result["idle_rss_mb"] <= GOAL_IDLE_MB
    result["load_average_1m_after"] = load_average()
    return result


def table(result: dict[str, Any]) -> str:
    return "\n".join(
        [
            f"Resident memory (VmRSS), {result['database']}, load: {result['requests']} requests from "
            f"{result['clients']} clients (goal: idle <= {GOAL_IDLE_MB:g} MB; load average "
            f"{result['load_average_1m']} -> {result['load_average_1m_after']})",
            f"{'server':<12}{'idle MB':>10}{'peak under load MB':>20}{'after load MB':>15}",
            f"{'PeerLearn':<12}{result['idle_rss_mb']:>10}{result['loaded_rss_mb']:>20}{result['after_load_rss_mb']:>15}",
            f"{'bare Bolt':<12}{result['baseline_idle_rss_mb']:>10}{result['baseline_loaded_rss_mb']:>20}"
            f"{result['baseline_after_load_rss_mb']:>15}",
            f"goal met: {result['goal_met']}",
            *(hostile_line(result, how) for how in ("body", "headers")),
        ]
    )


def hostile_line(result: dict[str, Any], how: str) -> str:
    what = "holding back the end of a 1 MiB body" if how == "body" else "sending headers a byte a second"
    key = f"hostile_{how}_"
    return (
        f"{result[key + 'connections']} connections {what}: RSS {result[key + 'rss_before_mb']} -> "
        f"{result[key + 'rss_held_mb']} MB held ({result[key + 'mb_per_connection']} MB each) -> "
        f"{result[key + 'rss_after_mb']} MB after; closed by the server: {result[key + 'closed_by_server']} "
        f"in {result[key + 'seconds_to_close']} s; signed requests meanwhile: {result[key + 'signed_acked']}/200 "
        f"acked, p99 {result[key + 'signed_p99_ms']} ms"
    )


def main(argv: list[str] | None = None) -> int:
    parser = base_parser(__doc__.split("\n\n")[0])
    parser.add_argument("--database", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--requests", type=int, help="requests under load (default 3000, quick 800)")
    parser.add_argument("--hostile", type=int, default=300, help="hostile connections held at once (default 300)")
    args = parser.parse_args(argv)
    if args.database == "postgresql" and not postgres_reachable(args.pg_url):
        parser.error(f"PostgreSQL is not reachable at {args.pg_url} (pass --pg-url, or --database sqlite)")
    requests = args.requests or (800 if args.quick else 3000)
    emit(run(args.database, args.pg_url, args.clients, requests, args.hostile), args.json, table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
