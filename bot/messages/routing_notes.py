"""What the asker is told about routing their question: who was asked and who will be (and roughly when), or
why nobody could be (no tags, a knowledge gap, the go-to people busy or outside a private channel)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, tzinfo

from bot.messages.blocks import mention
from bot.text import format_tags


def knowledge_gap_text(tags: list[str] | tuple[str, ...]) -> str:
    """What the asker hears when nobody has declared a topic of their question."""
    listed = format_tags(tags)
    first = tags[0] if tags else "topic"
    return (
        f":seedling: Nobody has declared {listed} yet, so there is no go-to person to ask. "
        f"Try pinging a channel where people know it, or ask someone who does to run `/teach #{first}`."
    )


def asker_alone_text(tags: list[str] | tuple[str, ...]) -> str:
    """What the asker hears when they are the only one who declared (or answered on) a topic of their question."""
    first = tags[0] if tags else "topic"
    return (
        f":seedling: You're the only go-to person for {format_tags(tags)} so far, so there's nobody else I can ask. "
        f"Once you've worked it out, `/teach #{first} <what you found>` shares it with the next person who "
        f"wonders; and if a colleague knows it too, ask them to run `/teach #{first}`."
    )


def asker_alone_here_text(tags: list[str] | tuple[str, ...], retry_hours: int) -> str:
    """What the asker hears in a private channel when the others who know a topic are not members of it."""
    return (
        f":lock: You're the only go-to person for {format_tags(tags)} in this private channel: the others who "
        "know it aren't members, so they can't see your question and I haven't asked them. Invite one of them, "
        f"and I'll ask them when I look again in {retry_hours} h if nobody has answered by then."
    )


def experts_busy_text(tags: list[str] | tuple[str, ...], retry_hours: int, private_channel: bool = False) -> str:
    """What the asker hears when the topic's people are paused, away, at their daily limit (or, for a private
    channel, not in it)."""
    why = "paused or have had enough questions today"
    if private_channel:
        why = "paused, not in this channel, or have had enough questions today"
    return (
        f":hourglass: The go-to people for {format_tags(tags)} are {why}, so I haven't pinged anyone yet. "
        f"I'll try again in {retry_hours} h if nobody has answered by then."
    )


SOON_HOURS = 12  # further away than this, a time is said as a day and a part of it ("on Monday morning")


def roughly_when(now: datetime, moment: datetime, zone: tzinfo) -> str:
    """When `moment` comes, from `now`, as a person would say it: "now", "in about 40 minutes", "in about
    9 hours", then "tomorrow morning" or "on Monday morning" in `zone` (the reader's time zone)."""
    seconds = (moment - now).total_seconds()
    if seconds < 60:
        return "now"
    minutes = seconds / 60
    if minutes < 8:
        return "in a few minutes"
    if minutes < 55:
        return f"in about {int(minutes / 5 + 0.5) * 5} minutes"
    hours = int(minutes / 60 + 0.5)
    if hours < SOON_HOURS:
        return "in about an hour" if hours == 1 else f"in about {hours} hours"
    local, today = moment.astimezone(zone), now.astimezone(zone).date()
    days = (local.date() - today).days
    part = _part_of_day(local.hour)
    if days == 0:
        return "tonight" if part == "night" else f"this {part}"
    if days == 1:
        return f"tomorrow {part}"
    if days < 7:
        return f"on {local:%A} {part}"
    return f"on {local:%A} {local.day} {local:%B}"


def _part_of_day(hour: int) -> str:
    if hour < 5:
        return "early morning"
    if hour < 12:
        return "morning"
    if hour < 17:
        return "afternoon"
    if hour < 21:
        return "evening"
    return "night"


def people_list(user_ids: Sequence[str]) -> str:
    """ "<@A>", "<@A> and <@B>", "<@A>, <@B> and <@C>"."""
    names = [mention(user_id) for user_id in user_ids]
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def routing_plan_text(asked_now: Sequence[str], later: Sequence[tuple[str, str]]) -> str | None:
    """Who was asked about the asker's question now, and who will be and roughly when (`later`: each
    person with `roughly_when` their DM goes out, the start of their working day). None: nobody."""
    if not asked_now and not later:
        return None
    if not later:
        knows = "know" if len(asked_now) > 1 else "knows"
        return f":mag: I've asked {people_list(asked_now)}, who {knows} your topics."
    by_when: dict[str, list[str]] = {}
    for user_id, when in later:
        by_when.setdefault(when, []).append(user_id)
    clauses: list[str] = []
    for when, users in by_when.items():
        verb = "" if clauses else (" start their day" if len(users) > 1 else " starts their day")
        clauses.append(f"{people_list(users)}{verb} {when}")
    waiting = clauses[0] if len(clauses) == 1 else ", ".join(clauses[:-1]) + " and " + clauses[-1]
    then = "I'll ask them then" if len(by_when) == 1 else "I'll ask each of them then"
    if asked_now:
        return f":mag: I've asked {people_list(asked_now)} now. {waiting}. {then}."
    return f":crescent_moon: Nobody is pinged yet: {waiting}. {then}."


NO_TAGS_NOTE = (
    ":mag: Your question has no tags, so I can't tell who knows about it and haven't asked anyone. People in "
    "the channel can still answer in its thread; next time, a tag or two like `#postgres` brings it to them."
)
NOBODY_ASKED_NOTE = ":mag: I looked for people who know your topics, and nobody could be asked so far."
