"""Slack's contract for what a bot sends: required arguments, Block Kit limits, mention safety.

Pure functions returning `Problem`s (Slack's error code plus a readable reason), used by the fake Web API.
Each method's arguments and the Block Kit limits come from the data shipped beside this module
(slack_contract.json, see contract_data.py); the conditional requirements (SLACK-CONTRACT.md section 1.1) are
written out here.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any

from bot.playground.emulator import contract_data

LIMITS: dict[str, int] = contract_data.load()["block_kit"]
MESSAGE_BLOCKS_MAX = LIMITS["message_blocks"]
VIEW_BLOCKS_MAX = LIMITS["view_blocks"]
KNOWN_BLOCK_TYPES = frozenset(
    {"section", "divider", "image", "actions", "context", "input", "header", "rich_text", "video", "file"}
    | {"markdown", "table", "context_actions"}
)
# An active broadcast: <!channel>, <!here>, <!everyone>, <!subteam^S123> (optionally with a |label).
ACTIVE_MENTION = re.compile(r"<!(?:channel|here|everyone|subteam\^[^>|]*)(?:\|[^>]*)?>")
# With link_names/parse=full Slack also turns bare @channel / @here / @everyone into broadcasts.
BARE_MENTION = re.compile(r"(?<![\w<&])@(?:channel|here|everyone)\b")


@dataclass(frozen=True)
class Problem:
    error: str  # the code Slack answers with
    reason: str  # what was wrong, for the test report


@dataclass(frozen=True)
class MethodSpec:
    name: str
    required: frozenset[str]
    known_args: frozenset[str]


@cache
def method_specs() -> dict[str, MethodSpec]:
    """Every method of Slack's method reference that the shipped data holds, by name."""
    return {
        name: MethodSpec(name=name, required=frozenset(spec["required"]), known_args=frozenset(spec["args"]))
        for name, spec in contract_data.load()["methods"].items()
    }


def _present(args: Mapping[str, Any], name: str) -> bool:
    value = args.get(name)
    return value is not None and value != "" and value != []


def check_arguments(method: str, args: Mapping[str, Any]) -> list[Problem]:
    """Required arguments (from the reference) and the documented conditional requirements."""
    spec = method_specs().get(method)
    problems = [
        Problem("invalid_arguments", f"missing required argument '{name}'")
        for name in sorted(spec.required if spec else ())
        if not _present(args, name)
    ]
    if method in ("chat.postMessage", "chat.postEphemeral", "chat.update"):
        if _present(args, "markdown_text") and (_present(args, "text") or _present(args, "blocks")):
            problems.append(Problem("markdown_text_conflict", "use either text or markdown_text, not both"))
        elif not (_present(args, "text") or _present(args, "markdown_text")):
            what = "blocks/attachments given without" if _present(args, "blocks") else "no"
            problems.append(Problem("no_text", f"{what} fallback `text` (needed for notifications)"))
    elif method == "views.open" and _present(args, "trigger_id") == _present(args, "interactivity_pointer"):
        problems.append(Problem("invalid_arguments", "exactly one of trigger_id / interactivity_pointer"))
    elif method == "views.update" and not (_present(args, "view_id") or _present(args, "external_id")):
        problems.append(Problem("invalid_arguments", "views.update needs view_id or external_id"))
    elif method == "conversations.members" and not _present(args, "channel"):
        # Not in the stored method reference; Slack's docs mark `channel` required.
        problems.append(Problem("invalid_arguments", "missing required argument 'channel'"))
    elif method == "conversations.open" and not (_present(args, "users") or _present(args, "channel")):
        problems.append(Problem("users_list_not_supplied", "conversations.open needs users or channel"))
    elif method == "reactions.get" and not (
        _present(args, "file")
        or _present(args, "file_comment")
        or (_present(args, "channel") and _present(args, "timestamp"))
    ):
        problems.append(Problem("no_item_specified", "reactions.get needs channel + timestamp"))
    return problems


# --- Block Kit -------------------------------------------------------------------------------------


def _too_long(value: Any, limit: int) -> bool:
    return isinstance(value, str) and len(value) > limit


def _text_object(obj: Any, where: str, limit: int = LIMITS["text_object"], plain_only: bool = False) -> Iterator[str]:
    if not isinstance(obj, dict) or obj.get("type") not in ("plain_text", "mrkdwn"):
        yield f"{where}: not a text object ({{type: plain_text|mrkdwn, text}})"
        return
    if plain_only and obj["type"] != "plain_text":
        yield f"{where}: must be plain_text"
    text = obj.get("text")
    if not isinstance(text, str) or not 1 <= len(text) <= limit:
        length = len(text) if isinstance(text, str) else text
        yield f"{where}: text must be 1..{limit} chars (got {length})"


