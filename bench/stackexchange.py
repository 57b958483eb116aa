"""Load a Stack Exchange data dump folder (Posts.xml, Users.xml, PostLinks.xml) into typed records.

Works with any site's dump: the XML is streamed with ``iterparse`` so large files stay cheap, tags are
read in both dump formats (``<plutus><wallet>`` and the newer ``|plutus|wallet|``), post bodies are
turned from HTML into plain text, and every timestamp is an aware UTC datetime.

Only Posts.xml is required; a folder without Users.xml or PostLinks.xml loads with those lists empty,
so partial dumps still work for benchmarks that need only the posts.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from html.parser import HTMLParser
from pathlib import Path

QUESTION_POST_TYPE = 1
ANSWER_POST_TYPE = 2
LINK_TYPE_LINKED = 1
LINK_TYPE_DUPLICATE = 3


@dataclass(frozen=True, slots=True)
class Question:
    id: int
    title: str
    body: str  # plain text, HTML removed
    tags: tuple[str, ...]
    created: datetime
    owner_id: int | None  # None when the account was deleted
    accepted_answer_id: int | None
    score: int


@dataclass(frozen=True, slots=True)
class Answer:
    id: int
    parent_id: int
    owner_id: int | None
    created: datetime
    score: int
    body: str


@dataclass(frozen=True, slots=True)
class User:
    id: int
    display_name: str
    reputation: int
    created: datetime


@dataclass(frozen=True, slots=True)
class PostLink:
    post_id: int
    related_post_id: int
    link_type: int  # LINK_TYPE_LINKED or LINK_TYPE_DUPLICATE

    @property
    def is_duplicate(self) -> bool:
        return self.link_type == LINK_TYPE_DUPLICATE


@dataclass(frozen=True, slots=True)
class Site:
    """Everything loaded from one dump folder."""

    questions: tuple[Question, ...]
    answers: tuple[Answer, ...]
    users: tuple[User, ...]
    links: tuple[PostLink, ...]


def load_site(folder: str | Path) -> Site:
    """Load a dump folder. Raises FileNotFoundError naming Posts.xml when it is missing."""
    root = Path(folder)
    posts_file = root / "Posts.xml"
    if not posts_file.is_file():
        raise FileNotFoundError(f"{posts_file} not found: pass the folder of an unpacked Stack Exchange dump")
    questions, answers = load_posts(posts_file)
    users_file, links_file = root / "Users.xml", root / "PostLinks.xml"
    users = load_users(users_file) if users_file.is_file() else []
    links = load_links(links_file) if links_file.is_file() else []
    return Site(tuple(questions), tuple(answers), tuple(users), tuple(links))


def load_posts(path: str | Path) -> tuple[list[Question], list[Answer]]:
    """Questions and answers from Posts.xml, in file order; other post types (wikis, ...) are skipped."""
    questions: list[Question] = []
    answers: list[Answer] = []
    for row in iter_rows(path):
        post_type = _int(row.get("PostTypeId"))
        if post_type == QUESTION_POST_TYPE:
            questions.append(_question(row))
        elif post_type == ANSWER_POST_TYPE and row.get("ParentId"):
            answers.append(_answer(row))
    return questions, answers


def load_users(path: str | Path) -> list[User]:
    return [
        User(
            id=int(row["Id"]),
            display_name=row.get("DisplayName", ""),
            reputation=_int(row.get("Reputation")) or 0,
            created=parse_timestamp(row["CreationDate"]),
        )
        for row in iter_rows(path)
    ]


def load_links(path: str | Path) -> list[PostLink]:
    return [
        PostLink(
            post_id=int(row["PostId"]),
            related_post_id=int(row["RelatedPostId"]),
            link_type=int(row["LinkTypeId"]),
        )
        for row in iter_rows(path)
    ]


def iter_rows(path: str | Path) -> Iterator[dict[str, str]]:
    """Yield the attributes of each <row> element, freeing parsed elements as it goes."""
    context = ET.iterparse(path, events=("start", "end"))
    _, root = next(context)
    for event, element in context:
        if event == "end" and element.tag == "row":
            yield dict(element.attrib)
            # Dropping processed rows keeps memory flat on multi-gigabyte dumps.
            root.clear()


def parse_tags(raw: str | None) -> tuple[str, ...]:
    """Tags from either dump format: ``<a><b>`` (older) or ``|a|b|`` (newer)."""
    if not raw:
        return ()
    if raw.startswith("|"):
        return tuple(tag for tag in raw.split("|") if tag)
    return tuple(_ANGLE_TAG.findall(raw))


def parse_timestamp(raw: str) -> datetime:
    """Dump timestamps are UTC without an offset, e.g. ``2021-04-27T15:06:44.553``."""
    moment = datetime.fromisoformat(raw)
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def html_to_text(html: str) -> str:
    """Plain text of a post body: tags removed, entities decoded, whitespace collapsed."""
    parser = _TextExtractor()
    parser.feed(html)
    parser.close()
    return " ".join("".join(parser.parts).split())


_ANGLE_TAG = re.compile(r"<([^<>]+)>")


class _TextExtractor(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        # A space per tag keeps "<p>a</p><p>b</p>" from gluing into "ab".
        self.parts.append(" ")

    def handle_endtag(self, tag: str) -> None:
        self.parts.append(" ")

    def handle_data(self, data: str) -> None:
        self.parts.append(data)


def _question(row: dict[str, str]) -> Question:
    return Question(
        id=int(row["Id"]),
        title=row.get("Title", ""),
        body=html_to_text(row.get("Body", "")),
        tags=parse_tags(row.get("Tags")),
        created=parse_timestamp(row["CreationDate"]),
        owner_id=_int(row.get("OwnerUserId")),
        accepted_answer_id=_int(row.get("AcceptedAnswerId")),
        score=_int(row.get("Score")) or 0,
    )


def _answer(row: dict[str, str]) -> Answer:
    return Answer(
        id=int(row["Id"]),
        parent_id=int(row["ParentId"]),
        owner_id=_int(row.get("OwnerUserId")),
        created=parse_timestamp(row["CreationDate"]),
        score=_int(row.get("Score")) or 0,
        body=html_to_text(row.get("Body", "")),
    )


def _int(raw: str | None) -> int | None:
    return int(raw) if raw not in (None, "") else None
