"""Resident memory of `python app.py serve`, idle and under the load of bench/ack_latency.py, next to a bare Bolt app.

    python bench/memory.py [--quick] [--json] [--database sqlite|postgresql] [--clients 8] [--requests N]

The same three processes as bench/ack_latency.py (the Slack emulator in its own process, PeerLearn's `serve`
on a scratch database, and as the baseline a bare Bolt app on waitress whose listeners only ack). Resident
memory is VmRSS from /proc/<pid>/status, of `serve` and its inbox worker process together (each is
reported too):
- idle: once /healthz answers and two seconds have passed (the scheduler and the migrations are done), before
  any Slack request;
- under load: sampled every 20 ms while signed `/ask` commands and thread replies (alternating) are sent by
  `--clients` concurrent clients (default 8); the peak is reported, and the RSS once the bot's work after the
  acks has finished (`after_load_rss_mb`).
Goal: PeerLearn idle <= 120 MB. --quick: fewer requests (the same figures).
"""

from __future__ import annotations

import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.ack_latency import (
    Workload,
    child_pids,
    fake_slack,
    port_of,
    posted_questions,
    rss_mb,
    send,
    start_bare_bolt,
    start_peerlearn,
    wait_until_settled,
)
from bench.common import Corpus, base_parser, emit, load_average, postgres_reachable, scratch_database

GOAL_IDLE_MB = 120.0
SETTLE_SECONDS = 2.0


def tree_rss_mb(pid: int) -> float:
    """RSS of a process and its children (`serve` and its inbox worker processes), in MB."""
    return rss_mb(pid) + sum(rss_mb(child) for child in child_pids(pid))


class Sampler:
    """The peak RSS of a process and its children, sampled on a thread while a block runs."""

    def __init__(self, pid: int, every: float = 0.02) -> None:
        self.pid, self.every = pid, every
        self.peak = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, tree_rss_mb(self.pid))
            self._stop.wait(self.every)

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, tree_rss_mb(self.pid))


def run(dialect: str, pg_url: str, clients: int, requests: int) -> dict[str, Any]:
    result: dict[str, Any] = {
        "benchmark": "memory",
        "database": dialect,
        "clients": clients,
        "requests": requests,
        "goal_idle_rss_mb": GOAL_IDLE_MB,
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
            result["idle_rss_mb"] = round(tree_rss_mb(peerlearn.pid), 1)
            result["idle_front_rss_mb"] = round(rss_mb(peerlearn.pid), 1)
            result["idle_worker_rss_mb"] = round(sum(rss_mb(child) for child in child_pids(peerlearn.pid)), 1)
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
            result["after_load_rss_mb"] = round(tree_rss_mb(peerlearn.pid), 1)
            with Sampler(bare.pid) as bare_peak:
                send(port_of(bare), workload.batch(100), 4)
                send(port_of(bare), workload.batch(requests), clients)
            result["baseline_loaded_rss_mb"] = round(bare_peak.peak, 1)
            result["baseline_after_load_rss_mb"] = round(rss_mb(bare.pid), 1)
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
            f"PeerLearn is `serve` and its inbox worker process: idle {result['idle_front_rss_mb']} MB + "
            f"{result['idle_worker_rss_mb']} MB",
            f"goal met: {result['goal_met']}",
        ]
    )


def main(argv: list[str] | None = None) -> int:
    parser = base_parser(__doc__.split("\n\n")[0])
    parser.add_argument("--database", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--requests", type=int, help="requests under load (default 3000, quick 800)")
    args = parser.parse_args(argv)
    if args.database == "postgresql" and not postgres_reachable(args.pg_url):
        parser.error(f"PostgreSQL is not reachable at {args.pg_url} (pass --pg-url, or --database sqlite)")
    requests = args.requests or (800 if args.quick else 3000)
    emit(run(args.database, args.pg_url, args.clients, requests), args.json, table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
