"""What `/ask digest …` says: its help, where it can run, and how the channel's digest settings read back.
(The digest itself is built in bot/digest/.)"""

from __future__ import annotations

from datetime import datetime

from bot.digest.schedule import EXAMPLE

DIGEST_USAGE = (
    "*This channel's weekly digest* (answered and open questions, lessons, top helpers, new experts, "
    "knowledge gaps: this channel's last 7 days only)\n"
    "• `/ask digest on` posts it here every Monday at 09:00, in your time zone.\n"
    f"• {EXAMPLE} picks the day, the 24-hour time and the time zone (give any of them).\n"
    "• `/ask digest preview` shows you, and only you, what it would say now.\n"
    "• `/ask digest empty skip` posts nothing in a quiet week; `/ask digest empty note` posts a short note "
    "(the default).\n"
    "• `/ask digest off` stops it; `/ask digest` alone shows the settings."
)
NOT_A_CHANNEL = (
    "Digests are for channels: run `/ask digest on` in the channel that should get one "
    "(public or private; invite me there with `/invite @PeerLearn`)."
)
NOT_IN_CHANNEL = (
    ":warning: I'm not a member of this channel yet, so I can't post its digest. "
    "Add me with `/invite @PeerLearn` before the next one is due."
)
EMPTY_USAGE = "Say `/ask digest empty note` (a short note in a quiet week) or `/ask digest empty skip` (nothing)."
STOPPED = "This channel's weekly digest is off. Its settings are kept: `/ask digest on` brings it back."
NOT_RUNNING = "This channel has no weekly digest running. `/ask digest on` starts one."
QUIET_WEEK_NOTE = "In a quiet week this channel's digest is a short note."
QUIET_WEEK_NOTHING = "In a quiet week this channel gets no digest at all."
DIGEST_IS_OFF = " The digest itself is off here: `/ask digest on` starts it."


def subscribed_text(when: str, next_one: datetime | None, *, moved: bool) -> str:
    """The reply to `/ask digest on` (or `at …` when `moved`): `when` it goes out, and the date of the next one
    once the channel's time zone is known."""
    upcoming = f" Next one: {next_one:%A}, {next_one:%b} {next_one.day}." if next_one is not None else ""
    lead = "Done: this channel's weekly digest now goes out" if moved else "This channel's weekly digest is on:"
    return (
        f":calendar: {lead} {when}.{upcoming}\n"
        "`/ask digest preview` shows it now · "
        f"{EXAMPLE} moves it · `/ask digest off` stops it."
    )


def status_text(when: str | None, post_when_empty: bool) -> str:
    """`/ask digest` alone: when the channel's digest goes out (None: it does not) and the help."""
    if when is None:
        return "No weekly digest in this channel right now.\n\n" + DIGEST_USAGE
    quiet = "a short note" if post_when_empty else "nothing"
    return f"This channel's weekly digest goes out {when}; a quiet week gets {quiet}.\n\n" + DIGEST_USAGE
