"""Every word of onboarding buddies: the introduction both people get (with the first-week checklist), the
notes when nobody is free yet, the replies to `/teach buddy`, the App Home lines and the admins' onboarding
form. Pure builders.

The checklist is typed by admins in a modal (raw text, not Slack-escaped): it is escaped once here, line by
line, so nobody's words can ping a channel or a user group.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from bot.messages.blocks import (
    Block,
    Message,
    actions,
    button,
    checkboxes,
    context,
    divider,
    fields_section,
    mention,
    modal,
    plain,
    section,
)
from bot.text import escape_mrkdwn, truncate

ONBOARDING_MODAL = "onboarding_settings"  # the admins' form's callback_id
HOME_EDIT_ONBOARDING = "home_edit_onboarding"  # the admin section's button
ONBOARDING_ACTION = "value"  # every input's action_id (its block_id is the setting's name)
CHANNEL_FIELD = "onboarding_channel"
TEAM_JOIN_FIELD = "onboarding_team_join"
CHECKLIST_FIELD = "onboarding_checklist"
TEAM_JOIN_ON = "on"

_CHANNEL_ID = re.compile(r"[A-Z0-9_]{1,32}")
MAX_CHECKLIST_CHARS = 2000
MAX_CHECKLIST_ITEMS = 15

DEFAULT_CHECKLIST = (
    "Say hello in your team's channel and tell people what you'll be working on",
    "Set your working hours and days in PeerLearn's App Home, so questions reach you at the right time",
    "Find the docs and the code you'll work with first, and ask your buddy where they live",
    "Ask your first question with /ask: no question is too small in your first weeks",
    "Meet your buddy for 30 minutes at the end of your first week: what went well, what was confusing",
)

NAMES = {  # as the admins' "last changes" names them
    CHANNEL_FIELD: "onboarding channel",
    TEAM_JOIN_FIELD: "buddies for new members of the workspace",
    CHECKLIST_FIELD: "first-week checklist",
}

BUDDY_USAGE = (
    "Volunteer as an onboarding buddy with `/teach buddy` (or `/teach buddy up to 2`); stop with `/teach buddy off`."
)
NOT_VOLUNTEERING = "You weren't an onboarding buddy volunteer. " + BUDDY_USAGE
STOPPED = (
    "You're no longer an onboarding buddy volunteer: no new newcomers will be paired with you. The newcomers "
    "you're accompanying now stay paired with you. Thank you!"
)
NOT_AN_ADMIN = "Only the workspace's admins and owners can change the onboarding settings."
SAVED = "Onboarding settings saved."
UNCHANGED = "Nothing was changed."
TOO_LONG = f"Keep the checklist under {MAX_CHECKLIST_CHARS} characters."
TOO_MANY_ITEMS = f"Keep the checklist to {MAX_CHECKLIST_ITEMS} lines at most."


def bad_buddy_command(capacity_limit: int) -> str:
    return f"I didn't understand that. {BUDDY_USAGE} (From 1 to {capacity_limit} newcomers at a time.)"


def volunteered_text(capacity: int, weeks: int) -> str:
    return (
        f"Thank you! You're an onboarding buddy volunteer, for up to {_newcomers(capacity)} at a time. When "
        "someone joins, PeerLearn pairs them with a volunteer whose working hours overlap theirs and introduces "
        f"you both; for their first {weeks} weeks, their questions reach their buddy first. `/teach buddy off` "
        "stops."
    )


def checklist_lines(checklist: str | None) -> list[str]:
    """The checklist's items: the admins' lines (empty ones left out), or the default checklist."""
    if checklist is None:
        return list(DEFAULT_CHECKLIST)
    return [line.strip().lstrip("•-* ").strip() for line in checklist.splitlines() if line.strip()]


def _checklist_text(checklist: str | None) -> str:
    items = checklist_lines(checklist)
    lines = [f"☐ {truncate(escape_mrkdwn(item), 300)}" for item in items[:MAX_CHECKLIST_ITEMS]]
    return truncate("*Your first week*\n" + "\n".join(lines), 3000)


def introduction(newcomer_id: str, buddy_id: str, checklist: str | None, weeks: int, *, to_newcomer: bool) -> Message:
    """The introduction, to the newcomer or to their buddy (the same checklist in both)."""
    if to_newcomer:
        text = (
            f":wave: Welcome! {mention(buddy_id)} is your onboarding buddy: a colleague who volunteered to help you "
            f"find your way. For your first {weeks} weeks, the questions you ask with `/ask` reach them first "
            "(and the usual experts too). Say hi to them!"
        )
    else:
        text = (
            f":wave: {mention(newcomer_id)} just joined and you're their onboarding buddy. Thank you! Say hi "
            f"and help them through their first week; for their first {weeks} weeks, their `/ask` questions "
            "reach you first (within your working hours and daily cap)."
        )
    fallback = "Meet your onboarding buddy" if to_newcomer else "Meet the newcomer you're a buddy for"
    return Message(
        text=fallback,
        blocks=[
            section(text),
            section(_checklist_text(checklist)),
            context("The workspace's admins keep this checklist up to date in PeerLearn's App Home."),
        ],
    )


def buddy_reason(newcomer_name: str) -> str:
    """Why a newcomer's question reached their buddy (the routing DM's "Why you"; escaped there)."""
    return f"you are {newcomer_name or 'this newcomer'}'s onboarding buddy"


NO_TAGS_BUDDY_NOTE = (
    ":mag: Your question has no tags, so only your buddy was asked. Next time, a tag or two like `#postgres` "
    "brings it to the people who know the topic as well."
)


def buddy_asked_text(buddy_id: str, when: str | None) -> str:
    """What the newcomer is told of their buddy's DM about their question (`when`: later, roughly when)."""
    if when is None:
        return f":handshake: I've asked your onboarding buddy {mention(buddy_id)}."
    return f":handshake: Your onboarding buddy {mention(buddy_id)} starts their day {when}: I'll ask them then."


