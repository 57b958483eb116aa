"""The DMs that ask an expert to look at a question, their "I'll take it" / "Not me" buttons (the App Home shows
the same buttons), and what the question's thread hears while it waits and once someone takes it."""

from __future__ import annotations

from dataclasses import dataclass

from bot.messages.blocks import (
    FALLBACK_LIMIT,
    Block,
    Message,
    actions,
    button,
    context,
    divider,
    header,
    mention,
    quote,
    section,
)
from bot.text import escape_mrkdwn, format_tags, truncate

# Routing DMs and the App Home share these: one handler serves a button wherever it is shown.
ACTION_TAKE_QUESTION = "route_take"  # "I'll take it" (value: question id)
ACTION_DECLINE_QUESTION = "route_decline"  # "Not me" (value: question id)

ROUTE_OPEN = "open"  # the expert has not answered the DM yet: it shows the buttons
ROUTE_TAKEN_NOTE = ":raised_hands: You're on it, thanks! Answer in the question's thread."
ROUTE_DECLINED_NOTE = ":ok_hand: Got it, I'll ask someone else."
ROUTE_CLOSED_NOTE = ":white_check_mark: This question was resolved meanwhile; nothing to do."
OWN_QUESTION_NOTE = "That's your own question: the people who know its topics get asked."
UNREADABLE_NOTE = (
    "That question is in a private channel you're not a member of, so it can't be yours to take. "
    "If you can help, ask someone in that channel to add you first."
)


@dataclass(frozen=True)
class RoutedQuestion:
    """One question in a routing DM, and where the expert stands with it."""

    question_id: int
    asker_id: str
    channel_id: str
    text: str
    tags: tuple[str, ...] = ()
    reason: str = ""  # why this expert was picked (bot.routing's reason)
    link: str | None = None  # chat.getPermalink of the question
    state: str = ROUTE_OPEN  # ROUTE_OPEN, or one of the *_NOTE texts once they answered or it closed
    resolution: str | None = None  # resolution_text once the question is resolved: it replaces the state


def _routed_blocks(item: RoutedQuestion) -> list[Block]:
    content: list[Block] = [
        section(f":wave: {mention(item.asker_id)} asked in <#{item.channel_id}>:\n{quote(item.text)}")
    ]
    notes = [format_tags(item.tags)] if item.tags else []
    if item.reason:
        notes.append("Why you: " + truncate(escape_mrkdwn(item.reason), 500))
    if notes:
        content.append(context(*notes))
    if item.link:
        after = "" if item.resolution else " and answer in its thread"
        content.append(section(f"<{item.link}|Open the question>{after}."))
    if item.resolution:
        content.append(section(item.resolution))
    elif item.state == ROUTE_OPEN:
        content.append(
            actions(
                button("I'll take it", ACTION_TAKE_QUESTION, str(item.question_id), style="primary"),
                button("Not me", ACTION_DECLINE_QUESTION, str(item.question_id)),
                block_id=f"route_{item.question_id}",
            )
        )
    else:
        content.append(context(item.state))
    return content


def route_dm(items: list[RoutedQuestion] | tuple[RoutedQuestion, ...]) -> Message:
    """The DM asking an expert to look at one question, or a summary of several (the daily summary)."""
    if len(items) == 1:
        item = items[0]
        fallback = f"{mention(item.asker_id)} asked a question you may know the answer to: {escape_mrkdwn(item.text)}"
        return Message(text=truncate(fallback, FALLBACK_LIMIT), blocks=_routed_blocks(item))
    content: list[Block] = [header(f"{len(items)} questions you may know the answer to")]
    for number, item in enumerate(items):
        if number:
            content.append(divider())
        content += _routed_blocks(item)
    return Message(text=f"{len(items)} questions you may know the answer to", blocks=content)


def on_it_message(user_id: str) -> Message:
    """The note in a question's thread when an expert takes it."""
    note = f":raised_hands: {mention(user_id)} is on it"
    return Message(text=note, blocks=[context(note)])


def bump_message(tags: list[str] | tuple[str, ...]) -> Message:
    """A gentle reminder in the thread of a question nobody has answered yet. No mention, no broadcast."""
    about = f" about {format_tags(tags)}" if tags else ""
    text = (
        f":hourglass_flowing_sand: This question is still waiting for an answer. If you know something{about}, "
        "even a partial answer or a pointer in this thread helps."
    )
    return Message(text=truncate(text, FALLBACK_LIMIT), blocks=[section(text)])
