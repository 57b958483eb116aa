"""Block Kit building blocks: the message type, Slack's limits and the small builders every message uses.

Limits (Slack's): 50 blocks per message, 100 per modal/Home; section text 3,000 characters, header 150,
button text 75. The builders enforce them by truncating with a visible "…", so a long question never makes a
post fail. Pure functions: no Slack, no database.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any

from bot.text import escape_mrkdwn, truncate
from models.expert import FORGOTTEN_USER_ID

Block = dict[str, Any]

MAX_MESSAGE_BLOCKS = 50
MAX_VIEW_BLOCKS = 100
SECTION_LIMIT = 3000
HEADER_LIMIT = 150
BUTTON_LIMIT = 75
FALLBACK_LIMIT = 300
QUOTE_LIMIT = 1500
MODAL_TITLE_LIMIT = 24  # a modal's title, submit and close texts
PRIVATE_METADATA_LIMIT = 3000


@dataclass(frozen=True)
class Message:
    text: str  # notification fallback, also what screen readers get
    blocks: list[Block] = field(default_factory=list)

    def as_kwargs(self) -> dict[str, Any]:
        return {"text": self.text, "blocks": self.blocks[:MAX_MESSAGE_BLOCKS]}


# --- builders -------------------------------------------------------------------------------


def mention(user_id: str) -> str:
    """A user mention, or "a former member" for someone whose data was erased (forget-user)."""
    return "a former member" if user_id == FORGOTTEN_USER_ID else f"<@{user_id}>"


def mrkdwn(text: str) -> dict[str, str]:
    return {"type": "mrkdwn", "text": truncate(text, SECTION_LIMIT) or " "}


def plain(text: str, limit: int = SECTION_LIMIT) -> dict[str, Any]:
    return {"type": "plain_text", "text": truncate(text, limit) or " ", "emoji": True}


def section(text: str, accessory: Block | None = None) -> Block:
    block: Block = {"type": "section", "text": mrkdwn(text)}
    if accessory:
        block["accessory"] = accessory
    return block


def header(text: str) -> Block:
    return {"type": "header", "text": plain(text, HEADER_LIMIT)}


def context(*texts: str) -> Block:
    return {"type": "context", "elements": [mrkdwn(t) for t in texts[:10]]}


def divider() -> Block:
    return {"type": "divider"}


def button(text: str, action_id: str, value: str = "", style: str | None = None) -> Block:
    element: Block = {"type": "button", "text": plain(text, BUTTON_LIMIT), "action_id": action_id}
    if value:
        element["value"] = value[:2000]
    if style:
        element["style"] = style
    return element


def actions(*elements: Block, block_id: str | None = None) -> Block:
    block: Block = {"type": "actions", "elements": list(elements[:25])}
    if block_id:
        block["block_id"] = block_id
    return block


def fields_section(*texts: str) -> Block:
    return {"type": "section", "fields": [mrkdwn(t) for t in texts[:10]]}


def option(label: str, value: str) -> dict[str, Any]:
    return {"text": plain(label, BUTTON_LIMIT), "value": value[:150]}


def static_select(
    action_id: str, choices: dict[str, str], initial: str | None = None, placeholder: str = "Choose…"
) -> Block:
    element: Block = {
        "type": "static_select",
        "action_id": action_id,
        "placeholder": plain(placeholder, 150),
        "options": [option(label, value) for value, label in list(choices.items())[:100]],
    }
    if initial in choices:
        element["initial_option"] = option(choices[initial], initial)  # type: ignore[index]
    return element


def checkboxes(action_id: str, choices: dict[str, str], ticked: Collection[str]) -> Block:
    """Checkboxes (at most 10), those whose value is in `ticked` ticked."""
    element: Block = {
        "type": "checkboxes",
        "action_id": action_id,
        "options": [option(label, value) for value, label in list(choices.items())[:10]],
    }
    initial = [option(label, value) for value, label in list(choices.items())[:10] if value in ticked]
    if initial:
        element["initial_options"] = initial
    return element


def modal(callback_id: str, title: str, submit: str, blocks: list[Block], private_metadata: str | None = None) -> Block:
    """A modal view with a Cancel button: its texts cut to Slack's 24 characters, its private metadata to 3,000."""
    view: Block = {"type": "modal", "callback_id": callback_id}
    if private_metadata is not None:
        view["private_metadata"] = private_metadata[:PRIVATE_METADATA_LIMIT]
    return view | {
        "title": plain(title, MODAL_TITLE_LIMIT),
        "submit": plain(submit, MODAL_TITLE_LIMIT),
        "close": plain("Cancel", MODAL_TITLE_LIMIT),
        "blocks": blocks,
    }


def fit_view_blocks(blocks: list[Block], more_text: str = "…and more") -> list[Block]:
    """Keep a modal or Home tab within 100 blocks, saying so when something was left out."""
    if len(blocks) <= MAX_VIEW_BLOCKS:
        return blocks
    return [*blocks[: MAX_VIEW_BLOCKS - 1], context(more_text)]


def ephemeral(text: str) -> Message:
    return Message(text=truncate(text, FALLBACK_LIMIT), blocks=[section(text)])


def quote(text: str, limit: int = QUOTE_LIMIT) -> str:
    """User text as a mrkdwn block quote: escaped, shortened with "…", every line quoted."""
    return "\n".join("> " + line for line in truncate(escape_mrkdwn(text.strip()), limit).splitlines() or [""])
