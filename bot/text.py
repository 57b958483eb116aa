"""Parsing `/ask` and `/teach` text into words and #tags, and making user text safe to post.

User text is stored in one form: what the person wrote, raw (`a < b && c > d`), with Slack's user
mentions and channel references kept as Slack writes them (`<@U123>`, `<#C123|general>`). Each entry
point converts to it once: slash commands and message events arrive in Slack's escaped form
(`&amp;`, `&lt;`, `&gt;`, links and mentions as `<…>`) and go through `from_slack`; modal inputs
arrive raw and need nothing. Links become the URL the person wrote (Slack links bare URLs again when
it shows them), so a literal `<https://evil|innocent>` someone typed stays text and cannot become a
disguised link. Search, export and plain-text fields use the stored text as it is; `escape_mrkdwn` is
the one way it goes into mrkdwn.

Pure functions: no Slack, no database.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass

from bot.config import Settings

MAX_TAG_LENGTH = 40
MAX_TAGS = 10  # on a question or a lesson
MAX_TOPICS = 20  # one person's declared topics (/teach and its form)
MAX_QUESTION_CHARS = 3000
ELLIPSIS = "…"

# A #tag starts a word (not inside a URL fragment or an escaped Slack link) and runs over letters,
# digits and - _ . + (c++, node.js); a trailing dot is punctuation, not part of the tag.
_TAG = re.compile(r"(?<![\w&/<#|])#([^\W_][\w\-+.]*)", re.UNICODE)
_LEADING_TAGS = re.compile(r"^(?:#[^\W_][\w\-+.]*\s+)+", re.UNICODE)
_TAG_WORD = re.compile(r"#[^\W_][\w\-+.]*", re.UNICODE)  # a whole word that is a tag
_WORD_FROM_THE_END = re.compile(r"\s*(\S+)", re.UNICODE)  # matched on the text reversed
_ZERO_WIDTH = dict.fromkeys(map(ord, "\u200b\u200c\u200d\u2060\ufeff\u180e"), None)
# Bidi controls can make text read in a different order than it was written; drop them.
_BIDI_CONTROLS = dict.fromkeys(map(ord, "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"), None)


@dataclass(frozen=True)
class ParsedText:
    text: str  # what the person wrote, without the trailing run of tags
    tags: tuple[str, ...]  # normalised, unique, in the order written (all of them: callers apply their cap)


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
    tags: dict[str, None] = {}  # ordered and unique, with a constant-time "seen already?"
    for match in _TAG.finditer(text):
        tag = normalize_tag(match.group(1), aliases)
        if tag:
            tags.setdefault(tag)
    body = _without_trailing_tags(_LEADING_TAGS.sub("", text))
    return ParsedText(text=body, tags=tuple(tags))


def _without_trailing_tags(text: str) -> str:
    """The text up to its trailing run of #tags. One pass over its words from the end (the text reversed,
    one word at a time, none kept): this runs before /ask's ack on whatever text arrives, so it must stay
    linear however many tags it is given."""
    reverse = text[::-1]
    read = 0  # characters of `reverse` that were trailing tags (and the space around them)
    while (word := _WORD_FROM_THE_END.match(reverse, read)) and _TAG_WORD.fullmatch(word.group(1)[::-1]):
        read = word.end()
    return text[: len(text) - read].rstrip() if read else text


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
    """The text cannot become a question; the message says what to do instead: for `/ask …` (shown
    ephemerally), and `in_form` for the /ask form (shown under its question field, as plain text)."""

    def __init__(self, message: str, in_form: str) -> None:
        super().__init__(message)
        self.in_form = in_form


class TooManyTags(InvalidQuestion):
    """More tags than a question takes (the /ask form shows it on its tags field)."""


def too_many_tags(count: int, what: str) -> str:
    """What a person is told when a question or a lesson (`what`) carries more than MAX_TAGS tags."""
    return f"That's {count:,} tags; {what} can have at most {MAX_TAGS}. Keep the ones that say best what it is about."


def too_many_topics(count: int) -> str:
    """What a person is told when their topics would be more than MAX_TOPICS (/teach, its form)."""
    return (
        f"That would make {count:,} topics; one person can be a go-to person for at most {MAX_TOPICS}. "
        "Keep those you most want to be asked about."
    )


def validate_question(raw: str, settings: Settings) -> ParsedText:
    parsed = parse_tagged_text(raw, settings.tag_aliases)
    if len(parsed.tags) > MAX_TAGS:
        problem = too_many_tags(len(parsed.tags), "a question")
        raise TooManyTags(problem, in_form=problem)
    if not parsed.text and parsed.tags:
        raise InvalidQuestion(
            "I only found tags there. Put your question before the tags, e.g. "
            "`/ask How do I vacuum a big table? #postgres`.",
            in_form="Write your question here; its tags go in the Tags field.",
        )
    if not has_words(parsed.text):
        raise InvalidQuestion(
            "Your question needs a few words, not only emoji or punctuation. Try "
            "`/ask How do I vacuum a big table? #postgres`, or `/ask help` for more.",
            in_form="Your question needs a few words, not only emoji or punctuation.",
        )
    if len(parsed.text) > MAX_QUESTION_CHARS:
        raise InvalidQuestion(
            f"That question is {len(parsed.text):,} characters long; questions stay under "
            f"{MAX_QUESTION_CHARS:,}. Ask the essentials with `/ask` and put the details in its thread.",
            in_form=f"Questions stay under {MAX_QUESTION_CHARS:,} characters: ask the essentials here and put "
            "the details in its thread.",
        )
    return parsed


def parse_tag_field(raw: str, aliases: Mapping[str, str] | None = None) -> tuple[list[str], list[str]]:
    """A form's tags field (`#a #b`, `a, b` or `a b`): its tags (normalised, unique, in order) and the words
    that are not tags."""
    tags: list[str] = []
    not_tags: list[str] = []
    for word in clean(raw).replace(",", " ").split():
        tag = normalize_tag(word, aliases)
        if tag is None:
            not_tags.append(word)
        elif tag not in tags:
            tags.append(tag)
    return tags, not_tags


def not_tags_error(words: list[str]) -> str:
    """A tags field's error (plain text, under the field)."""
    return f"Not a tag: {', '.join(words)}. Tags are words like #postgres or #ci-cd."


