"""Every Block Kit payload PeerLearn sends, as pure functions.

Limits (Slack's): 50 blocks per message, 100 per modal/Home; section text 3,000 characters, header 150,
button text 75. The small builders below enforce them by truncating with a visible "…", so a long
question never makes a post fail.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, tzinfo
from typing import Any

from bot.text import MAX_QUESTION_CHARS, escape_mrkdwn, format_tags, truncate
from models.expert import FORGOTTEN_USER_ID

Block = dict[str, Any]

MAX_MESSAGE_BLOCKS = 50
MAX_VIEW_BLOCKS = 100
SECTION_LIMIT = 3000
HEADER_LIMIT = 150
BUTTON_LIMIT = 75
FALLBACK_LIMIT = 300

# Action and view ids: one name per thing a person can click or submit.
ASK_MODAL = "ask_modal"
ASK_BLOCK_QUESTION = "question"
ASK_BLOCK_TAGS = "tags"
ASK_BLOCK_CHANNEL = "channel"
ASK_ACTION_INPUT = "value"
# Routing DMs and the App Home share these: one handler serves a button wherever it is shown.
ACTION_TAKE_QUESTION = "route_take"  # "I'll take it" (value: question id)
ACTION_DECLINE_QUESTION = "route_decline"  # "Not me" (value: question id)
ACTION_SIMILAR_ANSWERS_IT = "similar_answers_it"  # "This answers it" (value: "question id:kind:ref id")
ACTION_SIMILAR_STILL_NEED_HELP = "similar_still_need_help"  # "Still need help" (value: question id)


@dataclass(frozen=True)
class Message:
    text: str  # notification fallback, also what screen readers get
    blocks: list[Block] = field(default_factory=list)

    def as_kwargs(self) -> dict[str, Any]:
        return {"text": self.text, "blocks": self.blocks[:MAX_MESSAGE_BLOCKS]}


# --- builders -------------------------------------------------------------------------------


def mention(user_id: str) -> str:
    """A user mention, or "a former member" for someone whose data was erased (forget-user)."""
    return "a former member" if user_id == FORGOTTEN_USER_ID else f"<@{user_id}>"


def mrkdwn(text: str) -> dict[str, str]:
    return {"type": "mrkdwn", "text": truncate(text, SECTION_LIMIT) or " "}


def plain(text: str, limit: int = SECTION_LIMIT) -> dict[str, Any]:
    return {"type": "plain_text", "text": truncate(text, limit) or " ", "emoji": True}


def section(text: str, accessory: Block | None = None) -> Block:
    block: Block = {"type": "section", "text": mrkdwn(text)}
    if accessory:
        block["accessory"] = accessory
    return block


def header(text: str) -> Block:
    return {"type": "header", "text": plain(text, HEADER_LIMIT)}


def context(*texts: str) -> Block:
    return {"type": "context", "elements": [mrkdwn(t) for t in texts[:10]]}


def divider() -> Block:
    return {"type": "divider"}


def button(text: str, action_id: str, value: str = "", style: str | None = None) -> Block:
    element: Block = {"type": "button", "text": plain(text, BUTTON_LIMIT), "action_id": action_id}
    if value:
        element["value"] = value[:2000]
    if style:
        element["style"] = style
    return element


def actions(*elements: Block, block_id: str | None = None) -> Block:
    block: Block = {"type": "actions", "elements": list(elements[:25])}
    if block_id:
        block["block_id"] = block_id
    return block


def fit_view_blocks(blocks: list[Block], more_text: str = "…and more") -> list[Block]:
    """Keep a modal or Home tab within 100 blocks, saying so when something was left out."""
    if len(blocks) <= MAX_VIEW_BLOCKS:
        return blocks
    return [*blocks[: MAX_VIEW_BLOCKS - 1], context(more_text)]


# --- the question in its channel --------------------------------------------------------------


def question_message(
    *,
    asker_id: str,
    text: str,
    tags: list[str] | tuple[str, ...],
    resolved_by: str | None = None,
    answer_link: str | None = None,
    answered_earlier: str | None = None,
) -> Message:
    """The question as posted in the channel; with `resolved_by`, as updated once an answer is accepted; with
    `answered_earlier` ("question" or "lesson"), once the asker said an earlier one answers it (its link in
    `answer_link`)."""
    body = escape_mrkdwn(text)
    blocks: list[Block] = []
    if resolution := resolution_text(resolved_by, answer_link, answered_earlier):
        blocks.append(section(resolution))
    blocks += [
        section(f":raising_hand: *{mention(asker_id)} asks:*\n{body}"),
        context(
            *([format_tags(tags)] if tags else []),
            "Answer in the thread :thread:  ·  the asker marks the best answer with :white_check_mark:",
        ),
    ]
    status = "Resolved question" if resolved_by or answered_earlier else "Question"
    return Message(text=truncate(f"{status} from {mention(asker_id)}: {body}", FALLBACK_LIMIT), blocks=blocks)


def resolution_text(resolved_by: str | None, answer_link: str | None, answered_earlier: str | None) -> str | None:
    """How a question was resolved, as its channel message and its routing DMs say it: an accepted answer (by
    `resolved_by`), or an earlier question or lesson (`answered_earlier`); `answer_link` leads to it."""
    if resolved_by:
        link = f" · <{answer_link}|see the accepted answer>" if answer_link else ""
        return f":white_check_mark: *Resolved* — answer by {mention(resolved_by)}{link}"
    if answered_earlier:
        what = "a lesson" if answered_earlier == "lesson" else "an earlier question"
        link = f" · <{answer_link}|see it>" if answer_link else ""
        return f":white_check_mark: *Resolved* — answered by {what}{link}"
    return None


# --- ephemeral help and errors -----------------------------------------------------------------

ASK_USAGE = (
    "*Ask your colleagues with* `/ask`\n"
    "• `/ask How do I vacuum a big table? #postgres #ops` posts your question here; answers go in its thread.\n"
    "• `/ask` alone opens a form (question, tags, channel).\n"
    "• Mark the answer that solved it with :white_check_mark:; anyone can vote an answer helpful with "
    ":+1: :bulb: :pray:.\n"
    "• `/ask digest on|off|preview|at fri 16:00 Europe/Berlin` manages this channel's weekly digest.\n"
    "• Tags are words after `#`, e.g. `#postgres`. Questions stay under "
    f"{MAX_QUESTION_CHARS:,} characters; put long details in the thread."
)

TEACH_USAGE = (
    "*Share what you know with* `/teach`\n"
    "• `/teach #postgres #kubernetes` makes you a go-to person for those topics: matching questions reach you "
    "by DM, within your working hours and a daily cap.\n"
    "• `/teach #git Use git bisect to find the commit that broke a test` shares a lesson in this channel.\n"
    "• `/teach list` shows your topics, `/teach remove #x` drops one, `/teach pause 7d` and `/teach resume` "
    "take a break and come back, `/teach` alone opens a form to edit your topics."
)


def ephemeral(text: str) -> Message:
    return Message(text=truncate(text, FALLBACK_LIMIT), blocks=[section(text)])


def quote_back(text: str, limit: int = 2500) -> str:
    """The person's own words, quoted, so a refused request loses nothing."""
    body = truncate(escape_mrkdwn(text.strip()), limit)
    return "\n\nHere is what you wrote, so nothing is lost:\n```" + body + "```" if body else ""


