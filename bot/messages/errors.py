"""What a person hears when something went wrong: the database is down, Slack refused or never answered a call,
Slack sent a command half-empty or did not open a form. A refused request quotes the person's words back, so
nothing they wrote is lost."""

from __future__ import annotations

from bot.slack_errors import AUTH_ERRORS, NO_ANSWER_CODE
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


def refused(problem: object, text: str) -> str:
    """Why a command was refused and what to type, with the person's words quoted back when they are long
    enough to be worth keeping (a short command is quicker to type again than to copy)."""
    return str(problem) + quote_back(text if len(text) > 80 else "")


_EXPLANATIONS = {
    "not_in_channel": "I'm not a member of this channel yet. Add me with `/invite @PeerLearn`, then try again.",
    "channel_not_found": (
        "I can't see this channel: it may be private or a direct message. Add me with `/invite @PeerLearn` "
        "in a channel, then try again there."
    ),
    "is_archived": "This channel is archived, so nothing can be posted here. Try again in an active channel.",
    "user_not_found": "I couldn't find that person in this workspace.",
    "user_not_in_channel": "That person is not a member of this channel.",
    "ratelimited": "Slack asked me to slow down. Please try again in a minute.",
    "rate_limited": "Slack asked me to slow down. Please try again in a minute.",
    "restricted_action": "This workspace doesn't allow me to post here. An admin can change that.",
    "missing_scope": "I'm missing a permission for this. An admin needs to reinstall PeerLearn from its manifest.",
    "msg_too_long": "That message is too long for Slack. Please shorten it and try again.",
    NO_ANSWER_CODE: (
        "Slack didn't answer in time, so I can't tell whether that went through. Please check, and try again in a "
        "minute if it didn't."
    ),
}
_DEFAULT = "Slack refused that ({code}). Please try again; if it keeps happening, tell whoever runs PeerLearn."


def explain(code: str) -> str:
    """What a Slack error code means for the person who clicked, and what to do."""
    if code in AUTH_ERRORS:
        return "PeerLearn's connection to this workspace was revoked. An admin needs to reinstall the app."
    return _EXPLANATIONS.get(code, _DEFAULT.format(code=code))
