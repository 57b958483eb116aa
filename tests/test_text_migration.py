"""Migration 0009: rows stored in Slack's escaped form (before issue 18) become what the person wrote, and show
as typed; questions from the /ask form, raw already, stay as they are. On SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime

from alembic import command
from sqlalchemy import select

from bot.messages.questions import question_message
from bot.playground.emulator.transcript import as_shown
from bot.search import search_similar
from models.lesson import Lesson
from models.migrate import alembic_config
from models.question import STATUS_OPEN, Answer, Question
from models.session import Store

NOW = datetime(2026, 11, 23, 10, tzinfo=UTC)
SLACK_FORM = "Is a &lt;b&gt; &amp;&amp; c? See <https://x.org/a?b=1&amp;c=2> and ask <@U123|bob> <!here>"
WRITTEN = "Is a <b> && c? See https://x.org/a?b=1&c=2 and ask <@U123|bob> @here"
FROM_THE_FORM = "Raw already: a < b && c > d, and &lt; typed literally"


def test_text_stored_in_slacks_form_becomes_what_was_written(database_url):
    store = Store.from_url(database_url)
    config = alembic_config(store.engine)
    try:
        command.downgrade(config, "0009@-1")  # as the database was before this change
        with store.session() as s:
            command_question = Question(
                team_id="T1",
                channel_id="C1",
                asker_id="U1",
                text=SLACK_FORM,
                status=STATUS_OPEN,
                message_ts="1.1",
                request_key="cmd:1",
                created_at=NOW,
            )
            form_question = Question(
                team_id="T1",
                channel_id="C1",
                asker_id="U1",
                text=FROM_THE_FORM,
                status=STATUS_OPEN,
                message_ts="1.2",
                request_key="view:V1",
                created_at=NOW,
            )
            s.add_all([command_question, form_question])
            s.flush()
            s.add(
                Answer(
                    team_id="T1",
                    question_id=command_question.id,
                    channel_id="C1",
                    ts="1.3",
                    user_id="U2",
                    text=SLACK_FORM,
                    created_at=NOW,
                )
            )
            s.add(
                Lesson(
                    team_id="T1",
                    channel_id="C1",
                    author_id="U2",
                    text=SLACK_FORM,
                    message_ts="1.4",
                    request_key="cmd:2",
                    created_at=NOW,
                )
            )

        command.upgrade(config, "heads")

        with store.session() as s:
            texts = {q.request_key: q.text for q in s.scalars(select(Question))}
            assert texts == {"cmd:1": WRITTEN, "view:V1": FROM_THE_FORM}
            assert s.scalars(select(Answer.text)).one() == WRITTEN
            assert s.scalars(select(Lesson.text)).one() == WRITTEN
            # The search index followed: it no longer holds Slack's escapes as words.
            assert search_similar(s, team_id="T1", text="amp lt gt", viewer_channel_id="C1") == []
            [lesson] = search_similar(s, team_id="T1", text="ask bob", viewer_channel_id="C1")
            assert lesson.text == WRITTEN
        shown = as_shown(question_message(asker_id="U1", text=WRITTEN, tags=[]).blocks[0]["text"]["text"])
        assert "Is a <b> && c? See https://x.org/a?b=1&c=2 and ask @bob @\u200bhere" in shown

        command.downgrade(config, "0009@-1")
        with store.session() as s:
            texts = {q.request_key: q.text for q in s.scalars(select(Question))}
            assert texts == {
                "cmd:1": "Is a &lt;b&gt; &amp;&amp; c? See https://x.org/a?b=1&amp;c=2 and ask <@U123|bob> @here",
                "view:V1": FROM_THE_FORM,
            }
    finally:
        command.upgrade(config, "heads")
        store.dispose()
