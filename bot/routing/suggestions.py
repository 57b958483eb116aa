"""Similar questions: right after a question is posted, the asker sees up to three similar answered questions
and lessons (bot.search), and routing waits for their answer or the grace period."""

from __future__ import annotations

from bot.messages.suggestions import SimilarItem, similar_suggestions
from bot.routing.delivery import tell
from bot.routing.escalation import LEVEL_NEW, route_now
from bot.routing.evidence import load_question
from bot.search import above_floor, search_similar
from bot.searching import similar_items
from bot.services import Services
from bot.workspaces import WorkspaceClient
from models.question import STATUS_OPEN

SIMILAR_LIMIT = 3  # suggestions shown to the asker


def suggest_or_route(slack: WorkspaceClient, services: Services, question_id: int) -> list[SimilarItem]:
    """Right after a question is posted: show the asker up to three similar answered questions and lessons
    (never from a private channel other than this one) and let routing wait for their answer or the grace
    period; with nothing similar, route at once. Returns what was suggested."""
    with services.store.session() as session:
        facts = load_question(session, question_id)
        if facts is None or facts.status != STATUS_OPEN or facts.level != LEVEL_NEW:
            return []
        # Only what is likely to answer it: a suggestion makes routing wait for the asker (bot.search's floor).
        hits = above_floor(
            search_similar(
                session,
                team_id=facts.team_id,
                text=facts.text,
                tags=facts.tags,
                viewer_channel_id=facts.channel_id,
                limit=SIMILAR_LIMIT,
                exclude_question_id=facts.id,
            )
        )
    items = similar_items(slack, hits)
    if items:
        message = similar_suggestions(question_id, items, services.settings.similar_grace_minutes)
        if tell(slack, channel_id=facts.channel_id, user_id=facts.asker_id, message=message):
            return items
        # The asker can't see them: don't make them wait for nothing.
    route_now(slack, services, question_id)
    return []
