"""A company's history in bulk, for the benchmarks that need a workspace that has been running for years:
one workspace, thousands of people, N questions over two years ending at `now`, on SQLite or PostgreSQL.

The shape (as bench/digest_scale.py's, with the text and tags of bench/harness.py's Corpus, so search and
routing see realistic words and a few hundred Zipf-distributed tags):
- PEOPLE people in a few time zones (their profiles fetched an hour before `now`, as a running bot keeps
  them), CHANNELS channels (one in PRIVATE_EVERY private);
- N questions, evenly over SPAN up to `now`, each with one to three tags (its topic's, sometimes one more),
  65 % resolved with their first answer accepted, the rest open (routing done with them);
- 3 answers per question (3N), mostly from the question topic's regulars (TOPIC_REGULARS people), else anyone;
- an accept vote per resolved question and a helpful vote on every second question;
- the routing DMs of the past: two per question (its first two answerers, sent);
- N/50 lessons with their topic's tags, DECLARED declared topics (Zipf over the tags).

Rows are made in chunks of CHUNK questions and written with COPY (PostgreSQL, harness.copy_rows; triggers
and foreign-key checks off, then migration 0002's own backfill builds the search documents) or executemany in
one transaction (SQLite: tags and answers first, then the questions, whose insert triggers of migration 0002
index them). Seeded: the same arguments give the same rows.
"""

from __future__ import annotations

import importlib.util
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import create_engine, text

from bench.harness import ROOT, Corpus, copy_rows
from bot.playground.emulator.workspace import TEAM_ID  # the workspace the Slack emulator plays
from models.session import normalize_url

PEOPLE = 5_000
CHANNELS = [f"C{n:03d}" for n in range(50)]
PRIVATE_EVERY = 25  # C000, C025: private
ZONES = ("Europe/Berlin", "Europe/London", "UTC", "Europe/Paris", "Asia/Kolkata", "America/New_York")
SPAN = timedelta(weeks=104)
TOPIC_REGULARS = 8  # people who answer most questions of a topic
REGULAR_SHARE = 0.7  # answers by a regular of the question's topic
RESOLVED_SHARE = 0.65
DECLARED = 3_000
CHUNK = 20_000

QUESTION_COLUMNS = (
    "id",
    "team_id",
    "channel_id",
    "channel_private",
    "asker_id",
    "text",
    "status",
    "message_ts",
    "request_key",
    "created_at",
    "resolved_at",
    "accepted_answer_id",
    "escalation_level",
    "post_attempts",
)
ANSWER_COLUMNS = ("id", "team_id", "question_id", "channel_id", "ts", "user_id", "text", "created_at")
TAG_COLUMNS = ("question_id", "tag", "team_id", "position")
VOTE_COLUMNS = (
    "team_id",
    "channel_id",
    "message_ts",
    "voter_id",
    "reaction",
    "kind",
    "author_id",
    "answer_id",
    "created_at",
)
ROUTE_COLUMNS = ("team_id", "question_id", "expert_id", "round", "status", "reason", "send_at", "sent_at")
LESSON_COLUMNS = (
    "id",
    "team_id",
    "channel_id",
    "channel_private",
    "author_id",
    "text",
    "message_ts",
    "request_key",
    "created_at",
)
LESSON_TAG_COLUMNS = ("lesson_id", "tag", "team_id", "position")


def person(number: int) -> str:
    return f"U{number % PEOPLE:05d}"


def people() -> list[str]:
    return [person(number) for number in range(PEOPLE)]


def zone_of(user_id: str) -> str:
    return ZONES[int(user_id[1:]) % len(ZONES)]


def is_private(channel_id: str) -> bool:
    return CHANNELS.index(channel_id) % PRIVATE_EVERY == 0


