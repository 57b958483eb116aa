"""Conversations that many scenarios start from, played in the emulator through the real endpoint."""

from __future__ import annotations

from bot.playground.emulator.transcript import Message
from bot.playground.emulator.world import SlackWorld


def answered_question(
    world: SlackWorld, text: str, answer: str, channel: str, *, asker: str = "U_OLD", helper: str = "U_HELPER"
) -> tuple[Message, str]:
    """`asker` asks `text` in `channel`, `helper` answers in its thread and `asker` accepts the answer (✅).
    Returns (the question's message, the answer's ts) once the bot's work after each ack is done (the search
    document and its vector written), so that suggestions and searches find it."""
    question = world.ask(asker, text, channel)
    answer_ts = world.reply(helper, question, answer)
    world.react(asker, "white_check_mark", channel, answer_ts)
    world.settle()
    return question, answer_ts