def help_message(usage: str) -> Message:
    return Message(text=usage.splitlines()[0].strip("*"), blocks=[section(usage)])


# --- the /ask form -----------------------------------------------------------------------------


def ask_modal(channel_id: str | None, question: str = "", private_metadata: str = "") -> Block:
    channel_element: Block = {
        "type": "conversations_select",
        "action_id": ASK_ACTION_INPUT,
        "filter": {"include": ["public", "private"], "exclude_bot_users": True},
        "placeholder": plain("Where should the question go?"),
    }
    if channel_id:
        channel_element["initial_conversation"] = channel_id
    question_element: Block = {
        "type": "plain_text_input",
        "action_id": ASK_ACTION_INPUT,
        "multiline": True,
        "max_length": min(MAX_QUESTION_CHARS, 3000),
        "placeholder": plain("How do I vacuum a big table without locking it?"),
    }
    if question:
        question_element["initial_value"] = question[:3000]
    return {
        "type": "modal",
        "callback_id": ASK_MODAL,
        "private_metadata": private_metadata[:3000],
        "title": plain("Ask a question", 24),
        "submit": plain("Ask", 24),
        "close": plain("Cancel", 24),
        "blocks": [
            {
                "type": "input",
                "block_id": ASK_BLOCK_QUESTION,
                "label": plain("Your question"),
                "element": question_element,
            },
            {
                "type": "input",
                "block_id": ASK_BLOCK_TAGS,
                "optional": True,
                "label": plain("Tags"),
                "hint": plain("Words after #, e.g. #postgres #ops: they bring your question to the right people."),
                "element": {
                    "type": "plain_text_input",
                    "action_id": ASK_ACTION_INPUT,
                    "placeholder": plain("#postgres #ops"),
                },
            },
            {
                "type": "input",
                "block_id": ASK_BLOCK_CHANNEL,
                "label": plain("Channel"),
                "element": channel_element,
            },
        ],
    }


