"""What an /ask is: help, digest settings, a search, the form, a question to store, or a problem to explain.

Read once, here, for the /ask listener (handlers/commands.py) and for the HTTP server, which acknowledges a
request into the inbox before any listener runs only when the listener's ack would be blank (`inbox_key`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from bot.config import Settings
from bot.mentoring_text import ask_mentor_command, is_mentor_request
from bot.text import InvalidQuestion, ParsedText, clean, command_text, validate_question

HELP_WORDS = {"help", "?", "-h", "--help"}
SEARCH_WORD = "search"  # `/ask search <terms>`


def first_word(text: str) -> str:
    words = clean(text).split(maxsplit=1)
    return words[0].lower() if words else ""


def request_key(command: Mapping[str, Any]) -> str:
    """Slash commands have no id of their own; the trigger_id is unique per invocation."""
    return "cmd:" + (command.get("trigger_id") or f"{command.get('user_id')}:{command.get('text')}")


@dataclass(frozen=True)
class Ask:
    text: str
    word: str  # the first word, lower case
    question: ParsedText | None = None  # a valid question (unless the text is help or digest settings)
    problem: InvalidQuestion | None = None  # why the text is not a valid question

    @property
    def is_help(self) -> bool:
        return self.word in HELP_WORDS

    @property
    def may_be_digest_settings(self) -> bool:
        """`/ask digest …`: the listener reads the rest (handlers/digest.py); if it is no settings command,
        it is a question like any other."""
        return self.word == "digest"

    @property
    def is_search(self) -> bool:
        """`/ask search <terms>`: earlier answers, shown to the person only (no question is stored)."""
        return self.word == SEARCH_WORD

    @property
    def search_terms(self) -> str:
        """What to look for: the words after `search` (empty: the person is told how to search)."""
        words = clean(self.text).split(maxsplit=1)
        return clean(words[1]) if self.is_search and len(words) > 1 else ""

    @property
    def opens_form(self) -> bool:
        return not self.is_help and not clean(self.text)

    @property
    def acks_blank(self) -> bool:
        """The listener's ack is empty: a question to store and post, or a search to answer (its reply comes
        through the response_url), not help, digest settings, the form (its trigger_id expires in 3 s), how to
        search or a problem to explain. Such a request can be acknowledged as soon as it is in the inbox and
        handled after the ack."""
        if self.is_search:
            return bool(self.search_terms)
        return self.question is not None and not self.is_help and not self.may_be_digest_settings


def read_ask(text: str, settings: Settings) -> Ask:
    word = first_word(text)
    if word in HELP_WORDS or word == SEARCH_WORD or not clean(text):
        return Ask(text, word)
    try:
        return Ask(text, word, question=validate_question(text, settings))
    except InvalidQuestion as problem:
        return Ask(text, word, problem=problem)


def inbox_key(body: Mapping[str, Any], settings: Settings) -> str | None:
    """The key under which a request may wait in the inbox (models/inbox.py), acknowledged before any listener
    runs; None when its ack must come from the listener (it says something, opens a modal, …).

    Events API deliveries (Slack shows nothing of an event's ack) and /ask questions (an empty ack)."""
    if body.get("type") == "event_callback" and body.get("event_id"):
        return f"event:{body['event_id']}"
    if body.get("command") == "/ask" and body.get("trigger_id"):
        text = command_text(body)
        if ask_mentor_command(text) is not None:  # `/ask mentor #tag`: blank when well formed (handlers/mentoring.py)
            return request_key(body) if is_mentor_request(text, settings.tag_aliases) else None
        if read_ask(text, settings).acks_blank:
            return request_key(body)
    return None
