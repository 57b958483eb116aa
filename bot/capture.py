"""Capturing what is already in Slack (issue 20, section 1): the two message shortcuts' decisions.

- "Ask PeerLearn about this" becomes an ordinary question (the /ask form's path: bot/qa.create_question, then
  bot/posting.py), with a `QuestionSource` so that its post credits the message's author and links to it.
- "Save as knowledge" stores a thread (or a lone message) as a lesson: the lesson's channel is the thread's,
  private when the channel is (the same privacy rule as questions: search, suggestions and digests show it
  only from that channel), its `message_ts` is the thread's first message (its link, and what makes it
  searchable: migration 0002's triggers index it and the vector filler embeds it like any lesson). Saving the
  same thread again updates its lesson. Its author is whoever wrote the first message kept; the others who
  wrote kept messages are credited in its text.

Functions take an open session; pure helpers take plain values. No Slack calls here.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.messages.questions import QuestionAbout
from bot.text import clean, from_slack, truncate
from models.base import insert_if_new, insert_once
from models.capture import QuestionSource, SavedMessage, SavedThread, question_source, saved_thread
from models.lesson import Lesson, LessonTag

MAX_TITLE_CHARS = 150
MAX_LESSON_CHARS = 12000  # a saved thread's text (what search and digests quote from; they cut it shorter)
MAX_KEPT_REPLIES = 10  # replies offered in the form (a checkboxes element takes at most 10 options)


@dataclass(frozen=True)
class ThreadMessage:
    """One message of a thread as the form offers it: its ts, who wrote it (None: a bot), its text as written."""

    ts: str
    user_id: str | None
    text: str


def thread_ts_of(message: Mapping[str, Any]) -> str:
    """The thread a message belongs to (its first message's ts), or the message's own ts."""
    return str(message.get("thread_ts") or message["ts"])


def as_written(message: Mapping[str, Any]) -> ThreadMessage:
    """A message from a shortcut's payload or conversations.replies, its text in the stored form (Slack's escaped
    mrkdwn read back: `&lt;` is `<`, mentions kept)."""
    return ThreadMessage(str(message["ts"]), message.get("user") or None, from_slack(str(message.get("text") or "")))


def title_from(text: str) -> str:
    """A first guess at a lesson's title: the first line of the thread's first message."""
    first = clean(text).splitlines()[0] if clean(text) else ""
    return truncate(first, MAX_TITLE_CHARS)


def credited(kept: Sequence[ThreadMessage]) -> list[str]:
    """The people who wrote the kept messages, in the order they first wrote (bots are not credited)."""
    return list(dict.fromkeys(m.user_id for m in kept if m.user_id))


def lesson_text(title: str, kept: Sequence[ThreadMessage]) -> str:
    """A saved thread's lesson text: its title, the kept messages, and who else wrote them."""
    parts = [title, *(m.text for m in kept if clean(m.text))]
    others = credited(kept)[1:]
    if others:
        parts.append("With " + ", ".join(f"<@{user}>" for user in others) + ".")
    return truncate("\n\n".join(parts), MAX_LESSON_CHARS)


