"""A question as posted in its channel, and how its resolution is said there, in routing DMs and in digests."""

from __future__ import annotations

from dataclasses import dataclass

from bot.messages.blocks import FALLBACK_LIMIT, Block, Message, context, mention, section
from bot.text import escape_mrkdwn, format_tags, truncate


def question_message(
    *,
    asker_id: str,
    text: str,
    tags: list[str] | tuple[str, ...],
    resolved_by: str | None = None,
    answer_link: str | None = None,
    answered_earlier: str | None = None,
    about: QuestionAbout | None = None,
) -> Message:
    """The question as posted in the channel; with `about`, asked about someone's message (credited, linked);
    with `resolved_by`, as updated once an answer is accepted; with `answered_earlier` ("question" or "lesson"),
    once the asker said an earlier one answers it (its link in `answer_link`)."""
    body = escape_mrkdwn(text)
    blocks: list[Block] = []
    if resolution := resolution_text(resolved_by, answer_link, answered_earlier):
        blocks.append(section(resolution))
    heading = f"*{mention(asker_id)} asks:*"
    if about is not None:
        wrote = f"what {mention(about.author_id)} wrote" if about.author_id else "a message"
        link = f" · <{about.link}|original message>" if about.link else ""
        heading = f"*{mention(asker_id)} asks about {wrote}:*{link}"
    blocks += [
        section(f":raising_hand: {heading}\n{body}"),
        context(
            *([format_tags(tags)] if tags else []),
            "Answer in the thread :thread:  ·  the asker marks the best answer with :white_check_mark:",
        ),
    ]
    status = "Resolved question" if resolved_by or answered_earlier else "Question"
    return Message(text=truncate(f"{status} from {mention(asker_id)}: {body}", FALLBACK_LIMIT), blocks=blocks)


@dataclass(frozen=True)
class QuestionAbout:
    """The message a question was asked about ("Ask PeerLearn about this"): its author (None: a bot) and link."""

    author_id: str | None
    link: str | None


def resolution_text(resolved_by: str | None, answer_link: str | None, answered_earlier: str | None) -> str | None:
    """How a question was resolved, as its channel message and its routing DMs say it: an accepted answer (by
    `resolved_by`), or an earlier question or lesson (`answered_earlier`); `answer_link` leads to it."""
    if resolved_by:
        link = f" · <{answer_link}|see the accepted answer>" if answer_link else ""
        return f":white_check_mark: *Resolved* — answer by {mention(resolved_by)}{link}"
    if answered_earlier:
        link = f" · <{answer_link}|see it>" if answer_link else ""
        return f":white_check_mark: *Resolved* — answered by {earlier_item_text(answered_earlier)}{link}"
    return None


def earlier_item_text(kind: str, author_id: str | None = None) -> str:
    """What answered a question the asker said an earlier one answers ("question" or "lesson"), with who wrote
    the earlier question's accepted answer, or the lesson, when `author_id` is given."""
    if kind == "lesson":
        return f"a lesson by {mention(author_id)}" if author_id else "a lesson"
    return f"an earlier question (answer by {mention(author_id)})" if author_id else "an earlier question"


def answered_by_earlier_text(count: int) -> str:
    """The digest's line on the questions the knowledge base answered by itself in the week (count > 0)."""
    questions = "1 question" if count == 1 else f"{count} questions"
    askers = "its asker" if count == 1 else "their askers"
    return (
        f":books: The knowledge base answered {questions} by itself this week: {askers} found the answer in an "
        "earlier question or lesson, and nobody had to be asked."
    )
