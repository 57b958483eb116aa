"""The questions' part of bench/durability.py: a burst of /ask against a slow Slack while `serve` is stopped in
turn with SIGKILL and SIGTERM; every acked question must be posted in its channel exactly once.
"""

from __future__ import annotations

import itertools
import json
import os
import random
import re
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import func, select  # noqa: E402

from bench.durability import SIGNING_SECRET, START_TIMEOUT, Server, in_threads  # noqa: E402
from bot.playground.emulator.fake_api import APP_ID, TEAM_DOMAIN, TEAM_ID, FakeSlackAPI  # noqa: E402
from bot.playground.emulator.signing import SlackSender, slash_command_fields  # noqa: E402
from models.question import STATUS_POSTING, Question  # noqa: E402
from models.session import Store  # noqa: E402

ASKER = "U_ASKER"
ASK_CHANNEL = "C_ASKS"
OWED_TIMEOUT = 600.0  # after the burst: every acked question posted by then (leases of 2 min, a tick a minute)


def serve_fake_slack(response_urls: int, delay: float) -> None:
    """Child process: the emulator, slow over chat.postMessage (half before doing it, half before answering);
    prints its URLs, then answers each `posts` line on stdin with the posts Slack did in the channel (answered
    or not), until stdin closes."""
    fake = FakeSlackAPI().start()
    fake.add_user(ASKER)
    fake.add_channel(ASK_CHANNEL, name="asks", members=[ASKER])
    if delay:
        fake.respond_slowly("chat.postMessage", delay / 2)
        fake.respond_slowly("chat.postMessage", delay / 2, after_applying=True)
    urls = [fake.new_response_url(ASKER, ASK_CHANNEL) for _ in range(response_urls)]
    print(json.dumps({"base_url": fake.base_url, "response_urls": urls}), flush=True)
    for line in sys.stdin:
        if line.strip() != "posts":
            continue
        with fake.lock:
            posts = [
                call.args.get("text", "")
                for call in fake.calls
                if call.method == "chat.postMessage"
                and call.ok
                and call.args.get("channel") == ASK_CHANNEL
                and not call.args.get("thread_ts")
            ]
            violations = [str(violation) for violation in fake.violations]
        print(json.dumps({"posts": posts, "violations": violations}), flush=True)
    fake.stop()


class SlowSlack:
    """The emulator in a process of its own: it outlives every restart of serve, as Slack does."""

    def __init__(self, response_urls: int, delay: float) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "PEERLEARN_"))}
        self.process = subprocess.Popen(
            [sys.executable, __file__, "--serve-fake-slack", str(response_urls), str(delay)],
            cwd=ROOT,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdin is not None and self.process.stdout is not None
        self._stdin, self._stdout = self.process.stdin, self.process.stdout
        info = json.loads(self._stdout.readline())
        self.base_url: str = info["base_url"]
        self._urls: list[str] = info["response_urls"]
        self._lock = threading.Lock()

    def response_url(self) -> str:
        with self._lock:
            return self._urls.pop()

    def posts(self) -> tuple[list[str], list[str]]:
        """The texts of the posts Slack did in the channel, and the contract violations so far."""
        with self._lock:
            self._stdin.write("posts\n")
            self._stdin.flush()
            report = json.loads(self._stdout.readline())
        return report["posts"], report["violations"]

    def close(self) -> None:
        self._stdin.close()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)


@dataclass
class AskRequest:
    number: int  # its marker in the question's text: R00042
    acked: bool = False

    @property
    def marker(self) -> str:
        return f"R{self.number:05d}"


ASK_MARKER = re.compile(r"\bR\d{5}\b")


def ask_burst(server: Server, slack: SlowSlack, questions: int, senders: int) -> list[AskRequest]:
    """`questions` /ask, each asked again (a new request) until one is acked, from `senders` threads at once."""
    sender = SlackSender(server.url + "/slack/events", SIGNING_SECRET, timeout=15)
    requests: list[AskRequest] = []
    numbers = itertools.count(1)
    numbering = threading.Lock()

    def ask_until_acked(_question: int) -> None:
        for _attempt in range(200):
            if not server.up.wait(timeout=START_TIMEOUT * 3):
                raise RuntimeError("the server stayed down")
            with numbering:
                request = AskRequest(next(numbers))
                requests.append(request)
            fields = slash_command_fields(
                team_id=TEAM_ID,
                team_domain=TEAM_DOMAIN,
                api_app_id=APP_ID,
                channel_id=ASK_CHANNEL,
                channel_name="asks",
                user_id=ASKER,
                user_name=ASKER.lower(),
                command="/ask",
                text=f"Durability question {request.marker}: how is nothing lost when the server stops? #durability",
                response_url=slack.response_url(),
                trigger_id=f"{int(time.time())}.{request.number}.{uuid.uuid4().hex}",
            )
            try:
                status = sender.slash_command(fields).status
            except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
                status = 0  # refused, or cut by a stop
            if status == 200:
                request.acked = True
                return
        raise RuntimeError("an /ask was never acknowledged")

    in_threads(range(questions), ask_until_acked, senders, "asker")
    return requests


