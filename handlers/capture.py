"""The two message shortcuts (issue 20, section 1): "Ask PeerLearn about this" opens the /ask form prefilled
with the message (its submission is the /ask form's: handlers/views.py), "Save as knowledge" opens a form
that saves the thread as a lesson (bot/capture.py).

Both shortcuts ack at once and open their form after the ack (as /ask's form does). The save form's
submission reads the thread again and stores the lesson before its ack: a Slack call in the ack step, so
that what the person saw is saved whole or not at all (if Slack does not answer, the form stays open and
says so; nothing they typed is lost, and saving again updates the same lesson)."""

from __future__ import annotations

import json
import logging
from typing import Any

from slack_bolt import Ack, App, BoltContext, Respond
from slack_sdk import WebClient
from sqlalchemy.exc import SQLAlchemyError

from bot.capture import (
    MAX_KEPT_REPLIES,
    AlreadyALesson,
    ThreadMessage,
    as_written,
    credited,
    kept_messages,
    save_thread,
    thread_ts_of,
    title_from,
)
from bot.messages.capture import (
    ALREADY_A_LESSON,
    ASK_ABOUT_SHORTCUT,
    READ_FAILED,
    SAVE_ACTION_INPUT,
    SAVE_BLOCK_REPLIES,
    SAVE_BLOCK_TAGS,
    SAVE_BLOCK_TITLE,
    SAVE_MODAL,
    SAVE_SHORTCUT,
    THREAD_GONE,
    TITLE_MISSING,
    about_note,
    cannot_open,
    cannot_read,
    save_modal,
    saved_text,
)
from bot.messages.errors import DATABASE_DOWN, explain
from bot.messages.forms import ask_modal, field_errors
from bot.services import Services
from bot.slack_errors import SLACK_FAILURES, error_code
from bot.slack_posts import tell_user
from bot.text import MAX_TAGS, clean, not_tags_error, parse_tag_field, too_many_tags
from models.capture import is_posted_lesson, saved_thread
from models.workspace import ensure_workspace

logger = logging.getLogger("peerlearn.capture")

SAVED = "peerlearn_thread_saved"  # context key: what the save form's ack stored, for the step after it


def register(app: App, services: Services) -> None:
    def ack_shortcut(ack: Ack) -> None:
        ack()  # the form opens after the ack

    def open_ask_about(shortcut: dict[str, Any], client: WebClient, respond: Respond) -> None:
        channel_id = shortcut["channel"]["id"]
        message = as_written(shortcut["message"])
        permalink = _permalink(client, channel_id, message.ts)
        try:
            info = client.conversations_info(channel=channel_id)["channel"]
            can_post = bool(info.get("is_member")) and not info.get("is_archived")
            private = bool(info.get("is_private") or info.get("is_im") or info.get("is_mpim"))
        except SLACK_FAILURES:  # a private channel the bot is not in
            can_post, private = False, True
        source = {"channel_id": channel_id, "ts": message.ts, "author_id": message.user_id, "permalink": permalink}
        note = about_note(
            author_id=message.user_id, permalink=permalink, channel_id=channel_id, can_post=can_post, private=private
        )
        metadata = json.dumps({"channel_id": channel_id, "source": source})
        view = ask_modal(channel_id if can_post else None, question=message.text, private_metadata=metadata, note=note)
        try:
            client.views_open(trigger_id=shortcut["trigger_id"], view=view)
        except SLACK_FAILURES as exc:
            _could_not_open(respond, exc)

    def open_save_form(shortcut: dict[str, Any], client: WebClient, respond: Respond) -> None:
        team_id = (shortcut.get("team") or {}).get("id") or ""
        channel_id = shortcut["channel"]["id"]
        thread_ts = thread_ts_of(shortcut["message"])
        if is_direct(shortcut["channel"]):  # the manifest asks for no im/mpim history: nothing to read there
            respond(response_type="ephemeral", text=cannot_read(channel_id, direct=True))
            return
        try:
            thread, total_replies = read_thread(client, channel_id, thread_ts)
            info = client.conversations_info(channel=channel_id)["channel"]
        except UNREADABLE as exc:
            logger.info("cannot read %s to save a thread: %s", channel_id, _why(exc))
            respond(response_type="ephemeral", text=cannot_read(channel_id, direct=False))
            return
        private = bool(info.get("is_private") or info.get("is_im") or info.get("is_mpim"))
        permalink = _permalink(client, channel_id, thread_ts)
        title, tags, kept, already = title_from(thread[0].text), [], None, False
        try:
            with services.store.session() as session:
                if is_posted_lesson(session, team_id, channel_id, thread_ts):
                    respond(response_type="ephemeral", text=ALREADY_A_LESSON)
                    return
                if (saved := saved_thread(session, team_id, channel_id, thread_ts)) is not None:
                    already, title = True, saved.title
                    tags, kept = saved.lesson.tag_names, {m.ts for m in saved.messages}
        except SQLAlchemyError:
            logger.exception("could not look up whether %s %s is saved", channel_id, thread_ts)
        metadata = {"channel_id": channel_id, "thread_ts": thread_ts, "private": private, "permalink": permalink}
        view = save_modal(
            first=thread[0],
            replies=thread[1:],
            total_replies=total_replies,
            title=title,
            tags=tags,
            kept=kept,
            already_saved=already,
            private=private,
            private_metadata=json.dumps(metadata),
        )
        try:
            client.views_open(trigger_id=shortcut["trigger_id"], view=view)
        except SLACK_FAILURES as exc:
            _could_not_open(respond, exc)

    def ack_save(ack: Ack, body: dict[str, Any], view: dict[str, Any], client: WebClient, context: BoltContext) -> None:
        values = view.get("state", {}).get("values", {})
        title = clean(str(values.get(SAVE_BLOCK_TITLE, {}).get(SAVE_ACTION_INPUT, {}).get("value") or ""))
        raw_tags = str(values.get(SAVE_BLOCK_TAGS, {}).get(SAVE_ACTION_INPUT, {}).get("value") or "")
        ticked = values.get(SAVE_BLOCK_REPLIES, {}).get(SAVE_ACTION_INPUT, {}).get("selected_options") or []
        tags, not_tags = parse_tag_field(raw_tags, services.settings.tag_aliases)
        errors = {}
        if not title:
            errors[SAVE_BLOCK_TITLE] = TITLE_MISSING
        if not_tags:
            errors[SAVE_BLOCK_TAGS] = not_tags_error(not_tags)
        elif len(tags) > MAX_TAGS:
            errors[SAVE_BLOCK_TAGS] = too_many_tags(len(tags), "a lesson")
        if errors:
            ack(**field_errors(errors))
            return
        metadata = json.loads(view.get("private_metadata") or "{}")
        channel_id, thread_ts = str(metadata["channel_id"]), str(metadata["thread_ts"])
        team_id = (body.get("team") or {}).get("id") or view.get("team_id", "")
        user_id = body["user"]["id"]
        try:
            thread, _ = read_thread(client, channel_id, thread_ts)
        except UNREADABLE as exc:
            logger.warning("could not read %s %s to save it: %s", channel_id, thread_ts, _why(exc))
            gone = _why(exc) in ("thread_not_found", "channel_not_found", "not_in_channel")
            ack(**field_errors({SAVE_BLOCK_TITLE: THREAD_GONE if gone else READ_FAILED}))
            return
        kept = kept_messages(thread, [str(option.get("value")) for option in ticked])
        try:
            with services.store.session() as session:
                now = services.clock.now()
                ensure_workspace(session, team_id, now)
                saved = save_thread(
                    session,
                    team_id=team_id,
                    channel_id=channel_id,
                    thread_ts=thread_ts,
                    channel_private=bool(metadata.get("private", True)),
                    title=title,
                    tags=tags,
                    kept=kept,
                    saved_by=user_id,
                    permalink=metadata.get("permalink"),
                    view_id=view["id"],
                    now=now,
                )
                if not saved.repeated:  # a retried submission: its note was sent already
                    context[SAVED] = saved_text(
                        title=title,
                        created=saved.created,
                        permalink=saved.thread.permalink,
                        authors=credited(kept),
                        tags=tags,
                        private=bool(metadata.get("private", True)),
                    )
        except AlreadyALesson:
            ack(**field_errors({SAVE_BLOCK_TITLE: ALREADY_A_LESSON}))
            return
        except SQLAlchemyError:
            logger.exception("could not save %s %s as a lesson", channel_id, thread_ts)
            ack(**field_errors({SAVE_BLOCK_TITLE: DATABASE_DOWN}))
            return
        ack()

    def after_save(body: dict[str, Any], view: dict[str, Any], client: WebClient, context: BoltContext) -> None:
        if note := context.get(SAVED):
            channel_id = json.loads(view.get("private_metadata") or "{}").get("channel_id")
            tell_user(client, channel_id=channel_id, user_id=body["user"]["id"], text=note)

    app.message_shortcut(ASK_ABOUT_SHORTCUT)(ack=ack_shortcut, lazy=[open_ask_about])
    app.message_shortcut(SAVE_SHORTCUT)(ack=ack_shortcut, lazy=[open_save_form])
    app.view(SAVE_MODAL)(ack=ack_save, lazy=[after_save])


