"""What a digest says: the week's plain data (models.digest) turned into Block Kit, and its plain-text form.
Pure: no database, no Slack."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from bot.digest.schedule import Schedule
from bot.messages.blocks import SECTION_LIMIT, Block, Message, context, divider, header, mention, section
from bot.messages.mentoring import mentor_demand_text, mentors_line
from bot.messages.questions import answered_by_earlier_text, earlier_item_text
from bot.messages.sessions import digest_proposal
from bot.text import escape_mrkdwn, format_tags, truncate
from models.digest import AnsweredQuestion, DigestData, Listing
from models.question import EARLIER_LESSON

MAX_ITEMS = 10  # per section, before "…and N more"
ITEM_CHARS = 150


def permalink(base_url: str, channel_id: str, ts: str, thread_ts: str | None = None) -> str:
    """Slack's message permalink (what chat.getPermalink returns), built without a call per message."""
    link = f"{base_url.rstrip('/')}/archives/{channel_id}/p{ts.replace('.', '')}"
    if thread_ts and thread_ts != ts:
        link += f"?thread_ts={thread_ts}&cid={channel_id}"
    return link


def snippet(text: str, limit: int = ITEM_CHARS) -> str:
    """User text on one line, mention-safe, cut with "…"."""
    return truncate(escape_mrkdwn(" ".join(text.split())), limit)


def _link(base_url: str | None, channel_id: str, ts: str | None, label: str, thread_ts: str | None = None) -> str:
    return f" · <{permalink(base_url, channel_id, ts, thread_ts)}|{label}>" if base_url and ts else ""


def _tags(tags: tuple[str, ...]) -> str:
    return f" {format_tags(tags[:3])}" if tags else ""


def _plural(n: int, one: str, many: str | None = None) -> str:
    return f"{n} {one if n == 1 else (many or one + 's')}"


def _age(created_at: datetime, until: datetime) -> str:
    days = (until - created_at).days
    return "today" if days <= 0 else "yesterday" if days == 1 else f"{days} days ago"


def listing_section(title: str, lines: list[str], hidden: int = 0, footer: str = "") -> Block:
    """One section: a bold title and as many lines as fit in Slack's 3,000 characters, then "…and N more"."""
    reserve = len(footer) + 40
    text = f"*{title}*"
    shown = 0
    for line in lines:
        if len(text) + 1 + len(line) > SECTION_LIMIT - reserve:
            break
        text += "\n" + line
        shown += 1
    more = len(lines) - shown + hidden
    if more:
        text += f"\n_…and {more} more_"
    if footer:
        text += "\n" + footer
    return section(text)


def _period(data: DigestData, tz: ZoneInfo) -> str:
    first = data.since.astimezone(tz).date()
    last = (data.until - timedelta(seconds=1)).astimezone(tz).date()
    return f"{first:%b} {first.day} – {last:%b} {last.day}"


FOOTER = (
    "PeerLearn posts this digest weekly · `/ask digest preview` shows it now · "
    "`/ask digest at fri 16:00` moves it · `/ask digest off` stops it"
)


def build_digest(
    data: DigestData, *, tz: ZoneInfo, base_url: str | None = None, post_when_empty: bool = True
) -> Message | None:
    """The channel's week as a Block Kit message; None for an empty week when the channel wants nothing then.

    Everything shown comes from `data`, which holds only this channel's content (and, for a question the
    knowledge base answered, what answered it when that is in a public channel). Stays within Slack's
    limits: at most ~16 blocks, each section cut to 3,000 characters with "…and N more".
    """
    channel = data.channel_id
    top = [header("Weekly digest"), context(f"<#{channel}> · {_period(data, tz)}")]
    if data.is_empty:
        if not post_when_empty:
            return None
        note = (
            f":seedling: A quiet week in <#{channel}>: no questions, answers or lessons. Stuck on something? "
            "`/ask How do I …? #tag` asks your colleagues, and `/teach #tag …` shares what you know."
        )
        return Message(text=f"A quiet week in <#{channel}>", blocks=[*top, section(note), context(FOOTER)])

    summary = " · ".join(
        [
            f"*{_plural(data.asked, 'question')}* asked",
            f"*{data.answered.total}* answered",
            f"*{data.open.total}* still open",
            f"*{_plural(data.lessons.total, 'lesson')}* shared",
        ]
    )
    content: list[Block] = [*top, section(summary)]
    for part in (
        _answered(data, base_url),
        _open(data, base_url),
        _lessons(data, base_url),
        _helpers(data.helpers),
        _new_experts(data),
        _gaps(data.gaps, data.mentor_demand),
        _mentors(data),
    ):
        if part is not None:
            content += [divider(), part]
    content.append(context(FOOTER))
    fallback = (
        f"Weekly digest for <#{channel}>: {data.answered.total} answered, {data.open.total} still open, "
        f"{_plural(data.lessons.total, 'lesson')}"
    )
    return Message(text=fallback, blocks=content)


def _answered(data: DigestData, base_url: str | None) -> Block | None:
    listing = data.answered
    if not listing.items:
        return None
    lines = [
        f"• {snippet(q.text)}{_tags(q.tags)} — {_answered_by(q, data.channel_id, base_url)}" for q in listing.items
    ]
    footer = answered_by_earlier_text(data.answered_by_earlier) if data.answered_by_earlier else ""
    return listing_section(f":white_check_mark: Answered ({listing.total})", lines, listing.more, footer=footer)