def save_thread(
    session: Session,
    *,
    team_id: str,
    channel_id: str,
    thread_ts: str,
    channel_private: bool,
    title: str,
    tags: Sequence[str],
    kept: Sequence[ThreadMessage],
    saved_by: str,
    permalink: str | None,
    view_id: str,
    now: datetime,
) -> Saved:
    """Store the thread as a lesson, or update the lesson it already is. `kept` is never empty (the thread's
    first message at least). The same form submission again (Slack retried it) changes nothing."""
    authors = credited(kept)
    author = authors[0] if authors else saved_by
    text = lesson_text(title, kept)
    existing = saved_thread(session, team_id, channel_id, thread_ts)
    created = existing is None
    if existing is None:
        lesson = Lesson(
            team_id=team_id,
            channel_id=channel_id,
            channel_private=channel_private,
            author_id=author,
            text=text,
            message_ts=thread_ts,
            request_key=f"saved:{channel_id}:{thread_ts}",
            created_at=now,
            tags=[LessonTag(tag=tag, team_id=team_id, position=i) for i, tag in enumerate(tags)],
        )
        thread = SavedThread(
            team_id=team_id,
            channel_id=channel_id,
            thread_ts=thread_ts,
            lesson=lesson,
            title=title,
            permalink=permalink,
            saved_by=saved_by,
            view_id=view_id,
            created_at=now,
            updated_at=now,
        )
        if not insert_once(session, thread):  # saved meanwhile (a second replica, a resubmission)
            again = saved_thread(session, team_id, channel_id, thread_ts)
            if again is None:
                raise AlreadyALesson(channel_id, thread_ts)
            existing, created = again, False
        else:
            existing = thread
    if not created and existing.view_id == view_id:
        return Saved(existing, created=False, repeated=True)
    if not created:
        lesson = existing.lesson
        lesson.text, lesson.author_id, lesson.channel_private = text, author, channel_private
        lesson.tags = [LessonTag(tag=tag, team_id=team_id, position=i) for i, tag in enumerate(tags)]
        existing.title, existing.saved_by, existing.view_id, existing.updated_at = title, saved_by, view_id, now
        existing.permalink = permalink or existing.permalink
        existing.messages.clear()
        session.flush()
    existing.messages.extend(
        SavedMessage(ts=m.ts, team_id=team_id, user_id=m.user_id or "", text=m.text, position=i)
        for i, m in enumerate(kept)
    )
    session.flush()
    return Saved(existing, created=created, repeated=False)


@dataclass(frozen=True)
class Saved:
    thread: SavedThread
    created: bool  # a new lesson (else the thread's lesson, updated)
    repeated: bool  # the same form submission as the last save: nothing changed


class AlreadyALesson(Exception):
    """The message is a lesson PeerLearn posted (`/teach`), not a thread to save."""


def record_question_source(session: Session, question_id: int, team_id: str, source: Mapping[str, Any]) -> None:
    """The message an "Ask PeerLearn about this" question is about (from the form's private_metadata); once."""
    insert_if_new(
        session,
        QuestionSource,
        question_id=question_id,
        team_id=team_id,
        channel_id=str(source.get("channel_id") or ""),
        message_ts=str(source.get("ts") or ""),
        author_id=source.get("author_id") or None,
        permalink=source.get("permalink") or None,
    )


def about_message(session: Session, question_id: int) -> QuestionAbout | None:
    """What a question's post says of the message it was asked about, if it was asked about one."""
    source = question_source(session, question_id)
    return None if source is None else QuestionAbout(source.author_id, source.permalink)


def forget_contributor(session: Session, team_id: str, user_id: str) -> int:
    """forget-user: drop the person's kept messages from every saved thread and rewrite each lesson's text and
    author from what is left (a lesson with no message left keeps no text of theirs: the caller's lesson policy
    then applies to it). Returns the messages removed."""
    rows = session.scalars(
        select(SavedMessage).where(SavedMessage.team_id == team_id, SavedMessage.user_id == user_id)
    ).all()
    threads = {row.saved_thread_id for row in rows}
    for row in rows:
        session.delete(row)
    session.flush()
    for thread in session.scalars(select(SavedThread).where(SavedThread.id.in_(threads))).all():
        session.refresh(thread)
        lesson = session.get(Lesson, thread.lesson_id)
        assert lesson is not None
        left = [ThreadMessage(m.ts, m.user_id or None, m.text) for m in thread.messages]
        if left:
            authors = credited(left)
            lesson.text = lesson_text(thread.title, left)
            lesson.author_id = authors[0] if authors else thread.saved_by
    return len(rows)


def kept_messages(thread: Iterable[ThreadMessage], kept_ts: Iterable[str]) -> list[ThreadMessage]:
    """The thread's first message and the replies the person kept, in the thread's order."""
    wanted = set(kept_ts)
    messages = list(thread)
    return [m for i, m in enumerate(messages) if i == 0 or m.ts in wanted]
