"""What /teach says: a lesson as shared in its channel, and the replies to declaring, removing, listing and
pausing topics."""

from __future__ import annotations

from datetime import datetime

from bot.messages.blocks import FALLBACK_LIMIT, Message, context, mention, section
from bot.text import escape_mrkdwn, format_tags, too_many_topics, truncate

RESUMED = "Welcome back! Questions can reach you again."
NOT_PAUSED = "You weren't paused; nothing changed."


def lesson_message(*, author_id: str, text: str, tags: list[str] | tuple[str, ...]) -> Message:
    body = escape_mrkdwn(text)
    return Message(
        text=truncate(f"Lesson from {mention(author_id)}: {body}", FALLBACK_LIMIT),
        blocks=[
            section(f":bulb: *{mention(author_id)} shares a lesson:*\n{body}"),
            context(*([format_tags(tags)] if tags else []), "Found it useful? React with :+1: or :bulb:"),
        ],
    )


def topics_text(tags: list[str], paused_until: str | None = None) -> str:
    if not tags:
        return "You are not a go-to person for any topic yet. `/teach #postgres #kubernetes` changes that."
    lines = [f"You are a go-to person for {format_tags(tags)}."]
    if paused_until:
        lines.append(f":zzz: Questions are paused until {paused_until}; `/teach resume` to come back sooner.")
    lines.append("`/teach remove #x` drops a topic; `/teach` alone opens a form to edit them.")
    return "\n".join(lines)


def too_many_topics_text(total: int) -> str:
    """The reply when declaring would take the person over the topic cap (nothing is added)."""
    return too_many_topics(total) + " `/teach remove #x` drops one; nothing was added."


def topics_added_text(added: list[str], all_tags: list[str]) -> str:
    news = f"You are now a go-to person for {format_tags(added)}. " if added else "Nothing new there. "
    return news + f"Your topics: {format_tags(all_tags)}. Matching questions will reach you by DM."


def topics_removed_text(asked: list[str], removed: list[str], left: list[str]) -> str:
    if not removed:
        return f"{format_tags(asked)} {'was' if len(asked) == 1 else 'were'} not your topic."
    rest = f"Your topics: {format_tags(left)}." if left else "You have no topics left."
    return f"Removed {format_tags(removed)}. {rest}"


def paused_text(until: datetime) -> str:
    return f":zzz: Paused: no routed questions until {until:%Y-%m-%d %H:%M} UTC. `/teach resume` to come back."
