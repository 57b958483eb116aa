"""What /teach changes: topics declared, removed, listed or replaced (the form), pauses, and a lesson stored,
then posted in its channel once. The listeners are in handlers/teach.py; the words in bot/messages/teach.py."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime

from slack_sdk import WebClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.experts import TeachIntent, create_lesson, pause, resume
from bot.messages.errors import explain, quote_back
from bot.messages.teach import (
    NOT_PAUSED,
    RESUMED,
    lesson_message,
    paused_text,
    too_many_topics_text,
    topics_added_text,
    topics_removed_text,
    topics_text,
)
from bot.services import Services
from bot.slack_errors import SLACK_FAILURES, error_code
from bot.slack_posts import post_in_channel
from bot.text import MAX_TOPICS
from models.expert import declare_topics, declared_topics, ensure_person, remove_topics
from models.lesson import Lesson

logger = logging.getLogger("peerlearn.teach")


def apply_intent(
    session: Session,
    intent: TeachIntent,
    *,
    team_id: str,
    user_id: str,
    channel_id: str,
    request_key: str,
    now: datetime,
) -> str:
    """Store what a /teach command changes; returns the reply (empty for a lesson: it is posted next, by
    `publish_lesson`, and that speaks)."""
    if intent.kind == "declare":
        total = len({*declared_topics(session, team_id, user_id), *intent.tags})
        if total > MAX_TOPICS:
            return too_many_topics_text(total)
        added = declare_topics(session, team_id, user_id, intent.tags, now)
        return topics_added_text(added, declared_topics(session, team_id, user_id))
    if intent.kind == "remove":
        removed = remove_topics(session, team_id, user_id, intent.tags)
        return topics_removed_text(list(intent.tags), removed, declared_topics(session, team_id, user_id))
    if intent.kind == "list":
        person = ensure_person(session, team_id, user_id)
        paused = person.paused_until.strftime("%Y-%m-%d %H:%M UTC") if person.paused_until else None
        if person.paused_until and person.paused_until <= now:
            paused = None
        return topics_text(declared_topics(session, team_id, user_id), paused)
    if intent.kind == "pause":
        return paused_text(pause(session, team_id, user_id, intent.pause, now))
    if intent.kind == "resume":
        return RESUMED if resume(session, team_id, user_id) else NOT_PAUSED
    if intent.kind == "lesson":
        create_lesson(
            session,
            team_id=team_id,
            channel_id=channel_id,
            author_id=user_id,
            text=intent.text,
            tags=intent.tags,
            request_key=request_key,
            now=now,
        )
        return ""
    raise ValueError(f"unexpected /teach intent {intent.kind}")


def replace_topics(session: Session, team_id: str, user_id: str, wanted: list[str], now: datetime) -> None:
    """The topics form: the person's topics become exactly `wanted`."""
    current = declared_topics(session, team_id, user_id)
    remove_topics(session, team_id, user_id, [t for t in current if t not in wanted])
    declare_topics(session, team_id, user_id, wanted, now)


def publish_lesson(
    client: WebClient, services: Services, team_id: str, request_key: str, notify: Callable[[str], None]
) -> None:
    """Post the lesson stored under `request_key` in its channel, once; `notify` tells the author why not."""
    with services.store.session() as session:
        lesson = session.scalars(
            select(Lesson).where(Lesson.team_id == team_id, Lesson.request_key == request_key)
        ).one_or_none()
        if lesson is None or lesson.message_ts is not None:
            return
        lesson_id, channel_id, text, tags = lesson.id, lesson.channel_id, lesson.text, lesson.tag_names
        author_id = lesson.author_id
    try:
        ts, private = post_in_channel(client, channel_id, lesson_message(author_id=author_id, text=text, tags=tags))
    except SLACK_FAILURES as exc:
        code = error_code(exc)
        logger.warning("lesson %s not posted in %s: %s", lesson_id, channel_id, code)
        notify(explain(code) + quote_back(text))
        return
    with services.store.session() as session:
        stored = session.get(Lesson, lesson_id)
        if stored is not None:
            stored.message_ts, stored.channel_private = ts, private
    logger.info("lesson %s posted in %s at %s", lesson_id, channel_id, ts)
