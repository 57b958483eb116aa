"""What a search shows (`/ask search <terms>`, and the App Home's search form, whose results show at the top of
the Home tab): the best matching answered questions and lessons, each with a link, who answered and an
excerpt; what to do when nothing matched; and "Ask it as a question". Pure: no Slack, no database.

Results are the same `SimilarItem`s the suggestions show (bot.messages.suggestions). Search terms are
shown escaped (bot.text.escape_mrkdwn): what the person typed, never a ping or a link they did not write.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from bot.messages.blocks import (
    Block,
    Message,
    actions,
    button,
    context,
    header,
    mention,
    modal,
    plain,
    quote,
    section,
)
from bot.messages.suggestions import SimilarItem
from bot.text import escape_mrkdwn, truncate

# "Ask it as a question" under a /ask search reply: value = `ask_value(request, terms)`.
ACTION_ASK_SEARCHED = "search_ask_it"
# The App Home's "Search answers" button, which opens the search form.
ACTION_HOME_SEARCH = "home_search"
# "Ask it as a question" under the Home tab's results: value = the terms; it opens the /ask form with them.
ACTION_HOME_ASK_SEARCHED = "home_search_ask_it"
SEARCH_MODAL = "search_modal"
SEARCH_BLOCK_TERMS = "search_terms"
SEARCH_ACTION_TERMS = "terms"

MAX_TERMS_CHARS = 500  # the form's input; /ask search takes longer text but shows this much of it
BUTTON_VALUE_LIMIT = 2000  # Slack's limit on a button's value
EXCERPT_CHARS = 300
MAX_SHOWN = 10  # results at most (a block each), so the reply keeps its button within Slack's 50 blocks
TERMS_SHOWN_CHARS = 200

SEARCH_USAGE = (
    "*Find earlier answers with* `/ask search`\n"
    "• `/ask search vacuum big table` shows you (and only you) the answered questions and lessons that match, "
    "with links and who answered.\n"
    "• Nothing that fits? Its *Ask it as a question* button posts your words here as `/ask` would.\n"
    "• Your App Home has the same search: *Search answers*."
)
SEARCH_DATABASE_DOWN = (
    "PeerLearn can't reach its database right now, so it could not search. Please try again in a minute."
)
TERMS_MISSING = "Type a few words to look for."
SEARCH_PRIVATE_NOTE = (
    "Answers from private channels are not searched here: run `/ask search` in that channel to include them."
)
ASKED_NOTE = ":speech_balloon: Asked: your question is posted in this channel, as `/ask` would post it."
NOT_ASKABLE_NOTE = "That is too long to ask from here: ask it with `/ask` (put the details in its thread)."


@dataclass(frozen=True)
class Searched:
    """One search: the terms as typed, what was found (best first), and whether the terms could be posted as a
    question (a `/ask` would accept them)."""

    terms: str
    items: list[SimilarItem]
    askable: bool = True


def ask_value(request: str, terms: str) -> str | None:
    """The "Ask it as a question" button's value under a /ask search reply: the search request's key (one
    question per search, however often it is clicked) and the terms; None when it would not fit a button."""
    value = json.dumps({"request": request, "terms": terms}, ensure_ascii=False)
    return value if len(value) <= BUTTON_VALUE_LIMIT else None


def parse_ask_value(value: str) -> tuple[str, str] | None:
    """(request key, terms) from an `ask_value`; None for anything else."""
    try:
        data = json.loads(value)
    except ValueError:
        return None
    if not isinstance(data, dict):
        return None
    request, terms = data.get("request"), data.get("terms")
    if not isinstance(request, str) or not isinstance(terms, str) or not request or not terms.strip():
        return None
    return request, terms


def shown_terms(terms: str) -> str:
    return truncate(escape_mrkdwn(" ".join(terms.split())), TERMS_SHOWN_CHARS)


def found_text(item: SimilarItem) -> str:
    """One result as mrkdwn: what it is and who answered, an excerpt, and its link."""
    link = f"\n<{item.link}|Open it>" if item.link else ""
    if item.kind == "lesson":
        return f":bulb: *Lesson by {mention(item.author_id)}*\n{quote(item.text, EXCERPT_CHARS)}{link}"
    answered_by = mention(item.answer_user_id) if item.answer_user_id else "someone"
    text = f":white_check_mark: *Answered by {answered_by}* · asked by {mention(item.author_id)}\n"
    text += quote(item.text, EXCERPT_CHARS)
    if item.answer_text:
        text += "\n*Answer:* " + truncate(escape_mrkdwn(" ".join(item.answer_text.split())), EXCERPT_CHARS)
    return text + link


def _results(searched: Searched) -> list[Block]:
    terms = shown_terms(searched.terms)
    if not searched.items:
        return [
            section(f":mag: *Nothing found for* “{terms}”."),
            context(
                "Only answered questions and lessons are searched. Try other or fewer words, or ask it as a "
                "question: the people who know the topic get it, and its answer will be found next time."
            ),
        ]
    shown = searched.items[:MAX_SHOWN]
    found = "1 answer" if len(shown) == 1 else f"{len(shown)} answers"
    blocks = [section(f":mag: *{found} for* “{terms}”, best first:")]
    blocks += [section(found_text(item)) for item in shown]
    blocks.append(context("Only answered questions and lessons are searched. None of these helps? Ask it."))
    return blocks


def search_results(searched: Searched, request: str) -> Message:
    """The ephemeral reply to `/ask search <terms>`, with "Ask it as a question" (one question per search)."""
    blocks = _results(searched)
    value = ask_value(request, searched.terms) if searched.askable else None
    if value is not None:
        blocks.append(
            actions(button("Ask it as a question", ACTION_ASK_SEARCHED, value, style="primary"), block_id="search_ask")
        )
    else:
        blocks.append(context(NOT_ASKABLE_NOTE))
    count = min(len(searched.items), MAX_SHOWN)
    fallback = f"Search: {count} answer{'' if count == 1 else 's'} found" if count else "Search: nothing found"
    return Message(text=fallback, blocks=blocks)


def search_modal() -> Block:
    """The App Home's search form: what to look for. The results show at the top of the Home tab."""
    element: Block = {
        "type": "plain_text_input",
        "action_id": SEARCH_ACTION_TERMS,
        "max_length": MAX_TERMS_CHARS,
        "placeholder": plain("vacuum big table", 150),
    }
    return modal(
        SEARCH_MODAL,
        "Search answers",
        "Search",
        [
            {"type": "input", "block_id": SEARCH_BLOCK_TERMS, "label": plain("Look for"), "element": element},
            context(SEARCH_PRIVATE_NOTE),
        ],
    )


def home_search_blocks(searched: Searched) -> list[Block]:
    """A search's results at the top of the Home tab, with "Ask it as a question" (it opens the /ask form with
    the terms filled in, where the person picks the channel) and the search button to search again."""
    blocks = [header("Search"), *_results(searched)]
    controls = [button(":mag: Search again", ACTION_HOME_SEARCH)]
    if searched.askable and len(searched.terms) <= BUTTON_VALUE_LIMIT:
        controls.insert(0, button("Ask it as a question", ACTION_HOME_ASK_SEARCHED, searched.terms, style="primary"))
    blocks += [actions(*controls, block_id="home_search_results"), context(SEARCH_PRIVATE_NOTE)]
    return blocks
