"""Slack's contract for what a bot sends: required arguments, Block Kit limits, mention safety.

Pure functions returning `Problem`s (Slack's error code plus a readable reason), used by the fake Web API.
Required arguments come from `shared/slack-api-ref` (a scrape of Slack's method reference); conditional
requirements and Block Kit limits from `shared/SLACK-CONTRACT.md` (sections 1.1 and 5.1).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

SHARED_DIR = Path(__file__).resolve().parents[3] / ".." / "shared"
METHODS_DIR = SHARED_DIR / "slack-api-ref" / "docs.slack.dev" / "methods"

MESSAGE_BLOCKS_MAX = 50
VIEW_BLOCKS_MAX = 100
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
    """Every method described in shared/slack-api-ref, by name."""
    specs: dict[str, MethodSpec] = {}
    for path in sorted(METHODS_DIR.glob("*.json")):
        args = json.loads(path.read_text(encoding="utf-8"))["args"]
        name = path.stem
        specs[name] = MethodSpec(
            name=name,
            required=frozenset(args.get("required", [])) - {"token"},
            known_args=frozenset(args.get("properties", {})),
        )
    if not specs:
        raise RuntimeError(f"No Slack method specs found in {METHODS_DIR.resolve()}")
    return specs


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


def _text_object(obj: Any, where: str, limit: int = 3000, plain_only: bool = False) -> Iterator[str]:
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
    if _too_long(element.get("action_id"), 255):
        yield f"{where}: action_id longer than 255"
    if kind == "button":
        yield from _text_object(element.get("text"), f"{where}.text", 75, plain_only=True)
        if _too_long(element.get("value"), 2000):
            yield f"{where}: value longer than 2000"
        if _too_long(element.get("url"), 3000):
            yield f"{where}: url longer than 3000"
    if "placeholder" in element:
        yield from _text_object(element["placeholder"], f"{where}.placeholder", 150, plain_only=True)
    options = element.get("options")
    if isinstance(options, list):
        if len(options) > 100:
            yield f"{where}: {len(options)} options (max 100)"
        for i, option in enumerate(options):
            yield from _option(option, f"{where}.options[{i}]")
    if "confirm" in element and isinstance(element["confirm"], dict):
        confirm = element["confirm"]
        for key, limit in (("title", 100), ("text", 300), ("confirm", 30), ("deny", 30)):
            if key in confirm:
                yield from _text_object(confirm[key], f"{where}.confirm.{key}", limit)


def _option(option: Any, where: str) -> Iterator[str]:
    if not isinstance(option, dict):
        yield f"{where}: not an option object"
        return
    yield from _text_object(option.get("text"), f"{where}.text", 75)
    if not isinstance(option.get("value"), str) or len(option["value"]) > 150:
        yield f"{where}: value must be a string of at most 150 chars"


def _block(block: Any, where: str) -> Iterator[str]:
    if not isinstance(block, dict):
        yield f"{where}: not an object"
        return
    kind = block.get("type")
    if kind not in KNOWN_BLOCK_TYPES:
        yield f"{where}: unknown block type {kind!r}"
        return
    where = f"{where} ({kind})"
    if _too_long(block.get("block_id"), 255):
        yield f"{where}: block_id longer than 255"
    if kind == "section":
        if "text" not in block and "fields" not in block:
            yield f"{where}: needs text or fields"
        if "text" in block:
            yield from _text_object(block["text"], f"{where}.text", 3000)
        fields = block.get("fields", [])
        if not isinstance(fields, list) or len(fields) > 10:
            yield f"{where}: fields must be a list of at most 10"
        else:
            for i, field in enumerate(fields):
                yield from _text_object(field, f"{where}.fields[{i}]", 2000)
        if "accessory" in block:
            yield from _element(block["accessory"], f"{where}.accessory")
    elif kind == "header":
        yield from _text_object(block.get("text"), f"{where}.text", 150, plain_only=True)
    elif kind in ("actions", "context"):
        limit = 25 if kind == "actions" else 10
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
        yield from _text_object(block.get("label"), f"{where}.label", 2000, plain_only=True)
        if "hint" in block:
            yield from _text_object(block["hint"], f"{where}.hint", 2000, plain_only=True)
        if not isinstance(block.get("element"), dict):
            yield f"{where}: needs an element"
        else:
            yield from _element(block["element"], f"{where}.element")
    elif kind == "markdown":
        text = block.get("text")
        if not isinstance(text, str) or not 1 <= len(text) <= 12000:
            yield f"{where}: text must be 1..12000 chars"
    elif kind == "image":
        if _too_long(block.get("alt_text"), 2000):
            yield f"{where}: alt_text longer than 2000"
        if _too_long(block.get("image_url"), 3000):
            yield f"{where}: image_url longer than 3000"


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
                reasons.extend(_text_object(view[key], f"view.{key}", 24, plain_only=True))
        has_input = any(isinstance(b, dict) and b.get("type") == "input" for b in view.get("blocks") or [])
        if has_input and "submit" not in view:
            reasons.append("a modal with input blocks needs a submit button")
    if _too_long(view.get("private_metadata"), 3000):
        reasons.append(f"private_metadata longer than 3000 ({len(view['private_metadata'])})")
    if _too_long(view.get("callback_id"), 255):
        reasons.append("callback_id longer than 255")
    if len(json.dumps(view)) > 250_000:
        return [Problem("view_too_large", "view is larger than 250 kB")]
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
