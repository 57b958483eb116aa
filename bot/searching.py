"""A person's search (`/ask search <terms>`, the App Home's search form): the answered questions and lessons of
the workspace that best match their words (bot.search.search_similar, the search the suggestions use), with a
link to each, ready for bot/messages/search.py.

Shown below the suggestions' relevance floor (bot.search.worth_showing): every match that shares a word with the
search, as before vectors, and what is found by meaning alone from a cosine of SEARCH_SIMILARITY on. Suggestions
after /ask interrupt an asker who did not ask for them and make routing wait for their answer, so something
unrelated costs there; here the person asked, sees the matches in order with their excerpts and judges them, and
a word they typed found them. A match by meaning alone shares no word to explain it, so it needs a cosine that
says "same topic"; below, it is not shown, and "Nothing found" stays possible.

Privacy is search_similar's own rule, the one the suggestions apply: a private channel's items are found only
from that channel (`viewer_channel_id`: where the person ran the command, so they are in it); the App Home,
where no channel is involved, searches public channels only.
"""

from __future__ import annotations

from collections.abc import Sequence

from bot.config import Settings
from bot.messages.search import Searched
from bot.messages.suggestions import SimilarItem
from bot.routing.delivery import permalink
from bot.search import SearchHit, search_similar, worth_showing
from bot.services import Services
from bot.text import InvalidQuestion, parse_tagged_text, validate_question
from bot.workspaces import WorkspaceClient

SEARCH_LIMIT = 5  # results shown


def askable(terms: str, settings: Settings) -> bool:
    """Whether `/ask <terms>` would post the terms as a question."""
    try:
        validate_question(terms, settings)
    except InvalidQuestion:
        return False
    return True


def search_answers(
    slack: WorkspaceClient, services: Services, *, team_id: str, terms: str, viewer_channel_id: str | None
) -> Searched:
    """The best matches for `terms` the person may read, each with its permalink (asked of Slack: call after
    the ack). Raises SQLAlchemyError when the database does not answer."""
    words = parse_tagged_text(terms, services.settings.tag_aliases)  # #tags weigh as tags, as in a question
    with services.store.session() as session:
        hits = worth_showing(
            search_similar(
                session,
                team_id=team_id,
                text=words.text,
                tags=words.tags,
                viewer_channel_id=viewer_channel_id,
                limit=2 * SEARCH_LIMIT,  # room for what the floor leaves out
            )
        )[:SEARCH_LIMIT]
    return Searched(terms=terms, items=similar_items(slack, hits), askable=askable(terms, services.settings))


def similar_items(slack: WorkspaceClient, hits: Sequence[SearchHit]) -> list[SimilarItem]:
    """The hits as the message builders show them, each with its permalink (asked of Slack: call after the
    ack). The search's results and the suggestions after /ask both show hits this way."""
    return [
        SimilarItem(
            kind=hit.kind,
            ref_id=hit.id,
            text=hit.text,
            author_id=hit.author_id,
            answer_text=hit.answer_text,
            answer_user_id=hit.answer_user_id,
            link=permalink(slack, hit.channel_id, hit.message_ts),
        )
        for hit in hits
    ]


def question_request_key(search_request: str) -> str:
    """The request key of the question "Ask it as a question" posts for one search (models.question's unique
    key): clicked twice, or delivered twice, it is the same question."""
    return ("search:" + search_request)[:255]
