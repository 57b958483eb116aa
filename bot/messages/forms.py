"""The /ask and /teach forms (modals), their block and action ids, and the errors shown under their fields."""

from __future__ import annotations

from typing import Any

from bot.messages.blocks import Block, context, modal, plain, section
from bot.text import MAX_QUESTION_CHARS, truncate

ASK_MODAL = "ask_modal"
ASK_BLOCK_QUESTION = "question"
ASK_BLOCK_TAGS = "tags"
ASK_BLOCK_CHANNEL = "channel"
ASK_ACTION_INPUT = "value"
TEACH_MODAL = "teach_modal"
TEACH_BLOCK_TOPICS = "topics"

ERROR_CHARS = 150  # a field error is a line under the field
QUESTION_MISSING = "Write your question here."
CHANNEL_MISSING = "Pick a channel for your question."


def ask_modal(channel_id: str | None, question: str = "", private_metadata: str = "", note: str = "") -> Block:
    """The /ask form; `note` (mrkdwn) heads it, e.g. which message "Ask PeerLearn about this" is about."""
    channel_element: Block = {
        "type": "conversations_select",
        "action_id": ASK_ACTION_INPUT,
        "filter": {"include": ["public", "private"], "exclude_bot_users": True},
        "placeholder": plain("Where should the question go?"),
    }
    if channel_id:
        channel_element["initial_conversation"] = channel_id
    question_element: Block = {
        "type": "plain_text_input",
        "action_id": ASK_ACTION_INPUT,
        "multiline": True,
        "max_length": min(MAX_QUESTION_CHARS, 3000),
        "placeholder": plain("How do I vacuum a big table without locking it?"),
    }
    if question:
        question_element["initial_value"] = question[:3000]
    return modal(
        ASK_MODAL,
        "Ask a question",
        "Ask",
        [
            *([context(note)] if note else []),
            {
                "type": "input",
                "block_id": ASK_BLOCK_QUESTION,
                "label": plain("Your question"),
                "element": question_element,
            },
            {
                "type": "input",
                "block_id": ASK_BLOCK_TAGS,
                "optional": True,
                "label": plain("Tags"),
                "hint": plain("Words after #, e.g. #postgres #ops: they bring your question to the right people."),
                "element": {
                    "type": "plain_text_input",
                    "action_id": ASK_ACTION_INPUT,
                    "placeholder": plain("#postgres #ops"),
                },
            },
            {
                "type": "input",
                "block_id": ASK_BLOCK_CHANNEL,
                "label": plain("Channel"),
                "element": channel_element,
            },
        ],
        private_metadata=private_metadata,
    )


def teach_modal(current_tags: list[str]) -> Block:
    element: Block = {
        "type": "plain_text_input",
        "action_id": ASK_ACTION_INPUT,
        "placeholder": plain("#postgres #kubernetes"),
    }
    if current_tags:
        element["initial_value"] = " ".join(f"#{tag}" for tag in current_tags)[:3000]
    return modal(
        TEACH_MODAL,
        "My topics",
        "Save",
        [
            section(
                "Questions with these tags can reach you by DM, within your working hours and days and a daily cap."
            ),
            {
                "type": "input",
                "block_id": TEACH_BLOCK_TOPICS,
                "optional": True,
                "label": plain("Topics"),
                "hint": plain("Words after #, separated by spaces. Leave empty to stop being a go-to person."),
                "element": element,
            },
        ],
    )


def field_errors(errors: dict[str, str]) -> dict[str, Any]:
    """The ack that shows each error under its field, as Slack does (`response_action: errors`)."""
    return {"response_action": "errors", "errors": {block: truncate(e, ERROR_CHARS) for block, e in errors.items()}}