def _element(element: Any, where: str) -> Iterator[str]:
    if not isinstance(element, dict) or not isinstance(element.get("type"), str):
        yield f"{where}: element without a type"
        return
    kind = element["type"]
    where = f"{where} ({kind})"
    if _too_long(element.get("action_id"), LIMITS["id_chars"]):
        yield f"{where}: action_id longer than {LIMITS['id_chars']}"
    if kind == "button":
        yield from _text_object(element.get("text"), f"{where}.text", LIMITS["button_text"], plain_only=True)
        if _too_long(element.get("value"), LIMITS["button_value"]):
            yield f"{where}: value longer than {LIMITS['button_value']}"
        if _too_long(element.get("url"), LIMITS["button_url"]):
            yield f"{where}: url longer than {LIMITS['button_url']}"
    if "placeholder" in element:
        yield from _text_object(element["placeholder"], f"{where}.placeholder", LIMITS["placeholder"], plain_only=True)
    options = element.get("options")
    if isinstance(options, list):
        if len(options) > LIMITS["select_options"]:
            yield f"{where}: {len(options)} options (max {LIMITS['select_options']})"
        for i, option in enumerate(options):
            yield from _option(option, f"{where}.options[{i}]")
    if "confirm" in element and isinstance(element["confirm"], dict):
        confirm = element["confirm"]
        button = LIMITS["confirm_button"]
        limits = {"title": LIMITS["confirm_title"], "text": LIMITS["confirm_text"], "confirm": button, "deny": button}
        for key, limit in limits.items():
            if key in confirm:
                yield from _text_object(confirm[key], f"{where}.confirm.{key}", limit)


def _option(option: Any, where: str) -> Iterator[str]:
    if not isinstance(option, dict):
        yield f"{where}: not an option object"
        return
    yield from _text_object(option.get("text"), f"{where}.text", LIMITS["option_text"])
    if not isinstance(option.get("value"), str) or len(option["value"]) > LIMITS["option_value"]:
        yield f"{where}: value must be a string of at most {LIMITS['option_value']} chars"


def _block(block: Any, where: str) -> Iterator[str]:
    if not isinstance(block, dict):
        yield f"{where}: not an object"
        return
    kind = block.get("type")
    if kind not in KNOWN_BLOCK_TYPES:
        yield f"{where}: unknown block type {kind!r}"
        return
    where = f"{where} ({kind})"
    if _too_long(block.get("block_id"), LIMITS["id_chars"]):
        yield f"{where}: block_id longer than {LIMITS['id_chars']}"
    if kind == "section":
        if "text" not in block and "fields" not in block:
            yield f"{where}: needs text or fields"
        if "text" in block:
            yield from _text_object(block["text"], f"{where}.text", LIMITS["section_text"])
        fields = block.get("fields", [])
        if not isinstance(fields, list) or len(fields) > LIMITS["section_fields"]:
            yield f"{where}: fields must be a list of at most {LIMITS['section_fields']}"
        else:
            for i, field in enumerate(fields):
                yield from _text_object(field, f"{where}.fields[{i}]", LIMITS["section_field_text"])
        if "accessory" in block:
            yield from _element(block["accessory"], f"{where}.accessory")
    elif kind == "header":
        yield from _text_object(block.get("text"), f"{where}.text", LIMITS["header_text"], plain_only=True)
    elif kind in ("actions", "context"):
        limit = LIMITS[f"{kind}_elements"]
        elements = block.get("elements")
        if not isinstance(elements, list) or not 1 <= len(elements) <= limit:
            count = len(elements) if isinstance(elements, list) else elements
            yield f"{where}: elements must be a list of 1..{limit} (got {count})"
            return
        action_ids = [e.get("action_id") for e in elements if isinstance(e, dict) and e.get("action_id")]
        if len(action_ids) != len(set(action_ids)):
            yield f"{where}: duplicate action_id in one block: {action_ids}"
        for i, element in enumerate(elements):
            element_type = element.get("type") if isinstance(element, dict) else None
            if kind == "context" and element_type in ("plain_text", "mrkdwn"):
                yield from _text_object(element, f"{where}.elements[{i}]")
            elif kind == "actions" or element_type != "image":
                yield from _element(element, f"{where}.elements[{i}]")
    elif kind == "input":
        yield from _text_object(block.get("label"), f"{where}.label", LIMITS["input_label"], plain_only=True)
        if "hint" in block:
            yield from _text_object(block["hint"], f"{where}.hint", LIMITS["input_label"], plain_only=True)
        if not isinstance(block.get("element"), dict):
            yield f"{where}: needs an element"
        else:
            yield from _element(block["element"], f"{where}.element")
    elif kind == "markdown":
        text = block.get("text")
        if not isinstance(text, str) or not 1 <= len(text) <= LIMITS["markdown_text"]:
            yield f"{where}: text must be 1..{LIMITS['markdown_text']} chars"
    elif kind == "image":
        if _too_long(block.get("alt_text"), LIMITS["image_alt_text"]):
            yield f"{where}: alt_text longer than {LIMITS['image_alt_text']}"
        if _too_long(block.get("image_url"), LIMITS["image_url"]):
            yield f"{where}: image_url longer than {LIMITS['image_url']}"