@dataclass
class History:
    """The rows of one history (see the module docstring), made chunk by chunk."""

    questions: int
    now: datetime
    corpus: Corpus

    def __post_init__(self) -> None:
        self.rng = random.Random(11)
        # Each topic's regulars: the people routing should find for its tags.
        self.regulars = [
            [person(self.rng.randrange(PEOPLE)) for _ in range(TOPIC_REGULARS)] for _ in self.corpus.topics
        ]
        self.start = self.now - SPAN

    def created(self, number: int, count: int) -> datetime:
        return self.start + SPAN * (number / max(count, 1))

    def answerer(self, topic: int) -> str:
        if self.rng.random() < REGULAR_SHARE:
            return self.rng.choice(self.regulars[topic])
        return person(self.rng.randrange(PEOPLE))

    def chunk(self, first: int, last: int) -> dict[str, list[tuple[Any, ...]]]:
        """The rows of questions first..last-1 (ids first+1..last) and of everything hanging off them."""
        rows: dict[str, list[tuple[Any, ...]]] = {
            "questions": [],
            "answers": [],
            "question_tags": [],
            "votes": [],
            "route_requests": [],
        }
        for number in range(first, last):
            question = self.corpus.question(number)
            question_id = number + 1
            at = self.created(number, self.questions)
            channel = CHANNELS[self.rng.randrange(len(CHANNELS))]
            asker = person(self.rng.randrange(PEOPLE))
            resolved = self.rng.random() < RESOLVED_SHARE
            answerers = [self.answerer(question.topic) for _ in range(3)]
            for j, user_id in enumerate(answerers):
                answer_text = question.answer if j == 0 else self.corpus.sentence(10, question.topic, topical=0.3)
                rows["answers"].append(
                    (
                        3 * number + j + 1,
                        TEAM_ID,
                        question_id,
                        channel,
                        f"{at.timestamp() + 600 * (j + 1):.6f}",
                        user_id,
                        answer_text,
                        at + timedelta(minutes=10 * (j + 1)),
                    )
                )
            rows["question_tags"].extend(
                (question_id, tag, TEAM_ID, position) for position, tag in enumerate(question.tags)
            )
            rows["questions"].append(
                (
                    question_id,
                    TEAM_ID,
                    channel,
                    is_private(channel),
                    asker,
                    question.text,
                    "resolved" if resolved else "open",
                    f"{at.timestamp():.6f}",
                    f"history-{number}",
                    at,
                    at + timedelta(hours=2) if resolved else None,
                    3 * number + 1 if resolved else None,
                    3,  # routing is done with them (bumped): no step is due
                    1,
                )
            )
            if resolved:
                rows["votes"].append(
                    (
                        TEAM_ID,
                        channel,
                        f"{at.timestamp() + 600:.6f}",
                        asker,
                        "white_check_mark",
                        "accept",
                        answerers[0],
                        3 * number + 1,
                        at + timedelta(hours=2),
                    )
                )
            if number % 2 == 0:
                voter = person(self.rng.randrange(PEOPLE))
                rows["votes"].append(
                    (
                        TEAM_ID,
                        channel,
                        f"{at.timestamp() + 1200:.6f}",
                        voter,
                        "+1",
                        "helpful",
                        answerers[1],
                        3 * number + 2,
                        at + timedelta(hours=3),
                    )
                )
            for expert in dict.fromkeys(answerers[:2]):
                if expert != asker:
                    sent = at + timedelta(minutes=5)
                    rows["route_requests"].append((TEAM_ID, question_id, expert, 1, "sent", "history", sent, sent))
        return rows

    def lessons(self) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
        count = max(self.questions // 50, 1)
        lessons, tags = [], []
        for number in range(count):
            topic = self.rng.randrange(len(self.corpus.topics))
            channel = CHANNELS[number % len(CHANNELS)]
            at = self.created(number, count)
            lessons.append(
                (
                    number + 1,
                    TEAM_ID,
                    channel,
                    is_private(channel),
                    self.rng.choice(self.regulars[topic]),
                    self.corpus.sentence(self.rng.randint(12, 30), topic).capitalize() + ".",
                    f"{at.timestamp() + 0.5:.6f}",
                    f"lesson-{number}",
                    at,
                )
            )
            tags.extend(
                (number + 1, tag, TEAM_ID, position) for position, tag in enumerate(self.corpus.topics[topic][1])
            )
        return lessons, tags

    def declared(self) -> list[tuple[Any, ...]]:
        pairs: dict[tuple[str, str], None] = {}
        while len(pairs) < DECLARED:
            topic = self.rng.randrange(len(self.corpus.topics))
            who = (
                self.rng.choice(self.regulars[topic]) if self.rng.random() < 0.5 else person(self.rng.randrange(PEOPLE))
            )
            pairs[(who, self.rng.choice(self.corpus.topics[topic][1]))] = None
        return [(TEAM_ID, user_id, tag, self.start + SPAN * (n / DECLARED)) for n, (user_id, tag) in enumerate(pairs)]


# --- writing ------------------------------------------------------------------------------------------------


class Writer:
    """Rows into one database: COPY on PostgreSQL (triggers and foreign-key checks off), executemany in one
    transaction on SQLite (foreign-key checks off; migration 0002's triggers index what goes in)."""

    def __init__(self, url: str) -> None:
        url = normalize_url(url)
        self.dialect = "sqlite" if url.startswith("sqlite") else "postgresql"
        if self.dialect == "postgresql":
            replica = {"options": "-c session_replication_role=replica"}
            self.engine = create_engine(url, connect_args=replica)
        else:
            self.engine = create_engine(url)
            self.raw = self.engine.raw_connection()
            self.db = self.raw.driver_connection
            self.db.execute("PRAGMA foreign_keys=OFF")
            self.db.execute("BEGIN")

    def write(self, table: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
        if self.dialect == "postgresql":
            copy_rows(self.engine, table, columns, rows)
            return
        marks = ", ".join("?" * len(columns))
        self.db.executemany(f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})", map(_sqlite_row, rows))

    def finish(self) -> None:
        if self.dialect == "sqlite":
            self.db.execute("COMMIT")
            self.db.execute("PRAGMA foreign_keys=ON")
            self.raw.close()
        self.engine.dispose()


def _sqlite_value(value: Any) -> Any:
    """Naive UTC text, as SQLAlchemy's DateTime keeps it on SQLite."""
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f") if isinstance(value, datetime) else value


def _sqlite_row(row: Sequence[Any]) -> tuple[Any, ...]:
    return tuple(map(_sqlite_value, row))


def load_history(url: str, questions: int, now: datetime, corpus: Corpus | None = None) -> History:
    """Fill a migrated, empty store at `url` with `questions` questions of history ending at `now`."""
    history = History(questions, now, corpus or Corpus(seed=7))
    writer = Writer(url)
    try:
        writer.write(
            "workspaces",
            ("team_id", "name", "timezone", "active", "created_at"),
            [(TEAM_ID, "History", "UTC", True, history.start)],
        )
        fetched = now - timedelta(hours=1)
        writer.write(
            "people",
            (
                "team_id",
                "user_id",
                "real_name",
                "tz",
                "is_bot",
                "deleted",
                "is_admin",
                "notify_mode",
                "profile_fetched_at",
            ),
            (
                (TEAM_ID, user_id, f"Person {user_id}", zone_of(user_id), False, False, False, "immediate", fetched)
                for user_id in people()
            ),
        )
        for first in range(0, questions, CHUNK):
            rows = history.chunk(first, min(first + CHUNK, questions))
            # SQLite indexes a question when it is inserted: its tags and accepted answer go in first.
            writer.write("question_tags", TAG_COLUMNS, rows["question_tags"])
            writer.write("answers", ANSWER_COLUMNS, rows["answers"])
            writer.write("questions", QUESTION_COLUMNS, rows["questions"])
            writer.write("votes", VOTE_COLUMNS, rows["votes"])
            writer.write("route_requests", ROUTE_COLUMNS, rows["route_requests"])
        lessons, lesson_tags = history.lessons()
        writer.write("lesson_tags", LESSON_TAG_COLUMNS, lesson_tags)
        writer.write("lessons", LESSON_COLUMNS, lessons)
        writer.write("expertise", ("team_id", "user_id", "tag", "declared_at"), history.declared())
    finally:
        writer.finish()
    if writer.dialect == "postgresql":
        _index_and_number_postgresql(url)
    return history


def _index_and_number_postgresql(url: str) -> None:
    """What the triggers left out of the COPY: the search documents (migration 0002's backfill statements) and
    the id sequences past the ids written."""
    path = ROOT / "migrations" / "versions" / "0002_search_index.py"
    spec = importlib.util.spec_from_file_location("search_index_migration", path)
    assert spec is not None and spec.loader is not None
    search_index = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(search_index)
    engine = create_engine(normalize_url(url))
    try:
        with engine.begin() as conn:
            for template in (search_index._QUESTION_DOCUMENT, search_index._LESSON_DOCUMENT):
                document = template.format(tag_agg=search_index._AGG["postgresql"], where="1 = 1")
                conn.execute(text(f"INSERT INTO search_documents {search_index._COLUMNS} {document}"))
            for table in ("questions", "answers", "lessons"):
                conn.execute(
                    text(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))")
                )
    finally:
        engine.dispose()
