"""The earlier answers shown to an asker before anyone is pinged ("This answers it" / "Still need help"), and
what each button's click tells them."""

from __future__ import annotations

from dataclasses import dataclass

from bot.messages.blocks import Block, Message, actions, button, context, mention, quote, section
from bot.text import escape_mrkdwn, truncate

ACTION_SIMILAR_ANSWERS_IT = "similar_answers_it"  # "This answers it" (value: "question id:kind:ref id")
ACTION_SIMILAR_STILL_NEED_HELP = "similar_still_need_help"  # "Still need help" (value: question id)
SNIPPET_LIMIT = 400

RESOLVED_BY_EARLIER_NOTE = ":white_check_mark: Glad that helped! I marked your question resolved; nobody gets pinged."
ALREADY_RESOLVED_NOTE = ":white_check_mark: Your question is resolved already."
ONLY_ASKER_RESOLVES_NOTE = "Only the person who asked can resolve the question."
ONLY_ASKER_ASKS_MORE_NOTE = "Only the person who asked can ask for more help."
RESOLVED_OR_GONE_NOTE = "That question is resolved already, or gone."


@dataclass(frozen=True)
class SimilarItem:
    """An earlier answered question, or a lesson, that may answer a new question."""

    kind: str  # "question" or "lesson" (bot.search.KIND_*)
    ref_id: int
    text: str
    author_id: str  # who asked it, or wrote the lesson
    answer_text: str | None = None
    answer_user_id: str | None = None
    link: str | None = None


def similar_answer_value(question_id: int, item: SimilarItem) -> str:
    return f"{question_id}:{item.kind}:{item.ref_id}"


def similar_suggestions(question_id: int, items: list[SimilarItem], grace_minutes: int) -> Message:
    """The ephemeral that shows the asker earlier answers before anyone is pinged."""
    content: list[Block] = [section(":mag: *Before I ask anyone: these earlier answers look close to your question.*")]
    for item in items:
        link = f"\n<{item.link}|Open it>" if item.link else ""
        if item.kind == "lesson":
            body = f":bulb: *Lesson by {mention(item.author_id)}*\n{quote(item.text, SNIPPET_LIMIT)}{link}"
        else:
            body = f":speech_balloon: *Asked by {mention(item.author_id)}*\n{quote(item.text, SNIPPET_LIMIT)}"
            if item.answer_text is not None and item.answer_user_id:
                answer = truncate(escape_mrkdwn(item.answer_text.strip()), SNIPPET_LIMIT)
                body += f"\n:white_check_mark: *Accepted answer by {mention(item.answer_user_id)}:* {answer}"
            body += link
        content.append(section(body))
        content.append(
            actions(
                button("This answers it", ACTION_SIMILAR_ANSWERS_IT, similar_answer_value(question_id, item)),
                block_id=f"similar_{item.kind}_{item.ref_id}",
            )
        )
    content.append(
        actions(
            button("Still need help", ACTION_SIMILAR_STILL_NEED_HELP, str(question_id), style="primary"),
            block_id="similar_still_need_help",
        )
    )
    minutes = "1 minute" if grace_minutes == 1 else f"{grace_minutes} minutes"
    content.append(
        context(
            "If none of these helps, click *Still need help* and I'll look for people who know your topics; "
            f"otherwise I will in {minutes}. Either way I'll tell you who I ask, and when."
        )
    )
    return Message(text="Earlier answers that look close to your question", blocks=content)