# Slack's entities: <@U…>, <#C…|name>, <!here>, <!subteam^S…|@team>, <https://…|label>, <mailto:…|…>.
_SLACK_ENTITY = re.compile(r"<([^<>]*)>")
_SLACK_ESCAPE = re.compile(r"&(amp|lt|gt);")
_ESCAPED = {"amp": "&", "lt": "<", "gt": ">"}
# The two entities stored text keeps (as Slack wrote them): user mentions and channel references.
_MENTION_TARGET = re.compile(r"@[UW][A-Z0-9_]+|#[CG][A-Z0-9_]+")
_KEPT_ENTITY = re.compile(r"<(?:@[UW][A-Z0-9_]+|#[CG][A-Z0-9_]+)(?:\|[^<>|]*)?>")
_BROADCASTS = ("here", "channel", "everyone")
_BARE_BROADCAST = re.compile(r"@(channel|here|everyone)\b", re.IGNORECASE)


def _unescape(text: str) -> str:
    return _SLACK_ESCAPE.sub(lambda m: _ESCAPED[m.group(1)], text)


def _as_written(entity: str) -> str:
    """One Slack entity (what is between `<` and `>`) as the person wrote it."""
    target, _, label = entity.partition("|")
    label = _unescape(label)
    if _MENTION_TARGET.fullmatch(target):
        return f"<{target}|{label}>" if label and not re.search(r"[<>|]", label) else f"<{target}>"
    if target.startswith("!"):  # <!here>, <!subteam^S1|@devs>, <!date^…|fallback>: the words, not the ping
        name = target[1:].split("^")[0]
        return "@" + name.lower() if name.lower() in _BROADCASTS else label or ("@group" if name == "subteam" else "")
    url = _unescape(target)
    if not label or label == url:
        return url
    if url.partition(":")[2].lstrip("/") == label:  # `example.com` or an e-mail address, as typed
        return label
    return f"{label} ({url})"  # a labelled link: show where it goes


def from_slack(text: str) -> str:
    """Text as Slack delivers it in slash commands and message events, as the person wrote it (the stored form).

    `a &lt; b &amp;&amp; c` → `a < b && c`; `<https://x.org/a?b=1&amp;c=2>` → `https://x.org/a?b=1&c=2`;
    `<!here>` → `@here`; `<@U123|ana>` and `<#C1|general>` stay as they are (see the module docstring).
    """
    parts: list[str] = []
    position = 0
    for match in _SLACK_ENTITY.finditer(text):
        parts += [_unescape(text[position : match.start()]), _as_written(match.group(1))]
        position = match.end()
    parts.append(_unescape(text[position:]))
    return "".join(parts)


def command_text(command: Mapping[str, object]) -> str:
    """A slash command's text, as the person wrote it."""
    return from_slack(str(command.get("text") or ""))


def escape_mrkdwn(text: str) -> str:
    """Stored user text as mrkdwn, showing what the person wrote: no @channel/@here/@everyone or user-group
    pings, no links other than the URLs they wrote.

    User mentions and channel references (`<@U123>`, `<#C42|ops>`) stay; every other `<`, `>`, `&` is
    escaped, so a typed `<!here>` or `<https://evil|innocent>` shows as typed; bare broadcast words are
    broken with a zero-width space.
    """
    kept: list[str] = []

    def keep(match: re.Match[str]) -> str:
        kept.append(match.group(0))
        return f"\x00{len(kept) - 1}\x00"

    text = _KEPT_ENTITY.sub(keep, text.replace("\x00", ""))
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