STOPS = ("serve SIGKILL", "serve SIGTERM")
StopPlan = Callable[[Server, threading.Event], dict[str, int]]


def stop_in_turn(rng: random.Random, stops: int, low: float = 2.0, high: float = 5.0) -> StopPlan:
    """`stops` stops, every low–high seconds, taking STOPS in turn; serve is started again after each."""

    def plan(server: Server, done: threading.Event) -> dict[str, int]:
        made = dict.fromkeys(STOPS, 0)
        turn = 0
        while sum(made.values()) < stops and not done.wait(rng.uniform(low, high)):
            how = STOPS[turn % len(STOPS)]
            turn += 1
            if how == "serve SIGKILL":
                server.kill()
                server.start()
            else:
                server.terminate()
                server.start()
            made[how] += 1
        return made

    return plan


@dataclass
class AskResult:
    questions: int
    requests: int
    acked: int
    posted_once: int  # acked requests whose question is in the channel exactly once
    lost: int  # acked, never posted
    posted_twice: int  # any request whose question is in the channel more than once
    posted_unacked: int  # not acked (the stop cut the answer) but stored, and posted
    still_owed: int  # questions the database still owes their channel at the end
    stops: dict[str, int]
    seconds: float  # the burst and the stops
    drain_seconds: float  # from the last stop until every acked question was posted (and recorded)
    violations: int
    lost_markers: list[str] = field(default_factory=list)


def measure_asks(
    database_url: str,
    questions: int,
    *,
    senders: int = 4,
    slack_delay: float = 0.4,
    stop_plan: StopPlan | None = None,
    workdir: Path | None = None,
) -> AskResult:
    """One run: the slow Slack, a fresh serve on `database_url`, the burst with its stops, then the wait."""
    with tempfile.TemporaryDirectory(prefix="peerlearn-durability-asks-") as scratch:
        folder = workdir or Path(scratch)
        slack = SlowSlack(response_urls=questions * 3 + 100, delay=slack_delay)
        server = Server(database_url, slack.base_url, folder / "server.log")
        try:
            server.start()
            done = threading.Event()
            stops: list[dict[str, int]] = []
            stopper = threading.Thread(target=lambda: stops.append(stop_plan(server, done)) if stop_plan else None)
            started = time.monotonic()
            stopper.start()
            try:
                requests = ask_burst(server, slack, questions, senders)
                stopper.join()  # the stops go on while the acked questions are being posted
            finally:
                done.set()
                stopper.join()
            seconds = time.monotonic() - started
            acked = {request.marker for request in requests if request.acked}
            deadline = time.monotonic() + OWED_TIMEOUT
            while True:  # until every acked question is in the channel, and recorded as posted
                posts, violations = slack.posts()
                posted = {marker for text in posts for marker in ASK_MARKER.findall(text)}
                still_owed = owed_count(database_url)
                if (acked <= posted and not still_owed) or time.monotonic() > deadline:
                    break
                time.sleep(2)  # the posting tick runs every minute
            drain_seconds = time.monotonic() - started - seconds
        finally:
            server.stop()
            slack.close()
    per_marker: dict[str, int] = {}
    for posted_text in posts:
        for marker in ASK_MARKER.findall(posted_text):
            per_marker[marker] = per_marker.get(marker, 0) + 1
    lost = sorted(marker for marker in acked if marker not in per_marker)
    return AskResult(
        questions=questions,
        requests=len(requests),
        acked=len(acked),
        posted_once=sum(1 for marker in acked if per_marker.get(marker) == 1),
        lost=len(lost),
        posted_twice=sum(1 for count in per_marker.values() if count > 1),
        posted_unacked=sum(1 for marker in per_marker if marker not in acked),
        still_owed=still_owed,
        stops=stops[0] if stops else dict.fromkeys(STOPS, 0),
        seconds=round(seconds, 1),
        drain_seconds=round(drain_seconds, 1),
        violations=len(violations),
        lost_markers=lost[:20],
    )


def owed_count(database_url: str) -> int:
    store = Store.from_url(database_url)
    try:
        with store.session() as session:
            owed = select(func.count()).select_from(Question).where(Question.status == STATUS_POSTING)
            return int(session.scalar(owed) or 0)
    finally:
        store.dispose()


if __name__ == "__main__":
    if sys.argv[1:2] == ["--serve-fake-slack"]:  # SlowSlack's child process
        serve_fake_slack(int(sys.argv[2]), float(sys.argv[3]))