def no_buddy_yet_text(newcomer_id: str) -> str:
    """In the onboarding channel (or to the admins) when nobody can be a buddy for a newcomer yet."""
    return (
        f"Welcome {mention(newcomer_id)}! Nobody is free to be your onboarding buddy just yet: PeerLearn will "
        "introduce you as soon as someone is. Anyone happy to help a newcomer through their first weeks: "
        "`/teach buddy`."
    )


def no_buddy_yet(newcomer_id: str, *, to_admins: bool = False) -> Message:
    """In the onboarding channel, or (`to_admins`) by DM to the admins when there is no such channel."""
    text = no_buddy_yet_text(newcomer_id)
    if to_admins:
        text = (
            f"{mention(newcomer_id)} just joined the workspace, and nobody is free to be their onboarding buddy "
            "yet: PeerLearn will introduce them as soon as someone is. Colleagues can volunteer with "
            "`/teach buddy`."
        )
    return Message(text="Looking for an onboarding buddy", blocks=[section(text)])


# --- App Home ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class OnboardingShown:
    """What App Home shows of onboarding: the person's own buddy or newcomers, and (admins) the settings."""

    buddy_id: str | None = None  # the person's own buddy, while they are a newcomer
    waiting: bool = False  # a newcomer nobody could be paired with yet
    newcomers: Sequence[str] = field(default_factory=list)  # whom the person is a buddy for now
    capacity: int | None = None  # the person volunteers, for this many
    admin: bool = False
    channel_id: str | None = None
    team_join: bool = False
    checklist_items: int = 0
    volunteers: int = 0
    waiting_count: int = 0


def _own_line(shown: OnboardingShown) -> str | None:
    if shown.buddy_id:
        return f":handshake: Your onboarding buddy is {mention(shown.buddy_id)}: your questions reach them first."
    if shown.waiting:
        return ":handshake: PeerLearn is looking for an onboarding buddy for you."
    if shown.newcomers:
        names = ", ".join(mention(u) for u in shown.newcomers[:10])
        return f":handshake: You're the onboarding buddy of {names}."
    if shown.capacity:
        return f":handshake: You volunteer as an onboarding buddy (up to {shown.capacity} at a time)."
    return None


def _newcomers(count: int) -> str:
    return "1 newcomer" if count == 1 else f"{count} newcomers"


def onboarding_home(shown: OnboardingShown | None) -> list[Block]:
    """The person's own line, and the admins' onboarding settings (at most 5 blocks in all)."""
    if shown is None:
        return []
    line = _own_line(shown)
    blocks: list[Block] = [context(line)] if line else []
    if shown.admin:
        where = f"<#{shown.channel_id}>" if shown.channel_id else "none"
        blocks += [
            fields_section(
                f"*Onboarding channel*\n{where}",
                f"*Buddies for new members of the workspace*\n{'on' if shown.team_join else 'off'}",
                f"*First-week checklist*\n{shown.checklist_items} items",
                f"*Buddy volunteers*\n{shown.volunteers}; {_newcomers(shown.waiting_count)} waiting",
            ),
            actions(button("Edit onboarding", HOME_EDIT_ONBOARDING), block_id="home_onboarding"),
        ]
    return [divider(), *blocks] if blocks else []


def onboarding_modal(channel_id: str | None, team_join: bool, checklist: str | None) -> Block:
    """The admins' onboarding form, filled with what applies now."""
    channel: Block = {
        "type": "conversations_select",
        "action_id": ONBOARDING_ACTION,
        "placeholder": plain("Choose a channel", 150),
        "filter": {"include": ["public", "private"], "exclude_bot_users": True},
    }
    if channel_id:
        channel["initial_conversation"] = channel_id
    return modal(
        ONBOARDING_MODAL,
        "Onboarding buddies",
        "Save",
        [
            section(
                "Newcomers are paired with a buddy who volunteered (`/teach buddy`) and whose working hours "
                "overlap theirs. Each change is recorded, with who made it."
            ),
            {
                "type": "input",
                "block_id": CHANNEL_FIELD,
                "optional": True,
                "label": plain("Onboarding channel"),
                "hint": plain("Whoever joins this channel gets a buddy. Leave empty for none."),
                "element": channel,
            },
            {
                "type": "input",
                "block_id": TEAM_JOIN_FIELD,
                "optional": True,
                "label": plain("New members of the workspace"),
                "element": checkboxes(
                    ONBOARDING_ACTION,
                    {TEAM_JOIN_ON: "Give everyone who joins the workspace a buddy"},
                    [TEAM_JOIN_ON] if team_join else [],
                ),
            },
            {
                "type": "input",
                "block_id": CHECKLIST_FIELD,
                "label": plain("First-week checklist"),
                "hint": plain("One item a line; both the newcomer and their buddy get it."),
                "element": {
                    "type": "plain_text_input",
                    "action_id": ONBOARDING_ACTION,
                    "multiline": True,
                    "max_length": MAX_CHECKLIST_CHARS,
                    "initial_value": "\n".join(checklist_lines(checklist)),
                },
            },
        ],
    )


def change_value_text(name: str, stored: str) -> str:
    """An onboarding setting's recorded value as the admins' "last changes" show it."""
    if name == CHANNEL_FIELD:
        return f"<#{stored}>" if _CHANNEL_ID.fullmatch(stored) else "none"
    if name == CHECKLIST_FIELD:
        return "(default)" if not stored else f"“{truncate(escape_mrkdwn(stored.replace(chr(10), ' / ')), 60)}”"
    return escape_mrkdwn(stored)
