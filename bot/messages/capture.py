"""The words of the two message shortcuts (issue 20, section 1): "Ask PeerLearn about this" (the /ask form,
prefilled, with a note on where the message is from) and "Save as knowledge" (its form and what it answers).
Pure builders; the shortcuts' callback ids and the form's block ids."""

from __future__ import annotations

from collections.abc import Collection, Sequence

from bot.capture import MAX_KEPT_REPLIES, MAX_TITLE_CHARS, ThreadMessage
from bot.messages.blocks import Block, context, mention, modal, mrkdwn, plain, quote, section
from bot.text import MAX_TAGS, escape_mrkdwn, format_tags, truncate

ASK_ABOUT_SHORTCUT = "peerlearn_ask_about_message"  # manifest.yml: "Ask PeerLearn about this"
SAVE_SHORTCUT = "peerlearn_save_as_knowledge"  # manifest.yml: "Save as knowledge"
SAVE_MODAL = "save_knowledge_modal"
SAVE_BLOCK_TITLE = "title"
SAVE_BLOCK_TAGS = "tags"
SAVE_BLOCK_REPLIES = "replies"
SAVE_ACTION_INPUT = "value"

OPTION_CHARS = 75  # Block Kit: an option's text
FIRST_MESSAGE_CHARS = 1200

TITLE_MISSING = "Give the lesson a title: what would someone search for?"
READ_FAILED = "I couldn't read the thread just now. Please press Save again in a moment."
THREAD_GONE = (
    "That message was deleted (or I was removed from the channel), so there is nothing to save. Cancel to close."
)
ALREADY_A_LESSON = "This message is a lesson PeerLearn posted: it is searchable already."


def about_note(*, author_id: str | None, permalink: str | None, channel_id: str, can_post: bool, private: bool) -> str:
    """The line at the top of the prefilled /ask form: which message it is about, and where it can go."""
    what = f"<{permalink}|this message>" if permalink else "this message"
    by = f" by {mention(author_id)}" if author_id else ""
    note = f":speech_balloon: Asking about {what}{by}. Edit the question as you like; its author is credited."
    if private:
        note += (
            "\n:lock: It is from a private conversation: whoever can read the channel you pick will see your "
            "question, so leave out what isn't meant for them."
        )
    if not can_post:
        note += (
            f"\n:warning: I'm not in <#{channel_id}>, so I can't post there. Pick a channel I'm in below, or "
            "invite me there first with `/invite @PeerLearn` (your question is kept in this form meanwhile)."
        )
    return note


def cannot_read(channel_id: str, *, direct: bool) -> str:
    """Why a thread cannot be saved: a direct message (PeerLearn saves from channels), or a channel it cannot
    read."""
    if direct:
        return (
            "I can only save threads from channels, not from direct messages. Post it in a channel (or ask me "
            "there with “Ask PeerLearn about this”) and save it from there."
        )
    return (
        f"I can't read <#{channel_id}>, so I can't save that thread. Invite me there with `/invite @PeerLearn`, "
        "then try “Save as knowledge” again."
    )


def cannot_open(reason: str) -> str:
    return f"{reason}\nNothing was saved; please try the shortcut again."


def _reply_option(message: ThreadMessage) -> Block:
    who = f"{mention(message.user_id)}: " if message.user_id else ""
    body = " ".join(message.text.split())
    return {"text": mrkdwn(truncate(who + escape_mrkdwn(body), OPTION_CHARS)), "value": message.ts[:150]}


def save_modal(
    *,
    first: ThreadMessage,
    replies: Sequence[ThreadMessage],
    total_replies: int,
    title: str,
    tags: Sequence[str],
    kept: Collection[str] | None,
    already_saved: bool,
    private: bool,
    private_metadata: str,
) -> Block:
    """The "Save as knowledge" form: the thread's first message (always kept), a title, tags, and which of the
    first MAX_KEPT_REPLIES replies to keep (all ticked, or those kept last time)."""
    blocks: list[Block] = []
    if already_saved:
        blocks.append(context(":bookmark: This thread is saved already: saving it again updates its lesson."))
    by = f"*{mention(first.user_id)}* wrote:" if first.user_id else "*The message:*"
    blocks.append(section(f"{by}\n{quote(first.text, FIRST_MESSAGE_CHARS)}"))
    title_element: Block = {
        "type": "plain_text_input",
        "action_id": SAVE_ACTION_INPUT,
        "max_length": MAX_TITLE_CHARS,
        "placeholder": plain("How to vacuum a big table without locking it"),
    }
    if title:
        title_element["initial_value"] = title[:MAX_TITLE_CHARS]
    tags_element: Block = {
        "type": "plain_text_input",
        "action_id": SAVE_ACTION_INPUT,
        "placeholder": plain("#postgres #ops"),
    }
    if tags:
        tags_element["initial_value"] = " ".join(f"#{tag}" for tag in tags)
    blocks += [
        {"type": "input", "block_id": SAVE_BLOCK_TITLE, "label": plain("Title"), "element": title_element},
        {
            "type": "input",
            "block_id": SAVE_BLOCK_TAGS,
            "optional": True,
            "label": plain("Tags"),
            "hint": plain(f"Words after #, e.g. #postgres #ops (up to {MAX_TAGS}): they help people find it."),
            "element": tags_element,
        },
    ]
    shown = list(replies)[:MAX_KEPT_REPLIES]
    if shown:
        options = [_reply_option(m) for m in shown]
        ticked = [o for o, m in zip(options, shown, strict=True) if kept is None or m.ts in kept]
        element: Block = {"type": "checkboxes", "action_id": SAVE_ACTION_INPUT, "options": options}
        if ticked:
            element["initial_options"] = ticked
        blocks.append(
            {
                "type": "input",
                "block_id": SAVE_BLOCK_REPLIES,
                "optional": True,
                "label": plain("Replies to keep"),
                "element": element,
            }
        )
    if total_replies > len(shown):
        blocks.append(
            context(
                f"Showing the first {len(shown)} of {total_replies:,} replies: only these can be kept. "
                "Later replies are not saved."
            )
        )
    if private:
        blocks.append(context(":lock: From a private conversation: the lesson is found only from there."))
    return modal(
        SAVE_MODAL,
        "Save as knowledge",
        "Save",
        blocks,
        private_metadata=private_metadata,
    )


def saved_text(
    *, title: str, created: bool, permalink: str | None, authors: Sequence[str], tags: Sequence[str], private: bool
) -> str:
    """What the person who saved a thread is told (only them)."""
    what = "Saved" if created else "Updated"
    link = f" (<{permalink}|the thread>)" if permalink else ""
    credit = ", ".join(mention(a) for a in authors) or "its authors"
    lines = [
        f":bookmark: {what} as a lesson: *{escape_mrkdwn(truncate(title, MAX_TITLE_CHARS))}*{link}, "
        f"credited to {credit}.",
    ]
    if tags:
        lines.append(format_tags(list(tags)))
    where = "from that private conversation only" if private else "by everyone"
    lines.append(f"It is found with `/ask search`, {where}, and shows in the channel's weekly digest.")
    return "\n".join(lines)