# --- /teach ----------------------------------------------------------------------------------

TEACH_MODAL = "teach_modal"
TEACH_BLOCK_TOPICS = "topics"


def lesson_message(*, author_id: str, text: str, tags: list[str] | tuple[str, ...]) -> Message:
    body = escape_mrkdwn(text)
    return Message(
        text=truncate(f"Lesson from {mention(author_id)}: {body}", FALLBACK_LIMIT),
        blocks=[
            section(f":bulb: *{mention(author_id)} shares a lesson:*\n{body}"),
            context(*([format_tags(tags)] if tags else []), "Found it useful? React with :+1: or :bulb:"),
        ],
    )


def topics_text(tags: list[str], paused_until: str | None = None) -> str:
    if not tags:
        return "You are not a go-to person for any topic yet. `/teach #postgres #kubernetes` changes that."
    lines = [f"You are a go-to person for {format_tags(tags)}."]
    if paused_until:
        lines.append(f":zzz: Questions are paused until {paused_until}; `/teach resume` to come back sooner.")
    lines.append("`/teach remove #x` drops a topic; `/teach` alone opens a form to edit them.")
    return "\n".join(lines)


def teach_modal(current_tags: list[str]) -> Block:
    element: Block = {
        "type": "plain_text_input",
        "action_id": ASK_ACTION_INPUT,
        "placeholder": plain("#postgres #kubernetes"),
    }
    if current_tags:
        element["initial_value"] = " ".join(f"#{tag}" for tag in current_tags)[:3000]
    return {
        "type": "modal",
        "callback_id": TEACH_MODAL,
        "title": plain("My topics", 24),
        "submit": plain("Save", 24),
        "close": plain("Cancel", 24),
        "blocks": [
            section("Questions with these tags can reach you by DM, within your working hours and a daily cap."),
            {
                "type": "input",
                "block_id": TEACH_BLOCK_TOPICS,
                "optional": True,
                "label": plain("Topics"),
                "hint": plain("Words after #, separated by spaces. Leave empty to stop being a go-to person."),
                "element": element,
            },
        ],
    }


# --- routing DMs, similar-question suggestions, escalation ------------------------------------

ROUTE_OPEN = "open"  # the expert has not answered the DM yet: it shows the buttons
ROUTE_TAKEN_NOTE = ":raised_hands: You're on it, thanks! Answer in the question's thread."
ROUTE_DECLINED_NOTE = ":ok_hand: Got it, I'll ask someone else."
ROUTE_CLOSED_NOTE = ":white_check_mark: This question was resolved meanwhile; nothing to do."
QUOTE_LIMIT = 1500
SNIPPET_LIMIT = 400


def quote(text: str, limit: int = QUOTE_LIMIT) -> str:
    """User text as a mrkdwn block quote: escaped, shortened with "…", every line quoted."""
    return "\n".join("> " + line for line in truncate(escape_mrkdwn(text.strip()), limit).splitlines() or [""])


@dataclass(frozen=True)
class RoutedQuestion:
    """One question in a routing DM, and where the expert stands with it."""

    question_id: int
    asker_id: str
    channel_id: str
    text: str
    tags: tuple[str, ...] = ()
    reason: str = ""  # why this expert was picked (bot.routing's reason)
    link: str | None = None  # chat.getPermalink of the question
    state: str = ROUTE_OPEN  # ROUTE_OPEN, or one of the *_NOTE texts once they answered or it closed
    resolution: str | None = None  # resolution_text once the question is resolved: it replaces the state


def _routed_blocks(item: RoutedQuestion) -> list[Block]:
    content: list[Block] = [
        section(f":wave: {mention(item.asker_id)} asked in <#{item.channel_id}>:\n{quote(item.text)}")
    ]
    notes = [format_tags(item.tags)] if item.tags else []
    if item.reason:
        notes.append("Why you: " + truncate(escape_mrkdwn(item.reason), 500))
    if notes:
        content.append(context(*notes))
    if item.link:
        after = "" if item.resolution else " and answer in its thread"
        content.append(section(f"<{item.link}|Open the question>{after}."))
    if item.resolution:
        content.append(section(item.resolution))
    elif item.state == ROUTE_OPEN:
        content.append(
            actions(
                button("I'll take it", ACTION_TAKE_QUESTION, str(item.question_id), style="primary"),
                button("Not me", ACTION_DECLINE_QUESTION, str(item.question_id)),
                block_id=f"route_{item.question_id}",
            )
        )
    else:
        content.append(context(item.state))
    return content


