"""What `/ask help` and `/teach help` say."""

from __future__ import annotations

from bot.messages.blocks import Message, section
from bot.text import MAX_QUESTION_CHARS

ASK_USAGE = (
    "*Ask your colleagues with* `/ask`\n"
    "• `/ask How do I vacuum a big table? #postgres #ops` posts your question here; answers go in its thread.\n"
    "• `/ask` alone opens a form (question, tags, channel).\n"
    "• `/ask search vacuum big table` finds answered questions and lessons (shown only to you), with links.\n"
    "• On any message, *More actions* (⋮) → *Ask PeerLearn about this* asks about it as a question, crediting "
    "its author.\n"
    "• Mark the answer that solved it with :white_check_mark:; anyone can vote an answer helpful with "
    ":+1: :bulb: :pray:.\n"
    "• `/ask digest on|off|preview|at fri 16:00 Europe/Berlin` manages this channel's weekly digest.\n"
    "• `/ask mentor #postgres` finds you a mentor on a topic and introduces you both in a group DM.\n"
    "• Tags are words after `#`, e.g. `#postgres`. Questions stay under "
    f"{MAX_QUESTION_CHARS:,} characters; put long details in the thread."
)

TEACH_USAGE = (
    "*Share what you know with* `/teach`\n"
    "• `/teach #postgres #kubernetes` makes you a go-to person for those topics: matching questions reach you "
    "by DM, within your working hours and days (App Home) and a daily cap.\n"
    "• `/teach #git Use git bisect to find the commit that broke a test` shares a lesson in this channel; "
    "`/ask search` finds it later.\n"
    "• On a message or a thread, *More actions* (⋮) → *Save as knowledge* saves it as a lesson (title, tags, "
    "the replies to keep), credited to who wrote it.\n"
    "• `/teach session #git Rebasing without fear thu 12:30` announces a lunch-and-learn (your time zone; "
    "`for 45m` sets its length) in this channel and where #git questions were asked; people sign up, get a "
    "reminder, and your notes become a lesson. `/teach sessions` lists the upcoming ones.\n"
    "• `/teach list` shows your topics, `/teach remove #x` drops one, `/teach pause 7d` and `/teach resume` "
    "take a break and come back, `/teach` alone opens a form to edit your topics.\n"
    "• `/teach mentor #postgres up to 2 people` offers to mentor colleagues on a topic (App Home lists them).\n"
    "• `/teach buddy` (or `/teach buddy up to 3`) volunteers you as an onboarding buddy: newcomers whose working "
    "hours overlap yours are paired with you, and their questions reach you first for their first weeks; "
    "`/teach buddy off` stops.\n"
    "• PeerLearn's App Home has your working hours and days and how questions reach you; the workspace's admins "
    "also find its settings there (escalation period, experts per question, daily cap, default working time)."
)


def help_message(usage: str) -> Message:
    return Message(text=usage.splitlines()[0].strip("*"), blocks=[section(usage)])
