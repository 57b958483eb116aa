"""The load of bench/ack_latency.py and bench/memory.py: signed `/ask` questions and Events API thread replies
as Slack sends them (Workload), and clients that send them over keep-alive connections and time each
response (send)."""

from __future__ import annotations

import json
import random
import socket
import threading
import time
import uuid
from dataclasses import dataclass, field
from urllib.parse import urlencode

from bench.harness import Corpus, percentile

SIGNING_SECRET = "ack-latency-bench-secret"
TEAM_ID, TEAM_DOMAIN, APP_ID, BOT_USER_ID = "T0001", "peerlearn-test", "A0001", "UBOT"
CHANNEL = "C_LOAD"
ASKERS = [f"U_ASK{n:03d}" for n in range(50)]
ANSWERERS = [f"U_ANS{n:03d}" for n in range(50)]


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
        self.sock = self.sock or self._connect()
        return self.sock

    def roundtrip(self, request: bytes) -> int:
        self.open().sendall(request)
        while b"\r\n\r\n" not in self.buffer:
            self.buffer += self._recv()
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
