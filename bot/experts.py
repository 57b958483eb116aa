"""`/teach`: what a person means by it, and what it changes (topics, pauses, lessons).

Parsing is pure; the store functions take the caller's session.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.config import Settings
from bot.text import (
    MAX_QUESTION_CHARS,
    MAX_TAGS,
    MAX_TOPICS,
    clean,
    has_words,
    normalize_tag,
    parse_tagged_text,
    too_many_tags,
    too_many_topics,
)
from models.base import insert_once
from models.expert import ensure_person
from models.lesson import Lesson, LessonTag

MAX_PAUSE = timedelta(days=365)
DEFAULT_PAUSE = timedelta(days=7)
_DURATION = re.compile(r"^(\d{1,4})\s*(h|hours?|d|days?|w|weeks?)?$", re.IGNORECASE)


class InvalidTeach(ValueError):
    """The `/teach` text can't be understood; the message says what to type instead."""


@dataclass(frozen=True)
class TeachIntent:
    kind: str  # help | form | list | remove | pause | resume | declare | lesson
    tags: tuple[str, ...] = ()
    text: str = ""
    pause: timedelta = field(default=DEFAULT_PAUSE)


def parse_duration(raw: str) -> timedelta:
    """`7d`, `2w`, `12h`, `3` (days) → a timedelta of at most a year."""
    match = _DURATION.match(clean(raw))
    if not match:
        raise InvalidTeach(f"I don't understand the duration `{raw}`. Try `/teach pause 7d`, `2w` or `12h`.")
    amount, unit = int(match.group(1)), (match.group(2) or "d")[0].lower()
    duration = {"h": timedelta(hours=amount), "d": timedelta(days=amount), "w": timedelta(weeks=amount)}[unit]
    if duration <= timedelta(0):
        raise InvalidTeach("A pause needs a positive duration, e.g. `/teach pause 7d`.")
    return min(duration, MAX_PAUSE)


def parse_teach(raw: str, settings: Settings) -> TeachIntent:
    text = clean(raw)
    if not text:
        return TeachIntent("form")
    word, _, rest = text.partition(" ")
    word = word.lower()
    if word in {"help", "?", "-h", "--help"}:
        return TeachIntent("help")
    if word in {"list", "topics"}:
        return TeachIntent("list")
    if word == "resume":
        return TeachIntent("resume")
    if word == "pause":
        return TeachIntent("pause", pause=parse_duration(rest) if rest.strip() else DEFAULT_PAUSE)
    if word in {"remove", "rm", "delete"}:
        tags = tuple(t for t in (normalize_tag(w, settings.tag_aliases) for w in rest.split()) if t)
        if not tags:
            raise InvalidTeach("Name the topics to remove, e.g. `/teach remove #postgres`.")
        return TeachIntent("remove", tags=tags)
    parsed = parse_tagged_text(text, settings.tag_aliases)
    if not parsed.tags:
        raise InvalidTeach(
            "Add at least one #tag: `/teach #postgres` makes you a go-to person for it, and "
            "`/teach #git Use git bisect to …` shares a lesson. `/teach help` explains more."
        )
    if not parsed.text:
        if len(parsed.tags) > MAX_TOPICS:
            raise InvalidTeach(too_many_topics(len(parsed.tags)))
        return TeachIntent("declare", tags=parsed.tags)
    if len(parsed.tags) > MAX_TAGS:
        raise InvalidTeach(too_many_tags(len(parsed.tags), "a lesson"))
    if not has_words(parsed.text):
        raise InvalidTeach("A lesson needs a few words, not only emoji or punctuation.")
    if len(parsed.text) > MAX_QUESTION_CHARS:
        raise InvalidTeach(
            f"That lesson is {len(parsed.text):,} characters long; lessons stay under {MAX_QUESTION_CHARS:,}. "
            "Share the gist, and a link to the details."
        )
    return TeachIntent("lesson", tags=parsed.tags, text=parsed.text)


def pause(session: Session, team_id: str, user_id: str, duration: timedelta, now: datetime) -> datetime:
    person = ensure_person(session, team_id, user_id)
    person.paused_until = now + duration
    return person.paused_until


def resume(session: Session, team_id: str, user_id: str) -> bool:
    """True when the person was paused."""
    person = ensure_person(session, team_id, user_id)
    was_paused = person.paused_until is not None
    person.paused_until = None
    return was_paused


def create_lesson(
    session: Session,
    *,
    team_id: str,
    channel_id: str,
    author_id: str,
    text: str,
    tags: tuple[str, ...],
    request_key: str,
    now: datetime,
) -> Lesson:
    """Store the lesson before it is posted; a repeated request returns the first one."""
    lesson = Lesson(
        team_id=team_id,
        channel_id=channel_id,
        author_id=author_id,
        text=text,
        request_key=request_key,
        created_at=now,
        tags=[LessonTag(tag=tag, team_id=team_id, position=i) for i, tag in enumerate(tags)],
    )
    if insert_once(session, lesson):
        return lesson
    return session.scalars(select(Lesson).where(Lesson.team_id == team_id, Lesson.request_key == request_key)).one()