def route_dm(items: list[RoutedQuestion] | tuple[RoutedQuestion, ...]) -> Message:
    """The DM asking an expert to look at one question, or a summary of several (the daily summary)."""
    if len(items) == 1:
        item = items[0]
        fallback = f"{mention(item.asker_id)} asked a question you may know the answer to: {escape_mrkdwn(item.text)}"
        return Message(text=truncate(fallback, FALLBACK_LIMIT), blocks=_routed_blocks(item))
    content: list[Block] = [header(f"{len(items)} questions you may know the answer to")]
    for number, item in enumerate(items):
        if number:
            content.append(divider())
        content += _routed_blocks(item)
    return Message(text=f"{len(items)} questions you may know the answer to", blocks=content)


@dataclass(frozen=True)
class SimilarItem:
    """An earlier answered question, or a lesson, that may answer a new question."""

    kind: str  # "question" or "lesson" (bot.search.KIND_*)
    ref_id: int
    text: str
    author_id: str  # who asked it, or wrote the lesson
    answer_text: str | None = None
    answer_user_id: str | None = None
    link: str | None = None


def similar_answer_value(question_id: int, item: SimilarItem) -> str:
    return f"{question_id}:{item.kind}:{item.ref_id}"


def similar_suggestions(question_id: int, items: list[SimilarItem], grace_minutes: int) -> Message:
    """The ephemeral that shows the asker earlier answers before anyone is pinged."""
    content: list[Block] = [section(":mag: *Before I ask anyone: these earlier answers look close to your question.*")]
    for item in items:
        link = f"\n<{item.link}|Open it>" if item.link else ""
        if item.kind == "lesson":
            body = f":bulb: *Lesson by {mention(item.author_id)}*\n{quote(item.text, SNIPPET_LIMIT)}{link}"
        else:
            body = f":speech_balloon: *Asked by {mention(item.author_id)}*\n{quote(item.text, SNIPPET_LIMIT)}"
            if item.answer_text is not None and item.answer_user_id:
                answer = truncate(escape_mrkdwn(item.answer_text.strip()), SNIPPET_LIMIT)
                body += f"\n:white_check_mark: *Accepted answer by {mention(item.answer_user_id)}:* {answer}"
            body += link
        content.append(section(body))
        content.append(
            actions(
                button("This answers it", ACTION_SIMILAR_ANSWERS_IT, similar_answer_value(question_id, item)),
                block_id=f"similar_{item.kind}_{item.ref_id}",
            )
        )
    content.append(
        actions(
            button("Still need help", ACTION_SIMILAR_STILL_NEED_HELP, str(question_id), style="primary"),
            block_id="similar_still_need_help",
        )
    )
    minutes = "1 minute" if grace_minutes == 1 else f"{grace_minutes} minutes"
    content.append(
        context(
            "If none of these helps, click *Still need help* and I'll look for people who know your topics; "
            f"otherwise I will in {minutes}. Either way I'll tell you who I ask, and when."
        )
    )
    return Message(text="Earlier answers that look close to your question", blocks=content)


def on_it_message(user_id: str) -> Message:
    """The note in a question's thread when an expert takes it."""
    note = f":raised_hands: {mention(user_id)} is on it"
    return Message(text=note, blocks=[context(note)])


def bump_message(tags: list[str] | tuple[str, ...]) -> Message:
    """A gentle reminder in the thread of a question nobody has answered yet. No mention, no broadcast."""
    about = f" about {format_tags(tags)}" if tags else ""
    text = (
        f":hourglass_flowing_sand: This question is still waiting for an answer. If you know something{about}, "
        "even a partial answer or a pointer in this thread helps."
    )
    return Message(text=truncate(text, FALLBACK_LIMIT), blocks=[section(text)])


def knowledge_gap_text(tags: list[str] | tuple[str, ...]) -> str:
    """What the asker hears when nobody has declared a topic of their question."""
    listed = format_tags(tags)
    first = tags[0] if tags else "topic"
    return (
        f":seedling: Nobody has declared {listed} yet, so there is no go-to person to ask. "
        f"Try pinging a channel where people know it, or ask someone who does to run `/teach #{first}`."
    )


