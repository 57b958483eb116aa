"""Reading `/teach mentor #tag up to N people` and `/ask mentor #tag` (pure: the inbox asks it of every /ask
before any listener runs, bot/asking.py). What they do is in bot/mentoring.py."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from bot.messages.mentoring import OFFER_USAGE, REQUEST_USAGE, capacity_error
from bot.text import normalize_tag

DEFAULT_CAPACITY = 2
MAX_CAPACITY = 10
MAX_REQUEST_WORDS = 4  # `/ask mentor for #postgres please`; more words read as a question

_CAPACITY = re.compile(r"^(?:up\s+to\s+)?(\d{1,3})(?:\s+(?:people|persons|person|mentees?))?$", re.IGNORECASE)


class InvalidMentoring(ValueError):
    """A /teach mentor or /ask mentor that can't be understood; the message says what to type."""


def mentor_command(text: str) -> str | None:
    """The rest of a command whose first word is `mentor`; None for any other command."""
    first, _, rest = text.strip().partition(" ")
    return rest.strip() if first.lower() == "mentor" else None


def ask_mentor_command(text: str) -> str | None:
    """`/ask mentor #tag`'s rest; None for any other /ask, including a question that starts with the word
    (`/ask mentor programmes: who runs them? #hr` is a question: it asks something, or is longer than a request)."""
    rest = mentor_command(text)
    if rest is None or "?" in rest or len(rest.split()) > MAX_REQUEST_WORDS:
        return None
    return rest


@dataclass(frozen=True)
class Offer:
    tags: tuple[str, ...]
    capacity: int


def parse_offer(text: str, aliases: Mapping[str, str]) -> Offer:
    """`#postgres #ops up to 2 people` (the capacity is optional: DEFAULT_CAPACITY)."""
    tags: list[str] = []
    rest: list[str] = []
    for word in text.split():
        tag = normalize_tag(word, aliases) if word.startswith("#") else None
        if tag is None:
            rest.append(word)
        elif tag not in tags:
            tags.append(tag)
    if not tags:
        raise InvalidMentoring(OFFER_USAGE)
    capacity = DEFAULT_CAPACITY
    if rest:
        found = _CAPACITY.match(" ".join(rest))
        if found is None:
            raise InvalidMentoring(OFFER_USAGE)
        capacity = int(found.group(1))
        if not 1 <= capacity <= MAX_CAPACITY:
            raise InvalidMentoring(capacity_error(MAX_CAPACITY))
    return Offer(tuple(tags), capacity)


def parse_request(text: str, aliases: Mapping[str, str]) -> str:
    """`#postgres`: one topic."""
    words = text.split()
    tag = normalize_tag(words[0], aliases) if len(words) == 1 and words[0].startswith("#") else None
    if tag is None:
        raise InvalidMentoring(REQUEST_USAGE)
    return tag


def is_mentor_request(text: str, aliases: Mapping[str, str]) -> bool:
    """A well-formed `/ask mentor #tag` (its ack is empty: the answer comes after it, like a question's)."""
    rest = mentor_command(text)
    if rest is None:
        return False
    try:
        parse_request(rest, aliases)
    except InvalidMentoring:
        return False
    return True
