"""App Home: publish the person's view when they open the Home tab."""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt import App, BoltContext
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot import blocks
from bot.services import Services
from bot.slack_errors import error_code
from models.question import open_questions_of

logger = logging.getLogger("peerlearn.home")


def register(app: App, services: Services) -> None:
    def publish_home(event: dict[str, Any], client: WebClient, context: BoltContext) -> None:
        if event.get("tab") != "home":
            return
        user_id = event["user"]
        with services.store.session() as session:
            lines = [
                blocks.QuestionLine(text=q.text, channel_id=q.channel_id, tags=tuple(q.tag_names))
                for q in open_questions_of(session, context.team_id or "", user_id)
            ]
        try:
            client.views_publish(user_id=user_id, view=blocks.home_view(user_id, lines))
        except SlackApiError as exc:
            logger.warning("could not publish App Home for %s: %s", user_id, error_code(exc))

    app.event("app_home_opened")(ack=lambda: None, lazy=[publish_home])
