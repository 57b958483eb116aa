"""Block Kit payloads stay within Slack's limits, whatever the user wrote."""

from bot.messages.blocks import (
    BUTTON_LIMIT,
    FALLBACK_LIMIT,
    HEADER_LIMIT,
    button,
    divider,
    fit_view_blocks,
    header,
    mention,
)
from bot.messages.forms import ASK_BLOCK_CHANNEL, ASK_MODAL, ask_modal
from bot.messages.questions import question_message


def _texts(payload):
    if isinstance(payload, dict):
        for key, value in payload.items():
            if key == "text" and isinstance(value, str):
                yield value
            else:
                yield from _texts(value)
    elif isinstance(payload, list):
        for item in payload:
            yield from _texts(item)


def test_question_message_shows_asker_question_tags_and_thread_hint():
    message = question_message(asker_id="U1", text="How do I vacuum?", tags=["postgres", "ops"])
    rendered = "\n".join(_texts(message.blocks))
    assert "<@U1>" in rendered
    assert "How do I vacuum?" in rendered
    assert "`#postgres` `#ops`" in rendered
    assert "thread" in rendered
    assert "Resolved" not in rendered


def test_resolved_question_names_the_answerer_and_links_the_answer():
    message = question_message(
        asker_id="U1", text="q?", tags=[], resolved_by="U2", answer_link="https://x.slack.com/p1"
    )
    first = message.blocks[0]["text"]["text"]
    assert "Resolved" in first
    assert "<@U2>" in first
    assert "https://x.slack.com/p1" in first
    assert message.text.startswith("Resolved question")


def test_a_huge_question_is_truncated_not_refused():
    message = question_message(asker_id="U1", text="word " * 5000, tags=["a"] * 10)
    for block in message.blocks:
        if block["type"] == "section":
            assert len(block["text"]["text"]) <= 3000
            assert block["text"]["text"].endswith("…")
    assert len(message.text) <= FALLBACK_LIMIT


def test_user_text_cannot_ping_everyone():
    message = question_message(asker_id="U1", text="<!channel> urgent <!here>", tags=[])
    assert all("<!" not in text for text in _texts(message.blocks))
    assert "<!" not in message.text


def test_header_and_button_limits():
    assert len(header("h" * 500)["text"]["text"]) == HEADER_LIMIT
    assert len(button("b" * 200, "act")["text"]["text"]) == BUTTON_LIMIT


def test_views_are_capped_at_100_blocks():
    fitted = fit_view_blocks([divider()] * 150, "…and 51 more")
    assert len(fitted) == 100
    assert fitted[-1]["type"] == "context"


def test_ask_modal_prefills_channel_and_respects_limits():
    view = ask_modal("C1", private_metadata='{"channel_id": "C1"}')
    assert view["callback_id"] == ASK_MODAL
    assert len(view["title"]["text"]) <= 24
    channel = next(b for b in view["blocks"] if b["block_id"] == ASK_BLOCK_CHANNEL)
    assert channel["element"]["initial_conversation"] == "C1"


def test_a_forgotten_person_is_shown_as_a_former_member():
    message = question_message(asker_id="forgotten", text="q?", tags=[], resolved_by="U2")
    rendered = "\n".join(_texts(message.blocks))
    assert "<@forgotten>" not in rendered and "a former member" in rendered
    assert mention("U2") == "<@U2>"