def _answered_by(q: AnsweredQuestion, channel_id: str, base_url: str | None) -> str:
    """Who or what answered it, and a link to that answer: the accepted answer in its thread, or the earlier
    question's accepted answer (else the question) or the lesson the asker said answers it."""
    earlier = q.earlier
    if earlier is None:
        answer = f"answered by {mention(q.answerer_id)}" if q.answerer_id else "answered"
        return answer + _link(base_url, channel_id, q.answer_ts, "see the answer", thread_ts=q.message_ts)
    said = "answered by " + earlier_item_text(earlier.kind, earlier.author_id)
    if earlier.channel_id is None:
        return said
    if earlier.answer_ts:
        return said + _link(
            base_url, earlier.channel_id, earlier.answer_ts, "see the answer", thread_ts=earlier.message_ts
        )
    label = "read it" if earlier.kind == EARLIER_LESSON else "see it"
    return said + _link(base_url, earlier.channel_id, earlier.message_ts, label)


def _open(data: DigestData, base_url: str | None) -> Block | None:
    listing = data.open
    if not listing.items:
        return None
    lines = []
    for q in listing.items:
        replies = _plural(q.replies, "reply", "replies") if q.replies else "no replies yet"
        lines.append(
            f"• {snippet(q.text)}{_tags(q.tags)} — asked {_age(q.created_at, data.until)}, {replies}"
            + _link(base_url, data.channel_id, q.message_ts, "answer in the thread")
        )
    title = f":raising_hand: Still open, oldest first: can you help? ({listing.total})"
    return listing_section(title, lines, listing.more)


def _lessons(data: DigestData, base_url: str | None) -> Block | None:
    listing = data.lessons
    if not listing.items:
        return None
    lines = [
        f"• {snippet(lesson.text)}{_tags(lesson.tags)} — by {mention(lesson.author_id)}"
        + (f" · {_plural(lesson.helpful, 'helpful vote')}" if lesson.helpful else "")
        + _link(base_url, data.channel_id, lesson.message_ts, "read it")
        for lesson in listing.items
    ]
    return listing_section(f":books: Lessons shared ({listing.total})", lines, listing.more)


def _helpers(listing: Listing) -> Block | None:  # type: ignore[type-arg]
    if not listing.items:
        return None
    lines = []
    for rank, helper in enumerate(listing.items[:5], start=1):
        parts = [_plural(helper.accepted, "accepted answer")] if helper.accepted else []
        parts += [_plural(helper.helpful, "helpful answer")] if helper.helpful else []
        lines.append(f"{rank}. {mention(helper.user_id)} — {', '.join(parts)}")
    return listing_section(":star2: Top helpers", lines, listing.total - len(lines))


def _new_experts(data: DigestData) -> Block | None:
    listing = data.new_experts
    if not listing.items:
        return None
    lines = [
        f"• {mention(expert.user_id)} is now a go-to person for {format_tags(expert.tags)}" for expert in listing.items
    ]
    return listing_section(":mortar_board: New experts", lines, listing.more)


def _gaps(listing: Listing, mentor_demand: tuple[tuple[str, int], ...] = ()) -> Block | None:  # type: ignore[type-arg]
    if not listing.items and not mentor_demand:
        return None
    lines = [
        f"• `#{gap.tag}` — {_plural(gap.questions, 'question')}, nobody has declared it yet" for gap in listing.items
    ]
    lines += [f"• {mentor_demand_text(tag, waiting)}" for tag, waiting in mentor_demand]
    if not listing.items:
        tag = mentor_demand[0][0]
        footer = f"Could you help? `/teach mentor #{tag}` offers to mentor on it."
        return listing_section(":mag: Knowledge gaps", lines, 0, footer=footer)
    footer = f"Know one of these? `/teach #{listing.items[0].tag}` puts you on the list of go-to people."
    if unproposed := [gap.tag for gap in listing.items if not gap.has_session]:
        footer += "\n:teacher: " + digest_proposal(unproposed[0])
    return listing_section(":mag: Knowledge gaps", lines, listing.more, footer=footer)


def _mentors(data: DigestData) -> Block | None:
    line = mentors_line([(user_id, list(tags)) for user_id, tags in data.mentors])
    return section(line) if line else None


def as_preview(message: Message, schedule: Schedule | None) -> Message:
    """The digest as an ephemeral preview: a note on top saying who sees it and when it really goes out."""
    when = f"The real one goes out {schedule.describe()}." if schedule else "`/ask digest on` posts one weekly."
    note = context(f":eyes: Preview, only you can see this. {when}")
    return Message(text=message.text, blocks=[note, *message.blocks][:50])


def render_text(message: Message) -> str:
    """A readable plain rendering of a message's blocks (the admin verb's --dry-run)."""
    lines: list[str] = []
    for block in message.blocks:
        kind = block.get("type")
        if kind == "header":
            lines.append(f"== {block['text']['text']} ==")
        elif kind == "section":
            lines.append(block["text"]["text"])
        elif kind == "context":
            lines.append("  ".join(element.get("text", "") for element in block["elements"]))
        elif kind == "divider":
            lines.append("-" * 40)
    return "\n".join(lines)