def check_blocks(blocks: Any, max_blocks: int = MESSAGE_BLOCKS_MAX) -> list[Problem]:
    """Block Kit limits for a list of blocks (a message: 50, a modal or Home tab: 100)."""
    if blocks is None:
        return []
    if not isinstance(blocks, list):
        return [Problem("invalid_blocks_format", f"blocks must be a JSON array, got {type(blocks).__name__}")]
    reasons: list[str] = []
    if len(blocks) > max_blocks:
        reasons.append(f"{len(blocks)} blocks (max {max_blocks})")
    block_ids = [str(b["block_id"]) for b in blocks if isinstance(b, dict) and b.get("block_id")]
    if len(block_ids) != len(set(block_ids)):
        reasons.append(f"duplicate block_id: {sorted({b for b in block_ids if block_ids.count(b) > 1})}")
    for i, block in enumerate(blocks):
        reasons.extend(_block(block, f"blocks[{i}]"))
    return [Problem("invalid_blocks", reason) for reason in reasons]


def check_view(view: Any) -> list[Problem]:
    """A modal or Home tab view (views.open/push/update/publish and view_submission responses)."""
    if not isinstance(view, dict):
        return [Problem("invalid_arguments", "view must be a JSON object")]
    kind = view.get("type")
    reasons: list[str] = []
    if kind not in ("modal", "home"):
        reasons.append(f"view type must be modal or home, got {kind!r}")
    if kind == "modal":
        if "title" not in view:
            reasons.append("modal needs a title")
        for key in ("title", "submit", "close"):
            if key in view:
                reasons.extend(_text_object(view[key], f"view.{key}", LIMITS["modal_title"], plain_only=True))
        has_input = any(isinstance(b, dict) and b.get("type") == "input" for b in view.get("blocks") or [])
        if has_input and "submit" not in view:
            reasons.append("a modal with input blocks needs a submit button")
    if _too_long(view.get("private_metadata"), LIMITS["private_metadata"]):
        reasons.append(f"private_metadata longer than {LIMITS['private_metadata']} ({len(view['private_metadata'])})")
    if _too_long(view.get("callback_id"), LIMITS["id_chars"]):
        reasons.append(f"callback_id longer than {LIMITS['id_chars']}")
    if len(json.dumps(view)) > LIMITS["view_kb"] * 1000:
        return [Problem("view_too_large", f"view is larger than {LIMITS['view_kb']} kB")]
    problems = [Problem("invalid_arguments", reason) for reason in reasons]
    return problems + check_blocks(view.get("blocks", []), VIEW_BLOCKS_MAX)


# --- Mentions ------------------------------------------------------------------------------------


def _texts(node: Any) -> Iterator[str]:
    """Every piece of text in blocks or a view where Slack parses mentions (plain_text never does)."""
    if isinstance(node, list):
        for item in node:
            yield from _texts(item)
    elif isinstance(node, dict):
        if node.get("type") in ("mrkdwn", "markdown") and isinstance(node.get("text"), str):
            yield node["text"]
        if node.get("type") == "broadcast":
            yield f"<!{node.get('range', 'channel')}>"
        if node.get("type") == "usergroup":
            yield f"<!subteam^{node.get('usergroup_id', '')}>"
        for value in node.values():
            if isinstance(value, dict | list):
                yield from _texts(value)


def check_mentions(text: Any, blocks: Any = None, *, link_names: bool = False) -> list[Problem]:
    """Broadcast mentions the bot should never send (user text must be escaped: &lt; &gt; &amp;)."""
    texts = ([text] if isinstance(text, str) else []) + list(_texts(blocks))
    problems: list[Problem] = []
    for piece in texts:
        found = ACTIVE_MENTION.findall(piece) + (BARE_MENTION.findall(piece) if link_names else [])
        problems.extend(Problem("mention", f"broadcast mention {m!r} in {piece[:80]!r}") for m in found)
    return problems
