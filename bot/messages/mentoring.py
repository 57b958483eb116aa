"""Every word of mentoring: the replies to `/teach mentor` and `/ask mentor`, the group DM's introduction,
check-in and thank-you, the App Home's "Mentoring" section and the digest's line naming mentors. Pure.

Buttons carry the pairing's id as their value; the check-in's and the Home's share the action ids below.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from bot.messages.blocks import Block, Message, actions, button, context, divider, mention, section
from bot.text import escape_mrkdwn, format_tags, truncate

ACTION_STILL_MEETING = "mentoring_still_meeting"
ACTION_END = "mentoring_end"
ACTION_PAUSE = "mentoring_pause"
ACTION_RESUME = "mentoring_resume"

MAX_HOME_PAIRINGS = 3  # the Home section: 2 blocks + 2 per pairing = at most 8
MAX_DIGEST_MENTORS = 10
REASON_CHARS = 400

OFFER_USAGE = (
    "To offer mentoring, name your topics and, if you like, how many people at once: "
    "`/teach mentor #postgres #ops up to 2 people`."
)
REQUEST_USAGE = "To find a mentor, name the topic: `/ask mentor #postgres`."


def capacity_error(most: int) -> str:
    return f"You can mentor from 1 to {most} people at once: `/teach mentor #postgres up to 2 people`."


def offer_saved(tags: list[str], capacity: int) -> str:
    people = "1 person" if capacity == 1 else f"{capacity} people"
    return (
        f":seedling: Thank you! You offer to mentor on {format_tags(tags)}, up to {people} at once. "
        f"When someone asks with `/ask mentor #{tags[0]}`, I'll introduce you in a group DM. "
        "App Home lists your mentees."
    )


def already_waiting(tag: str) -> str:
    return f"You already asked for a mentor on `#{tag}`: I'll introduce you as soon as one is free."


def already_paired(tag: str, mentor_id: str) -> str:
    return f"You already have a mentor on `#{tag}`: {mention(mentor_id)}. App Home lists your pairings."


def waiting_text(tag: str) -> str:
    return (
        f":hourglass_flowing_sand: No mentor on `#{tag}` is free right now. Your request is saved: I'll introduce "
        f"you as soon as someone offers (`/teach mentor #{tag}`) or a mentor has room again."
    )


def matched_text(tag: str, mentor_id: str) -> str:
    return f":handshake: I introduced you to {mention(mentor_id)}, your mentor on `#{tag}`, in a group DM."


def intro_message(
    *, mentor_id: str, mentee_id: str, tag: str, reason: str, check_in_days: int, ends_at: datetime
) -> Message:
    why = truncate(escape_mrkdwn(reason), REASON_CHARS)
    text = f"{mention(mentee_id)}, meet {mention(mentor_id)}: your mentor on #{tag}"
    return Message(
        text=text,
        blocks=[
            section(
                f":handshake: {mention(mentee_id)}, meet {mention(mentor_id)}: your mentor on `#{tag}`.\n"
                f"*Why you two*: {why}."
            ),
            section(
                f"*A first step*: {mention(mentee_id)}, suggest a 30-minute call this week and bring one thing "
                f"about `#{tag}` you'd like to get better at; {mention(mentor_id)}, share how you learned it."
            ),
            context(
                f"I'll check in after {check_in_days} days. The mentoring runs until {ends_at:%d %b %Y}; "
                "either of you can pause or end it from PeerLearn's App Home."
            ),
        ],
    )


def check_in_message(pairing_id: int, mentor_id: str, mentee_id: str, tag: str, days: int) -> Message:
    value = str(pairing_id)
    return Message(
        text=f"Still meeting? A check-in on your #{tag} mentoring",
        blocks=[
            section(
                f":wave: {mention(mentor_id)} {mention(mentee_id)}, it's been {days} days since I introduced you "
                f"on `#{tag}`. Are you still meeting?"
            ),
            actions(
                button("Still meeting", ACTION_STILL_MEETING, value, style="primary"),
                button("We're done", ACTION_END, value),
                button("Pause", ACTION_PAUSE, value),
                block_id=f"mentoring_checkin_{pairing_id}",
            ),
        ],
    )


def still_meeting_message(user_id: str, tag: str) -> Message:
    text = f":white_check_mark: {mention(user_id)}: still meeting on `#{tag}`. Keep it up!"
    return Message(text=f"Still meeting on #{tag}", blocks=[section(text)])


def thank_you_message(mentor_id: str, mentee_id: str, tag: str, ended_by: str | None) -> Message:
    how = f"{mention(ended_by)} ended it" if ended_by else "its time is up"
    text = (
        f":tada: This mentoring on `#{tag}` is over ({how}). Thank you {mention(mentor_id)} for sharing what you "
        f"know, and {mention(mentee_id)} for learning in the open! Ask for another mentor any time with "
        f"`/ask mentor #tag`."
    )
    return Message(text=f"Thank you for mentoring on #{tag}", blocks=[section(text)])


def paused_message(user_id: str, tag: str) -> Message:
    text = (
        f":double_vertical_bar: {mention(user_id)} paused this mentoring on `#{tag}`: no check-ins meanwhile. "
        "Resume it from PeerLearn's App Home."
    )
    return Message(text=f"Mentoring on #{tag} paused", blocks=[section(text)])


def resumed_message(user_id: str, tag: str) -> Message:
    text = f":arrow_forward: {mention(user_id)} resumed this mentoring on `#{tag}`."
    return Message(text=f"Mentoring on #{tag} resumed", blocks=[section(text)])


# --- App Home ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PairingLine:
    pairing_id: int
    partner_id: str
    i_mentor: bool  # True: the person mentors the partner
    tag: str
    paused: bool
    ends_at: datetime


@dataclass(frozen=True)
class MentoringHome:
    pairings: list[PairingLine]
    offered: list[str]  # tags the person offers to mentor on
    capacity: int
    waiting: list[str]  # tags the person waits for a mentor on


def home_section(data: MentoringHome | None) -> list[Block]:
    """At most 2 + 2 * MAX_HOME_PAIRINGS blocks; none when the person has nothing to do with mentoring."""
    if data is None or not (data.pairings or data.offered or data.waiting):
        return []
    summary = ["*Mentoring*"]
    if data.offered:
        summary.append(f"You offer to mentor on {format_tags(data.offered)}, up to {data.capacity} at once.")
    if data.waiting:
        summary.append(f"Waiting for a mentor on {format_tags(data.waiting)}.")
    if not data.pairings:
        summary.append("No pairing yet.")
    shown = data.pairings[:MAX_HOME_PAIRINGS]
    if len(data.pairings) > len(shown):
        summary.append(
            f"_Showing {len(shown)} of your {len(data.pairings)} pairings; and {len(data.pairings) - len(shown)} more._"
        )
    content = [divider(), section("\n".join(summary))]
    for line in shown:
        role = "You mentor" if line.i_mentor else "Your mentor is"
        state = " · :double_vertical_bar: paused" if line.paused else ""
        content.append(
            section(f"{role} {mention(line.partner_id)} on `#{line.tag}` · until {line.ends_at:%d %b %Y}{state}")
        )
        value = str(line.pairing_id)
        toggle = (
            button("Resume", ACTION_RESUME, value, style="primary")
            if line.paused
            else button("Pause", ACTION_PAUSE, value)
        )
        content.append(actions(toggle, button("End", ACTION_END, value), block_id=f"home_mentoring_{line.pairing_id}"))
    return content


# --- digests and knowledge gaps -------------------------------------------------------------------------------


def mentors_line(mentors: list[tuple[str, list[str]]]) -> str | None:
    """The digest's recognition: who mentors, and on what (mentors, each with their tags)."""
    if not mentors:
        return None
    shown = [f"{mention(user_id)} ({format_tags(tags)})" for user_id, tags in mentors[:MAX_DIGEST_MENTORS]]
    more = len(mentors) - len(shown)
    others = f" and {more} more" if more > 0 else ""
    return ":seedling: *Mentoring on these topics*: " + ", ".join(shown) + others + ". Thank you for mentoring!"


def mentor_demand_text(tag: str, waiting: int) -> str:
    return f"`#{tag}` — {waiting} waiting for a mentor" if waiting != 1 else f"`#{tag}` — 1 person waiting for a mentor"


def mentor_demand_line(demand: list[tuple[str, int]]) -> str:
    """The admin's knowledge gaps: tags people wait for a mentor on."""
    shown = ", ".join(f"`#{tag}` ({waiting})" for tag, waiting in demand[:MAX_DIGEST_MENTORS])
    more = f" and {len(demand) - MAX_DIGEST_MENTORS} more" if len(demand) > MAX_DIGEST_MENTORS else ""
    return f":seedling: *Waiting for a mentor*: {shown}{more}. `/teach mentor #tag` offers to mentor."
