"""Parsing `/ask` and `/teach` text into words and #tags, and making user text safe to post.

Pure functions: no Slack, no database.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass

from bot.config import Settings

MAX_TAG_LENGTH = 40
MAX_TAGS = 10
MAX_QUESTION_CHARS = 3000
ELLIPSIS = "…"

# A #tag starts a word (not inside a URL fragment or an escaped Slack link) and runs over letters,
# digits and - _ . + (c++, node.js); a trailing dot is punctuation, not part of the tag.
_TAG = re.compile(r"(?<![\w&/<#|])#([^\W_][\w\-+.]*)", re.UNICODE)
_LEADING_TAGS = re.compile(r"^(?:#[^\W_][\w\-+.]*\s+)+", re.UNICODE)
_ZERO_WIDTH = dict.fromkeys(map(ord, "\u200b\u200c\u200d\u2060\ufeff\u180e"), None)
# Bidi controls can make text read in a different order than it was written; drop them.
_BIDI_CONTROLS = dict.fromkeys(map(ord, "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"), None)


@dataclass(frozen=True)
class ParsedText:
    text: str  # what the person wrote, without the trailing run of tags
    tags: tuple[str, ...]  # normalised, unique, in the order written


def clean(text: str) -> str:
    """Drop zero-width and bidi-control characters and normalise Unicode; keep everything else."""
    return unicodedata.normalize("NFC", text.translate(_ZERO_WIDTH).translate(_BIDI_CONTROLS)).strip()


def normalize_tag(raw: str, aliases: Mapping[str, str] | None = None) -> str | None:
    """`#Kubernetes` → `kubernetes`, `k8s` → `kubernetes` (with aliases); None when not a usable tag."""
    tag = clean(raw).lstrip("#").rstrip(".").lower()
    if not tag or len(tag) > MAX_TAG_LENGTH or not re.fullmatch(r"[^\W_][\w\-+.]*", tag):
        return None
    if aliases:
        tag = aliases.get(tag, tag)
    return tag


def parse_tagged_text(raw: str, aliases: Mapping[str, str] | None = None) -> ParsedText:
    """Split `How do I vacuum? #postgres #ops` into the text and its tags.

    Tags in the middle of a sentence stay in the text (they are words there) and are also tags;
    the runs of tags at the start (`/teach #git Use bisect…`) and at the end are removed from the text.
    """
    text = clean(raw)
    tags: list[str] = []
    for match in _TAG.finditer(text):
        tag = normalize_tag(match.group(1), aliases)
        if tag and tag not in tags:
            tags.append(tag)
    body = _LEADING_TAGS.sub("", text)
    while True:
        trailing = re.search(r"(?:^|\s)#[^\W_][\w\-+.]*\s*$", body, re.UNICODE)
        if not trailing:
            break
        body = body[: trailing.start()].rstrip()
    return ParsedText(text=body, tags=tuple(tags[:MAX_TAGS]))


def has_words(text: str) -> bool:
    """True when the text holds at least two letters or digits in any script (not only emoji/punctuation)."""
    found = 0
    for ch in text:  # stops at the second one: /ask checks this on every question before its ack
        if ch.isalnum():
            found += 1
            if found == 2:
                return True
    return False


class InvalidQuestion(ValueError):
    """The text cannot become a question; the message says what to do instead (shown ephemerally)."""


def validate_question(raw: str, settings: Settings) -> ParsedText:
    parsed = parse_tagged_text(raw, settings.tag_aliases)
    if not parsed.text and parsed.tags:
        raise InvalidQuestion(
            "I only found tags there. Put your question before the tags, e.g. "
            "`/ask How do I vacuum a big table? #postgres`."
        )
    if not has_words(parsed.text):
        raise InvalidQuestion(
            "Your question needs a few words, not only emoji or punctuation. Try "
            "`/ask How do I vacuum a big table? #postgres`, or `/ask help` for more."
        )
    if len(parsed.text) > MAX_QUESTION_CHARS:
        raise InvalidQuestion(
            f"That question is {len(parsed.text):,} characters long; questions stay under "
            f"{MAX_QUESTION_CHARS:,}. Ask the essentials with `/ask` and put the details in its thread."
        )
    return parsed


_SPECIAL_MENTION = re.compile(r"<!(channel|here|everyone|subteam\^[A-Z0-9]+)(?:\|([^>]*))?>", re.IGNORECASE)
_SAFE_ENTITY = re.compile(r"<(@[UW][A-Z0-9]+(?:\|[^<>]*)?|#C[A-Z0-9]+(?:\|[^<>]*)?|https?://[^<>|\s]+(?:\|[^<>]*)?)>")
_BARE_BROADCAST = re.compile(r"@(channel|here|everyone)\b", re.IGNORECASE)


def escape_mrkdwn(text: str) -> str:
    """Make user text safe for a bot message: no @channel/@here/@everyone or user-group pings, ever.

    Real user mentions (`<@U123>`), channel links and URLs the person wrote (as Slack encodes them)
    stay; broadcast and user-group mentions become inert text; every other `<`, `>`, `&` is escaped.
    """

    def inert(match: re.Match[str]) -> str:
        name = (match.group(2) or match.group(1).split("^")[0]).lstrip("@")
        return "@\u200b" + name

    text = _SPECIAL_MENTION.sub(inert, text)
    kept: list[str] = []

    def keep(match: re.Match[str]) -> str:
        kept.append(match.group(0))
        return f"\x00{len(kept) - 1}\x00"

    text = _SAFE_ENTITY.sub(keep, text)
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    text = _BARE_BROADCAST.sub(lambda m: "@\u200b" + m.group(1), text)
    return re.sub("\x00(\\d+)\x00", lambda m: kept[int(m.group(1))], text)


def truncate(text: str, limit: int) -> str:
    """Cut to at most `limit` characters with a visible "…", never splitting an escape or a link."""
    if len(text) <= limit:
        return text
    cut = text[: max(limit - 1, 0)]
    # Do not leave half of "&amp;" or "<@U123|name>" behind.
    for opener, closer in (("&", ";"), ("<", ">")):
        start = cut.rfind(opener)
        if start != -1 and cut.find(closer, start) == -1:
            cut = cut[:start]
    return cut.rstrip() + ELLIPSIS


def format_tags(tags: tuple[str, ...] | list[str]) -> str:
    return " ".join(f"`#{tag}`" for tag in tags)
