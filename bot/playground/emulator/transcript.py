"""What the tests read: a message as the emulator holds it, and mrkdwn as a Slack client shows it."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from bot.playground.emulator.workspace import Json


@dataclass(frozen=True)
class Message:
    """A message as the fake Slack holds it right now."""

    channel: str
    ts: str
    user: str
    text: str
    blocks: list[Json]
    thread_ts: str | None
    raw: Json

    @classmethod
    def of(cls, channel: str, raw: Json) -> Message:
        blocks = list(raw.get("blocks") or [])
        return cls(channel, raw["ts"], raw.get("user", ""), raw.get("text", ""), blocks, raw.get("thread_ts"), raw)

    @property
    def plain(self) -> str:
        """The fallback text and every text in the blocks, one per line (for `in` assertions)."""
        return "\n".join([self.text, *_block_texts(self.blocks)])

    @property
    def shown(self) -> str:
        """`plain` as a person reads it in Slack (see `as_shown`)."""
        return as_shown(self.plain)


_ENTITY = re.compile(r"<([^<>]*)>")
_ESCAPE = re.compile(r"&(amp|lt|gt);")


def as_shown(mrkdwn: str) -> str:
    """mrkdwn as a Slack client shows it: each `<…>` entity as its label (a link as its text, `<@U1>` as `@U1`,
    `<!here>` as `@here`), then `&amp;` `&lt;` `&gt;` as the characters they stand for."""

    def entity(match: re.Match[str]) -> str:
        target, _, label = match.group(1).partition("|")
        if target[:1] in ("@", "#"):
            return target[0] + (label.lstrip("@#") or target[1:])
        if target.startswith("!"):
            return label or "@" + target[1:].split("^")[0]
        return label or target

    return _ESCAPE.sub(lambda m: {"amp": "&", "lt": "<", "gt": ">"}[m.group(1)], _ENTITY.sub(entity, mrkdwn))


def _block_texts(node: Any) -> Iterator[str]:
    if isinstance(node, list):
        for item in node:
            yield from _block_texts(item)
    elif isinstance(node, dict):
        if isinstance(node.get("text"), str):
            yield node["text"]
        for value in node.values():
            if isinstance(value, dict | list):
                yield from _block_texts(value)
