"""What a person hears when something went wrong: the database is down, Slack sent a command half-empty or did
not open a form. A refused request quotes the person's words back, so nothing they wrote is lost."""

from __future__ import annotations

from bot.text import escape_mrkdwn, truncate

DATABASE_DOWN = "PeerLearn can't reach its database right now, so nothing was saved. Please try again in a minute."
UNUSABLE_COMMAND = (  # {missing}: the fields Slack left out
    "Slack sent PeerLearn this command without {missing}, so nothing was done. Please try again in a moment."
)
ASK_DIRECTLY = "You can also ask directly: `/ask How do I …? #tag`"


def quote_back(text: str, limit: int = 2500) -> str:
    """The person's own words, quoted, so a refused request loses nothing."""
    body = truncate(escape_mrkdwn(text.strip()), limit)
    return "\n\nHere is what you wrote, so nothing is lost:\n```" + body + "```" if body else ""