class ThreadGone(Exception):
    """Slack listed no message for the thread (deleted meanwhile)."""


UNREADABLE: tuple[type[Exception], ...] = (*SLACK_FAILURES, ThreadGone)  # what reading a thread can end with


def read_thread(client: WebClient, channel_id: str, thread_ts: str) -> tuple[list[ThreadMessage], int]:
    """The thread's first message and its first MAX_KEPT_REPLIES replies, and how many replies it has."""
    page = client.conversations_replies(channel=channel_id, ts=thread_ts, limit=MAX_KEPT_REPLIES + 1)
    raw = [m for m in page.get("messages") or [] if str(m.get("ts"))]
    if not raw:
        raise ThreadGone(thread_ts)
    first = raw[0]
    replies = int(first.get("reply_count") or len(raw) - 1)
    return [as_written(m) for m in raw[: MAX_KEPT_REPLIES + 1]], replies


def _why(exc: BaseException) -> str:
    return "thread_not_found" if isinstance(exc, ThreadGone) else error_code(exc)


def is_direct(channel: dict[str, Any]) -> bool:
    """A direct or group message, by what a shortcut's payload says of its channel (Slack names them
    "directmessage" and "mpdm-…"; their ids start with D)."""
    name, channel_id = str(channel.get("name") or ""), str(channel.get("id") or "")
    return name == "directmessage" or name.startswith("mpdm-") or channel_id.startswith("D")


def _could_not_open(respond: Respond, exc: BaseException) -> None:
    """The form did not open. A shortcut Slack delivered again finds its trigger used: the first delivery
    opened the form, so nothing is said."""
    code = error_code(exc)
    if code == "exchanged_trigger_id":
        logger.info("a shortcut delivered again: its form is open already")
        return
    logger.warning("could not open a shortcut's form: %s", code)
    respond(response_type="ephemeral", text=cannot_open(explain(code)))


def _permalink(client: WebClient, channel_id: str, ts: str) -> str | None:
    try:
        return str(client.chat_getPermalink(channel=channel_id, message_ts=ts)["permalink"])
    except SLACK_FAILURES as exc:
        logger.info("no permalink for %s in %s: %s", ts, channel_id, error_code(exc))
        return None
