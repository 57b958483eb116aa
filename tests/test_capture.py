"""The pure parts of capturing messages (bot/capture.py, bot/messages/capture.py): what a saved thread's lesson
says, which messages it keeps, and the save form within Block Kit's limits however long the thread."""

from __future__ import annotations

import json

from bot.capture import (
    MAX_KEPT_REPLIES,
    MAX_LESSON_CHARS,
    MAX_TITLE_CHARS,
    ThreadMessage,
    as_written,
    credited,
    kept_messages,
    lesson_text,
    thread_ts_of,
    title_from,
)
from bot.messages.blocks import MAX_VIEW_BLOCKS
from bot.messages.capture import OPTION_CHARS, about_note, save_modal

ROOT = ThreadMessage("1.000100", "U_ANA", "How do we rotate the TLS certificate?")
REPLIES = [ThreadMessage(f"1.{n:06d}", f"U_{n % 3}", f"reply {n} " + "x" * 300) for n in range(200, 215)]


def test_a_message_from_slack_is_read_back_as_written_and_its_thread_found():
    message = {"ts": "2.5", "thread_ts": "2.1", "user": "U_B", "text": "a &lt; b &amp;&amp; <!here> <@U_C>"}
    assert as_written(message) == ThreadMessage("2.5", "U_B", "a < b && @here <@U_C>")
    assert thread_ts_of(message) == "2.1" and thread_ts_of({"ts": "3.0"}) == "3.0"
    assert as_written({"ts": "4.0", "bot_id": "B1", "text": ""}).user_id is None


def test_the_first_message_is_always_kept_and_the_others_as_ticked_in_thread_order():
    kept = kept_messages([ROOT, *REPLIES], [REPLIES[3].ts, REPLIES[1].ts, "9.999"])
    assert kept == [ROOT, REPLIES[1], REPLIES[3]]


def test_the_lesson_credits_everyone_else_who_wrote_once_and_bots_never():
    bot = ThreadMessage("1.5", None, "deploy finished")
    kept = [ROOT, ThreadMessage("1.2", "U_B", "Use certbot"), bot, ThreadMessage("1.3", "U_B", "then reload")]
    assert credited(kept) == ["U_ANA", "U_B"]
    text = lesson_text("Rotating TLS", kept)
    assert text == (
        "Rotating TLS\n\nHow do we rotate the TLS certificate?\n\nUse certbot\n\ndeploy finished\n\nthen reload"
        "\n\nWith <@U_B>."
    )
    assert len(lesson_text("t", [ThreadMessage("1", "U", "y" * 50_000)])) == MAX_LESSON_CHARS


def test_a_title_is_guessed_from_the_first_line_and_kept_short():
    assert title_from("  First line\nsecond") == "First line"
    assert len(title_from("z" * 500)) == MAX_TITLE_CHARS and title_from("z" * 500).endswith("…")
    assert title_from("") == ""


def test_the_save_form_stays_within_block_kit_limits_however_long_the_thread():
    metadata = json.dumps({"channel_id": "C1", "thread_ts": ROOT.ts, "private": True, "permalink": "https://x/" * 40})
    view = save_modal(
        first=ThreadMessage(ROOT.ts, "U_ANA", "w" * 10_000),
        replies=REPLIES,
        total_replies=1_234,
        title="t" * 400,
        tags=["tls"],
        kept=None,
        already_saved=True,
        private=True,
        private_metadata=metadata,
    )
    assert len(view["blocks"]) <= MAX_VIEW_BLOCKS and len(view["private_metadata"]) <= 3000
    [replies] = [b for b in view["blocks"] if b.get("block_id") == "replies"]
    options = replies["element"]["options"]
    assert len(options) == MAX_KEPT_REPLIES and all(len(o["text"]["text"]) <= OPTION_CHARS for o in options)
    assert len(replies["element"]["initial_options"]) == MAX_KEPT_REPLIES
    assert all(len(b["text"]["text"]) <= 3000 for b in view["blocks"] if b["type"] == "section")
    assert "Showing the first 10 of 1,234 replies" in json.dumps(view)
    [title] = [b for b in view["blocks"] if b.get("block_id") == "title"]
    assert len(title["element"]["initial_value"]) <= MAX_TITLE_CHARS


def test_the_ask_form_note_says_where_the_message_is_from_and_what_to_do():
    note = about_note(author_id="U_B", permalink="https://l", channel_id="C9", can_post=False, private=False)
    assert "<https://l|this message> by <@U_B>" in note and "I'm not in <#C9>" in note and "private" not in note
    assert "I'm not in" not in about_note(author_id=None, permalink=None, channel_id="C9", can_post=True, private=True)
