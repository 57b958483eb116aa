"""Shared pieces of the scale and speed benchmarks: scratch databases, a seeded synthetic corpus, bulk
loading, percentiles and the --quick / --json plumbing.

The synthetic corpus: a vocabulary of made-up words (letters only, never an English stopword) whose
frequencies follow Zipf's law (the r-th most common word has weight 1 / (r + 2.7)), as words in real text
do; each question mixes words of its topic (a small set of words that questions about the same thing
share) with words of the whole vocabulary, and carries one to three tags (also Zipf-distributed). So a
few words occur in most documents, as "error", "use" or "get" do in a real Q&A workspace, and each query
has both common and rare terms. Everything is seeded: the same arguments give the same data.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import random
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from sqlalchemy import Engine, create_engine, text  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402

from bot.search import STOPWORDS  # noqa: E402
from models.session import normalize_url  # noqa: E402

# The PostgreSQL the benchmarks create their scratch databases next to (only used to connect).
DEFAULT_PG_URL = os.environ.get("PEERLEARN_BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
EPOCH = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)  # a Monday; synthetic timestamps start here


# --- scratch databases ---------------------------------------------------------------------------------


@contextmanager
def scratch_database(dialect: str, pg_url: str = DEFAULT_PG_URL) -> Iterator[str]:
    """A database for one run: a temporary SQLite file, or a new PostgreSQL database dropped at the end."""
    if dialect == "sqlite":
        with tempfile.TemporaryDirectory(prefix="peerlearn-bench-") as folder:
            yield f"sqlite:///{Path(folder) / 'bench.db'}"
        return
    admin = create_engine(normalize_url(pg_url), isolation_level="AUTOCOMMIT")
    name = f"peerlearn_bench_{uuid.uuid4().hex[:10]}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(normalize_url(pg_url)).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def postgres_reachable(pg_url: str = DEFAULT_PG_URL) -> bool:
    try:
        engine = create_engine(normalize_url(pg_url), connect_args={"connect_timeout": 2})
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        engine.dispose()
        return True
    except Exception:
        return False


# --- the synthetic corpus ------------------------------------------------------------------------------

_ONSETS = ("b", "d", "f", "g", "k", "l", "m", "n", "p", "r", "t", "v", "z", "br", "gr", "kl", "pr", "st", "tr")
_VOWELS = ("a", "o", "u", "i", "ai", "ou")
ZIPF_OFFSET = 2.7  # Mandelbrot's shift: the first few words are not quite as dominant as pure 1/r


def made_up_words(count: int, rng: random.Random) -> list[str]:
    """`count` distinct pronounceable words of 2-4 syllables, none an English stopword."""
    words: list[str] = []
    seen: set[str] = set()
    while len(words) < count:
        word = "".join(rng.choice(_ONSETS) + rng.choice(_VOWELS) for _ in range(rng.randint(2, 4)))
        if word not in seen and word not in STOPWORDS:
            seen.add(word)
            words.append(word)
    return words


def zipf_weights(count: int, exponent: float = 1.0) -> list[float]:
    """Cumulative Zipf weights for random.choices(cum_weights=...)."""
    return list(itertools.accumulate(1.0 / (rank + ZIPF_OFFSET) ** exponent for rank in range(count)))


@dataclass(frozen=True, slots=True)
class SyntheticQuestion:
    number: int
    text: str
    answer: str
    tags: tuple[str, ...]
    topic: int


class Corpus:
    """Seeded generator of questions, answers and tags (see the module docstring)."""

    def __init__(
        self, seed: int = 7, vocabulary: int = 30_000, tags: int = 300, topics: int = 5_000, topic_words: int = 12
    ) -> None:
        self.rng = random.Random(seed)
        self.words = made_up_words(vocabulary + tags, self.rng)
        self.tags = [f"t{word}" for word in self.words[vocabulary:]]
        self.words = self.words[:vocabulary]
        self._word_weights = zipf_weights(vocabulary)
        self._tag_weights = zipf_weights(tags, 1.1)
        # A topic: a few mid-frequency words and one or two tags that questions about it share.
        self.topics = [
            (
                self.rng.sample(self.words[200:], topic_words),
                tuple(dict.fromkeys(self.rng.choices(self.tags, cum_weights=self._tag_weights, k=2))),
            )
            for _ in range(topics)
        ]

    def sentence(self, words: int, topic: int, topical: float = 0.5) -> str:
        topic_words = self.topics[topic][0]
        general = self.rng.choices(self.words, cum_weights=self._word_weights, k=words)
        chosen = [self.rng.choice(topic_words) if self.rng.random() < topical else word for word in general]
        return " ".join(chosen)

    def question(self, number: int) -> SyntheticQuestion:
        topic = self.rng.randrange(len(self.topics))
        title = self.sentence(self.rng.randint(6, 14), topic)
        answer = self.sentence(self.rng.randint(15, 40), topic, topical=0.3)
        tags = self.topics[topic][1][: self.rng.randint(1, 2)]
        if self.rng.random() < 0.3:
            tags = (*tags, *self.rng.choices(self.tags, cum_weights=self._tag_weights, k=1))
        return SyntheticQuestion(
            number, title.capitalize() + "?", answer.capitalize() + ".", tuple(dict.fromkeys(tags)), topic
        )

    def questions(self, count: int) -> Iterator[SyntheticQuestion]:
        for number in range(count):
            yield self.question(number)

    def rewording(self, question: SyntheticQuestion) -> str:
        """Someone asking the same thing again in other words: some words dropped, a few others added."""
        words = question.text.rstrip("?").lower().split()
        kept = [word for word in words if self.rng.random() < 0.7] or words[:1]
        extra = self.sentence(self.rng.randint(1, 3), question.topic, topical=0.3).split()
        for word in extra:
            kept.insert(self.rng.randrange(len(kept) + 1), word)
        return " ".join(kept).capitalize() + "?"


# --- bulk loading ------------------------------------------------------------------------------------------


def copy_rows(engine: Engine, table: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> int:
    """PostgreSQL COPY FROM STDIN (psycopg 3), the fastest way in; values are written as COPY text."""
    return copy_lines(engine, table, columns, ("\t".join(map(_copy_value, row)) for row in rows))


def copy_lines(engine: Engine, table: str, columns: Sequence[str], lines: Iterable[str]) -> int:
    """COPY rows already formatted as COPY text lines (tab-separated, no newline): for millions of rows."""
    total = 0
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        with cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:  # type: ignore[attr-defined]
            for chunk in chunked(lines, 20_000):
                copy.write("\n".join(chunk) + "\n")
                total += len(chunk)
        raw.commit()
    finally:
        raw.close()
    return total


def _copy_value(value: Any) -> str:
    if value is None:
        return "\\N"
    if isinstance(value, bool):
        return "t" if value else "f"
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value).replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")


def chunked(rows: Iterable[Any], size: int) -> Iterator[list[Any]]:
    iterator = iter(rows)
    while chunk := list(itertools.islice(iterator, size)):
        yield chunk


def at(minutes: float) -> datetime:
    return EPOCH + timedelta(minutes=minutes)


# --- measuring ---------------------------------------------------------------------------------------------


def percentile(values: Sequence[float], fraction: float) -> float:
    """The nearest-rank percentile (p50 = the median value, p99 = the value 99 % of samples do not exceed)."""
    ordered = sorted(values)
    if not ordered:
        return 0.0
    return ordered[min(len(ordered) - 1, max(0, math.ceil(fraction * len(ordered)) - 1))]


def load_average() -> float:
    """The 1-minute load average (the machine is shared: results say how busy it was)."""
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:
        return -1.0


# --- the command line --------------------------------------------------------------------------------------


def base_parser(description: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--quick", action="store_true", help="a smaller load (under a minute), the same figures")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    parser.add_argument("--pg-url", default=DEFAULT_PG_URL, help="PostgreSQL to create scratch databases next to")
    return parser


def emit(result: dict[str, Any], as_json: bool, table: Callable[[dict[str, Any]], str]) -> None:
    print(json.dumps(result) if as_json else table(result), flush=True)


def wait_healthy(
    url: str, process: subprocess.Popen[bytes] | None, name: str, log: Path | None, timeout: float
) -> None:
    """Poll `url`/healthz until it answers 200; fail early, pointing at the log, if the process exits."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"{name} exited with {process.returncode}; see {log}")
        try:
            with urllib.request.urlopen(url + "/healthz", timeout=2) as reply:
                if reply.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.05)
    raise RuntimeError(f"{name} did not become healthy in {timeout}s; see {log}")


def progress(message: str) -> None:
    """Progress on stderr, so --json keeps standard output to the one JSON object."""
    print(message, file=sys.stderr, flush=True)