def asker_alone_text(tags: list[str] | tuple[str, ...]) -> str:
    """What the asker hears when they are the only one who declared (or answered on) a topic of their question."""
    first = tags[0] if tags else "topic"
    return (
        f":seedling: You're the only go-to person for {format_tags(tags)} so far, so there's nobody else I can ask. "
        f"Once you've worked it out, `/teach #{first} <what you found>` shares it with the next person who "
        f"wonders; and if a colleague knows it too, ask them to run `/teach #{first}`."
    )


def asker_alone_here_text(tags: list[str] | tuple[str, ...], retry_hours: int) -> str:
    """What the asker hears in a private channel when the others who know a topic are not members of it."""
    return (
        f":lock: You're the only go-to person for {format_tags(tags)} in this private channel: the others who "
        "know it aren't members, so they can't see your question and I haven't asked them. Invite one of them, "
        f"and I'll ask them when I look again in {retry_hours} h if nobody has answered by then."
    )


def experts_busy_text(tags: list[str] | tuple[str, ...], retry_hours: int, private_channel: bool = False) -> str:
    """What the asker hears when the topic's people are paused, away, at their daily limit (or, for a private
    channel, not in it)."""
    why = "paused or have had enough questions today"
    if private_channel:
        why = "paused, not in this channel, or have had enough questions today"
    return (
        f":hourglass: The go-to people for {format_tags(tags)} are {why}, so I haven't pinged anyone yet. "
        f"I'll try again in {retry_hours} h if nobody has answered by then."
    )


# --- what the asker is told about routing ------------------------------------------------------

SOON_HOURS = 12  # further away than this, a time is said as a day and a part of it ("on Monday morning")


def roughly_when(now: datetime, moment: datetime, zone: tzinfo) -> str:
    """When `moment` comes, from `now`, as a person would say it: "now", "in about 40 minutes", "in about
    9 hours", then "tomorrow morning" or "on Monday morning" in `zone` (the reader's time zone)."""
    seconds = (moment - now).total_seconds()
    if seconds < 60:
        return "now"
    minutes = seconds / 60
    if minutes < 8:
        return "in a few minutes"
    if minutes < 55:
        return f"in about {int(minutes / 5 + 0.5) * 5} minutes"
    hours = int(minutes / 60 + 0.5)
    if hours < SOON_HOURS:
        return "in about an hour" if hours == 1 else f"in about {hours} hours"
    local, today = moment.astimezone(zone), now.astimezone(zone).date()
    days = (local.date() - today).days
    part = _part_of_day(local.hour)
    if days == 0:
        return "tonight" if part == "night" else f"this {part}"
    if days == 1:
        return f"tomorrow {part}"
    if days < 7:
        return f"on {local:%A} {part}"
    return f"on {local:%A} {local.day} {local:%B}"


def _part_of_day(hour: int) -> str:
    if hour < 5:
        return "early morning"
    if hour < 12:
        return "morning"
    if hour < 17:
        return "afternoon"
    if hour < 21:
        return "evening"
    return "night"


def people_list(user_ids: Sequence[str]) -> str:
    """ "<@A>", "<@A> and <@B>", "<@A>, <@B> and <@C>"."""
    names = [mention(user_id) for user_id in user_ids]
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def routing_plan_text(asked_now: Sequence[str], later: Sequence[tuple[str, str]]) -> str | None:
    """Who was asked about the asker's question now, and who will be and roughly when (`later`: each
    person with `roughly_when` their DM goes out, the start of their working day). None: nobody."""
    if not asked_now and not later:
        return None
    if not later:
        knows = "know" if len(asked_now) > 1 else "knows"
        return f":mag: I've asked {people_list(asked_now)}, who {knows} your topics."
    by_when: dict[str, list[str]] = {}
    for user_id, when in later:
        by_when.setdefault(when, []).append(user_id)
    clauses: list[str] = []
    for when, users in by_when.items():
        verb = "" if clauses else (" start their day" if len(users) > 1 else " starts their day")
        clauses.append(f"{people_list(users)}{verb} {when}")
    waiting = clauses[0] if len(clauses) == 1 else ", ".join(clauses[:-1]) + " and " + clauses[-1]
    then = "I'll ask them then" if len(by_when) == 1 else "I'll ask each of them then"
    if asked_now:
        return f":mag: I've asked {people_list(asked_now)} now. {waiting}. {then}."
    return f":crescent_moon: Nobody is pinged yet: {waiting}. {then}."


NO_TAGS_NOTE = (
    ":mag: Your question has no tags, so I can't tell who knows about it and haven't asked anyone. People in "
    "the channel can still answer in its thread; next time, a tag or two like `#postgres` brings it to them."
)
NOBODY_ASKED_NOTE = ":mag: I looked for people who know your topics, and nobody could be asked so far."
