"""Slack's contract as data shipped with the emulator (slack_contract.json), and the command that regenerates it.

The file is generated from the Slack reference kept beside the repository (shared/): each method's arguments
from slack-api-ref (a scrape of Slack's method reference, MIT) and the Block Kit limits from SLACK-CONTRACT.md
section 5.1. Regenerate it after the reference changes:

    python -m bot.playground.emulator.contract_data ../shared
"""

from __future__ import annotations

import json
import re
import sys
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

DATA_FILE = "slack_contract.json"
METHODS = Path("slack-api-ref") / "docs.slack.dev" / "methods"
CONTRACT = Path("SLACK-CONTRACT.md")
LIMITS_SECTION = "### 5.1 Block Kit"

# Each limit the contract checks: (the item's row in SLACK-CONTRACT.md's Block Kit table, the number's pattern).
LIMITS: dict[str, tuple[str, str]] = {
    "message_blocks": ("blocks per message", r"^(\d+)"),
    "view_blocks": ("blocks per modal / Home tab view", r"^(\d+)"),
    "id_chars": ("`block_id`, `action_id`, view `callback_id`", r"^(\d+) chars"),
    "section_text": ("section `text`", r"max (\d+) chars"),
    "section_fields": ("section `text`", r"max (\d+) items"),
    "section_field_text": ("section `text`", r"(\d+) chars each"),
    "header_text": ("header `text` (plain_text)", r"^(\d+) chars"),
    "actions_elements": ("actions block `elements`", r"max (\d+)"),
    "context_elements": ("context block `elements`", r"max (\d+)"),
    "markdown_text": ("markdown block `text`", r"^([\d,]+) chars"),
    "image_alt_text": ("image block", r"`alt_text` (\d+)"),
    "image_url": ("image block", r"`image_url` (\d+)"),
    "input_label": ("input block `label` / `hint`", r"^(\d+) chars"),
    "button_text": ("button `text`", r"^(\d+) chars"),
    "button_value": ("button `text`", r"`value` (\d+)"),
    "button_url": ("button `text`", r"`url` (\d+)"),
    "text_object": ("text object `text`", r"1–(\d+) chars"),
    "option_text": ("options / selects", r"option `text` (\d+)"),
    "option_value": ("options / selects", r"`value` (\d+)"),
    "select_options": ("options / selects", r"select `options` ≤(\d+)"),
    "placeholder": ("options / selects", r"`placeholder` (\d+)"),
    "confirm_title": ("confirm dialog", r"`title` (\d+)"),
    "confirm_text": ("confirm dialog", r"`text` (\d+)"),
    "confirm_button": ("confirm dialog", r"`confirm`/`deny` (\d+) chars"),
    "modal_title": ("modal `title` / `submit` / `close`", r"^(\d+) chars each"),
    "private_metadata": ("modal `title` / `submit` / `close`", r"`private_metadata` (\d+) chars"),
    "view_kb": ("view size", r"greater than (\d+)kb"),
}


@cache
def load() -> dict[str, Any]:
    """The shipped contract data: {"methods": {name: {"required", "args"}}, "block_kit": {limit: n}, "sources"}."""
    return json.loads(resources.files(__package__).joinpath(DATA_FILE).read_text(encoding="utf-8"))


def methods(source: Path) -> dict[str, dict[str, list[str]]]:
    """Each method in the reference: its required arguments (token left out: every method needs it) and all."""
    found: dict[str, dict[str, list[str]]] = {}
    for path in sorted((source / METHODS).glob("*.json")):
        args = json.loads(path.read_text(encoding="utf-8"))["args"]
        found[path.stem] = {
            "required": sorted(set(args.get("required", [])) - {"token"}),
            "args": sorted(args.get("properties", {})),
        }
    if not found:
        raise ValueError(f"no method files in {source / METHODS}")
    return found


def block_kit_limits(source: Path) -> dict[str, int]:
    """The numbers of SLACK-CONTRACT.md's Block Kit table that the contract checks, by name."""
    text = (source / CONTRACT).read_text(encoding="utf-8")
    start = text.find(LIMITS_SECTION)
    if start < 0:
        raise ValueError(f"no section {LIMITS_SECTION!r} in {source / CONTRACT}")
    section = text[start:].split("\n#", 1)[0]
    rows = dict(re.findall(r"^\| (.+?) \| (.+?) \|$", section, re.MULTILINE))
    limits: dict[str, int] = {}
    for name, (item, pattern) in LIMITS.items():
        match = re.search(pattern, rows.get(item, ""))
        if not match:
            raise ValueError(f"{CONTRACT} section 5.1: no {pattern!r} in the row {item!r}")
        limits[name] = int(match.group(1).replace(",", ""))
    return limits


def sources(source: Path) -> dict[str, str]:
    """Where the data came from (the scrape's commit and licence travel with what is derived from it)."""
    about = (source / "slack-api-ref" / "SOURCE.md").read_text(encoding="utf-8")
    commit = re.search(r"\b[0-9a-f]{40}\b", about)
    licence = (source / "slack-api-ref" / "LICENSE.md").read_text(encoding="utf-8")
    notice = re.search(r"^Copyright .+$", licence, re.MULTILINE)
    return {
        "methods": "slack-ruby/slack-api-ref docs.slack.dev/methods"
        + (f" at {commit.group(0)}" if commit else "")
        + (f" (MIT licence; {notice.group(0)})" if notice else ""),
        "block_kit": "SLACK-CONTRACT.md section 5.1 (Slack's Block Kit reference)",
        "regenerate": "python -m bot.playground.emulator.contract_data SHARED_DIR",
    }


def build(source: Path) -> dict[str, Any]:
    """The contract data from the reference directory (the one holding slack-api-ref and SLACK-CONTRACT.md)."""
    return {"sources": sources(source), "methods": methods(source), "block_kit": block_kit_limits(source)}


def dumps(data: dict[str, Any]) -> str:
    return json.dumps(data, indent=1, sort_keys=True, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print(f"usage: python -m {__spec__.name if __spec__ else __name__} SHARED_DIR", file=sys.stderr)
        return 2
    data = build(Path(args[0]))
    target = Path(__file__).resolve().parent / DATA_FILE
    target.write_text(dumps(data), encoding="utf-8")
    print(f"{target.name}: {len(data['methods'])} methods, {len(data['block_kit'])} Block Kit limits")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
