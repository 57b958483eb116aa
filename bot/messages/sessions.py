"""Lunch-and-learn sessions in words and Block Kit (pure): the announcement with its sign-up buttons, the list of
upcoming sessions, the reminder, the host's notes request and its form, the cancellation, the proposals and the
invitation DM.

Times are Slack date tokens (`<!date^UNIX^{date_short_pretty} at {time}|fallback>`): each reader's Slack shows
them in their own time zone; the fallback (notifications, old clients) says UTC.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from bot.messages.blocks import Block, Message, actions, button, context, header, mention, modal, plain, section
from bot.text import escape_mrkdwn, truncate

ACTION_SIGN_UP = "session_sign_up"  # value: the session id
ACTION_CANT_MAKE_IT = "session_cant_make_it"  # value: the session id
ACTION_CANCEL = "session_cancel"  # value: the session id (the host's list)
ACTION_SHARE_NOTES = "session_share_notes"  # value: the session id (the host's DM after it)
ACTION_INVITE = "session_invite"  # value: the tag (the admin's App Home)
NOTES_MODAL = "session_notes_modal"  # private_metadata: the session id
NOTES_BLOCK = "notes"
NOTES_INPUT = "value"

TITLE_CHARS = 200
MAX_LISTED = 10
MAX_HOME_SESSIONS = 5
MAX_PROPOSALS = 3
REMINDER_LEAD = timedelta(minutes=15)

USAGE = (
    "`/teach session #tag <title> <when>` announces a lunch-and-learn, e.g. "
    "`/teach session #git Rebasing without fear thu 12:30` (your time zone; add `for 45m` to change its length "
    "from an hour). `/teach sessions` lists the upcoming ones."
)
ONE_TAG = "A session is about one #tag, e.g. `/teach session #git Rebasing without fear thu 12:30`."
SIGNED_UP = ":white_check_mark: You're signed up. I'll DM you a reminder 15 minutes before it starts."
NOT_GOING = 'Noted: you can\'t make it. Changed your mind? Press "Sign me up".'
SESSION_GONE = "That session was cancelled or has already started, so nothing changed."
NOT_THE_HOST = "Only the host can cancel a session."
CANCELLED_NOTE = "Cancelled. Everyone who signed up gets a DM."
ALREADY_CANCELLED = "That session was already cancelled."
NOTES_THANKS = ":books: Thanks! Your notes are saved as a lesson on `#{tag}`: people find them with `/ask search`."
NOTES_ALREADY = "The notes of this session are saved already."
NOTES_MISSING = "Write a few words or paste the recording link."
NO_PROPOSALS = "No knowledge gap needs a session right now."


@dataclass(frozen=True)
class SessionShown:
    id: int
    host_id: str
    tag: str
    title: str
    starts_at: datetime
    minutes: int
    cancelled: bool = False
    going: int = 0
    not_going: int = 0


@dataclass(frozen=True)
class Proposal:
    tag: str
    reason: str  # why (bot.stats.Gap.reason), or the digest's count


def slack_date(moment: datetime, token: str = "{date_short_pretty} at {time}") -> str:
    """A time every reader sees in their own time zone; the fallback is UTC."""
    fallback = moment.astimezone(UTC).strftime("%a %d %b %Y %H:%M UTC")
    return f"<!date^{int(moment.timestamp())}^{token}|{fallback}>"


def length_text(minutes: int) -> str:
    hours, rest = divmod(minutes, 60)
    if not rest:
        return f"{hours} h"
    return f"{hours} h {rest} min" if hours else f"{rest} min"


def _title(shown: SessionShown) -> str:
    return truncate(escape_mrkdwn(shown.title), TITLE_CHARS)


def _line(shown: SessionShown) -> str:
    return (
        f"*{_title(shown)}* on `#{shown.tag}` · {slack_date(shown.starts_at)} ({length_text(shown.minutes)}) · "
        f"hosted by {mention(shown.host_id)}"
    )


def announcement(shown: SessionShown) -> Message:
    """The post in each channel: what, when (each reader's time zone), who hosts, how many signed up."""
    fallback = f"Lunch and learn on #{shown.tag}: {truncate(shown.title, TITLE_CHARS)}"
    when = f"{slack_date(shown.starts_at)} ({length_text(shown.minutes)})"
    text = f"*{_title(shown)}*\n:calendar: {when} · hosted by {mention(shown.host_id)} · `#{shown.tag}`"
    if shown.cancelled:
        return Message(
            text="Cancelled: " + fallback,
            blocks=[
                header(":no_entry: Cancelled: lunch and learn"),
                section(f"~{_title(shown)}~\nThis session was cancelled by {mention(shown.host_id)}."),
            ],
        )
    count = f"{shown.going} signed up" + (f" · {shown.not_going} can't make it" if shown.not_going else "")
    return Message(
        text=fallback,
        blocks=[
            header(":teacher: Lunch and learn"),
            section(text),
            context(count),
            actions(
                button("Sign me up", ACTION_SIGN_UP, str(shown.id), style="primary"),
                button("Can't make it", ACTION_CANT_MAKE_IT, str(shown.id)),
                block_id=f"session_{shown.id}",
            ),
        ],
    )


def announced_text(shown: SessionShown, channels: list[str]) -> str:
    """To the host: what was announced and where (channels the host ran the command in or public ones)."""
    where = ", ".join(f"<#{channel}>" for channel in channels) if channels else "nowhere yet"
    return (
        f":teacher: Announced *{_title(shown)}* for {slack_date(shown.starts_at)} in {where}. People sign up with "
        "the button; they get a reminder 15 minutes before, and afterwards I'll ask you for your notes or a "
        "recording link. `/teach sessions` lists it, with a button to cancel."
    )


def sessions_list(sessions: list[SessionShown], viewer_id: str) -> Message:
    """`/teach sessions`: the upcoming ones, a Cancel button on the viewer's own."""
    if not sessions:
        return Message(
            text="No upcoming sessions",
            blocks=[section("No lunch-and-learn sessions coming up. " + USAGE)],
        )
    blocks: list[Block] = [header("Upcoming lunch-and-learn sessions")]
    for shown in sessions[:MAX_LISTED]:
        line = _line(shown) + f"\n{shown.going} signed up"
        accessory = button("Cancel", ACTION_CANCEL, str(shown.id)) if shown.host_id == viewer_id else None
        blocks.append(section(line, accessory=accessory))
    blocks.append(context(USAGE))
    return Message(text=f"{len(sessions)} upcoming sessions", blocks=blocks)


def reminder(shown: SessionShown) -> Message:
    text = (
        f":alarm_clock: Starting {slack_date(shown.starts_at, '{time}')}: *{_title(shown)}* on `#{shown.tag}`, "
        f"hosted by {mention(shown.host_id)}."
    )
    return Message(text=f"Reminder: {truncate(shown.title, TITLE_CHARS)} starts soon", blocks=[section(text)])


def cancelled_dm(shown: SessionShown) -> Message:
    text = (
        f":no_entry: *{_title(shown)}* on `#{shown.tag}` ({slack_date(shown.starts_at)}) was cancelled by "
        f"{mention(shown.host_id)}. Nothing to do on your side."
    )
    return Message(text=f"Cancelled: {truncate(shown.title, TITLE_CHARS)}", blocks=[section(text)])


def notes_request(shown: SessionShown) -> Message:
    text = (
        f":books: Thanks for hosting *{_title(shown)}* ({shown.going} signed up)! Share your notes or the "
        f"recording link: they become a lesson on `#{shown.tag}`, found by `/ask search` and in digests."
    )
    return Message(
        text="Share the notes of your session",
        blocks=[section(text, accessory=button("Share notes", ACTION_SHARE_NOTES, str(shown.id), style="primary"))],
    )


def notes_modal(shown: SessionShown) -> Block:
    return modal(
        NOTES_MODAL,
        "Session notes",
        "Save as lesson",
        [
            section(f"*{_title(shown)}* on `#{shown.tag}`"),
            {
                "type": "input",
                "block_id": NOTES_BLOCK,
                "label": plain("Notes or recording link"),
                "element": {
                    "type": "plain_text_input",
                    "action_id": NOTES_INPUT,
                    "multiline": True,
                    "max_length": 3000,
                    "placeholder": plain("What we covered, the slides, the recording: https://…"),
                },
            },
        ],
        private_metadata=str(shown.id),
    )


def lesson_text(title: str, notes: str) -> str:
    """The lesson a session's notes become (raw text, as lessons are stored)."""
    return f"Lunch and learn: {title}\n{notes}"


def home_sessions(sessions: list[SessionShown]) -> list[Block]:
    """App Home, for everyone: one section listing the upcoming sessions (none: nothing)."""
    if not sessions:
        return []
    lines = [f"• {_line(shown)}" for shown in sessions[:MAX_HOME_SESSIONS]]
    return [section("*Upcoming lunch-and-learn sessions*\n" + "\n".join(lines))]


def home_proposals(proposals: list[Proposal]) -> list[Block]:
    """App Home, admins: knowledge gaps nobody has run a session on, each with "Invite" (at most 4 blocks)."""
    if not proposals:
        return []
    blocks: list[Block] = [
        context(
            ':teacher: *Propose a session*: nobody has run one on these knowledge gaps. "Invite" DMs the top '
            "experts for the tag."
        )
    ]
    for proposal in proposals[:MAX_PROPOSALS]:
        blocks.append(
            section(
                f"`#{proposal.tag}`: {escape_mrkdwn(proposal.reason)}",
                accessory=button("Invite", ACTION_INVITE, proposal.tag),
            )
        )
    return blocks


def digest_proposal(tag: str) -> str:
    return f"Nobody has run a session on `#{tag}`: invite an expert (`/teach session #{tag} <title> <when>`)."


def invitation(tag: str, admin_id: str, reason: str) -> Message:
    text = (
        f":teacher: {mention(admin_id)} thinks you'd be great to run a lunch-and-learn on `#{tag}` "
        f"({escape_mrkdwn(reason)}). Pick a time: `/teach session #{tag} <title> <when>`, e.g. "
        f"`/teach session #{tag} Getting started thu 12:30`."
    )
    return Message(text=f"Would you run a session on #{tag}?", blocks=[section(text)])


def invited_note(tag: str, invited: list[str], already: list[str]) -> str:
    parts = []
    if invited:
        parts.append(f"Invited {', '.join(mention(u) for u in invited)} to run a session on #{tag}.")
    if already:
        parts.append(f"Already invited: {', '.join(mention(u) for u in already)}.")
    if not parts:
        parts.append(f"Nobody has shown expertise in #{tag} yet, so nobody could be invited.")
    return " ".join(parts)
