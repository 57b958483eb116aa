"""SlackWorld: Slack around the bot, so tests read like a transcript.

    q = slack.ask("U_ASKER", "How do I vacuum? #postgres", "C_GENERAL")
    slack.reply("U_EXPERT", q, "VACUUM (VERBOSE) big_table;")
    slack.react("U_ASKER", "white_check_mark", "C_GENERAL", answer_ts)

People act through signed HTTP requests to the bot's real endpoint; the bot answers through the fake Web API,
whose state (messages, ephemerals, views) these helpers keep consistent with what Slack would show. What they
read back is a `Message` (transcript.py); what a click or a submitted form carries comes from elements.py.
"""

from __future__ import annotations

import concurrent.futures
import itertools
import re
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from typing import Any

from bot.clock import Clock
from bot.playground.emulator.elements import choice_fields, filled, interactive
from bot.playground.emulator.fake_api import Call, FakeSlackAPI
from bot.playground.emulator.signing import (
    Response,
    SlackSender,
    block_actions_payload,
    event_envelope,
    message_action_payload,
    user_ref,
    view_submission_payload,
)
from bot.playground.emulator.transcript import Message
from bot.playground.emulator.workspace import APP_ID, BOT_ID, BOT_USER_ID, TEAM_DOMAIN, TEAM_ID, Json, SlackError

_URL = re.compile(r"(https?://[^\s<>|]*[^\s<>|.,;:!?)\]'\"])")  # as a Slack client links what is typed


def _escaped(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


class SlackWorld:
    """Simulates the workspace around the bot: people post, react, click and submit; Slack delivers."""

    def __init__(
        self,
        fake: FakeSlackAPI,
        bot_url: str,
        signing_secret: str,
        clock: Clock,
        *,
        listener_executor: concurrent.futures.Executor | None = None,
        runtime: Any = None,
    ) -> None:
        self.fake = fake
        self.clock = clock
        self.runtime = runtime
        self._runtimes = [runtime] if runtime is not None else []
        self.sender = SlackSender(bot_url.rstrip("/") + "/slack/events", signing_secret)
        self.last_response: Response | None = None
        self.last_payload: dict[str, Any] = {}  # the last interactivity payload `shortcut` or `resend` sent
        self._event_numbers = itertools.count(1)
        self._listener_work: set[concurrent.futures.Future[Any]] = set()
        self._work_lock = threading.Lock()
        if listener_executor is not None:
            self._track(listener_executor)

    # --- people and places ----------------------------------------------------------------------------

    def add_user(self, user_id: str, **profile: Any) -> str:
        """Profile: name, real_name, tz ("Europe/Berlin"), is_bot, deleted, is_admin, is_owner."""
        return self.fake.add_user(user_id, **profile).id

    def add_channel(self, channel_id: str, **options: Any) -> str:
        """Options: name, private, members=[user ids], bot_member=True, archived."""
        return self.fake.add_channel(channel_id, **options).id

    def _team(self) -> dict[str, str]:
        return {"id": TEAM_ID, "domain": TEAM_DOMAIN}

    def _user(self, user_id: str) -> dict[str, str]:
        if user_id not in self.fake.users:
            raise AssertionError(f"Unknown user {user_id}: add it first with world.add_user({user_id!r})")
        return user_ref(user_id, self.fake.users[user_id].name, TEAM_ID)

    def _channel_for(self, user_id: str, channel_id: str | None) -> Any:
        self._user(user_id)
        if channel_id is None or channel_id == user_id:
            return self.fake.im_for(user_id)
        channel = self.fake.channels.get(channel_id)
        if channel is None:
            raise AssertionError(f"Unknown channel {channel_id}: add it first with world.add_channel(...)")
        if user_id not in channel.members:
            raise AssertionError(f"{user_id} is not in {channel_id}; pass members=[...] to add_channel")
        return channel

    def typed(self, text: str) -> str:
        """What a person typed, as a Slack client sends it in a slash command or a message: &, < and > escaped;
        URLs as links, @name, @here and #channel as mentions (slash commands too: the manifest sets
        should_escape)."""
        pieces = _URL.split(text)  # every other piece is a URL
        return "".join(f"<{_escaped(p)}>" if i % 2 else self._mentions(_escaped(p)) for i, p in enumerate(pieces))

    def _mentions(self, text: str) -> str:
        with self.fake.lock:
            by_name = {user.name: user.id for user in self.fake.users.values()}
            channels = {c.name: c.id for c in self.fake.channels.values() if not c.is_im}

        def mention(match: re.Match[str]) -> str:
            word = match.group(1)
            if word.lower() in ("here", "channel", "everyone"):
                return f"<!{word.lower()}>"
            return f"<@{by_name[word]}>" if word in by_name else match.group(0)

        text = re.sub(r"(?<![\w@])@([\w.-]+)", mention, text)
        return re.sub(
            r"(?<![\w&#/])#([\w-]+)",
            lambda m: f"<#{channels[m.group(1)]}|{m.group(1)}>" if m.group(1) in channels else m.group(0),
            text,
        )

    # --- slash commands -------------------------------------------------------------------------------

    def command(self, user: str, command: str, text: str = "", channel: str | None = None) -> Response:
        """Run a slash command (in `channel`, or in the user's DM with the bot); returns the bot's ack.
        `response.meta` has the `response_url` and `trigger_id` Slack sent with it."""
        where = self._channel_for(user, channel)
        channel_name = "directmessage" if where.is_im else "privategroup" if where.is_private else where.name
        fields = self.fake.command_fields(user, text, where.id, channel_name=channel_name, command=command)
        response_url, trigger_id = fields["response_url"], fields["trigger_id"]
        response = self.sender.slash_command(fields)
        self._handed_to_bolt()
        response.meta.update(response_url=response_url, trigger_id=trigger_id)
        self.last_response = response
        return response

    def ask(self, user: str, text: str, channel: str, timeout: float = 5.0) -> Message:
        """`/ask text` in `channel`, then the message the bot posted there (chat.postMessage)."""
        since = self.fake.mark()
        response = self.command(user, "/ask", text, channel)
        if response.status != 200:
            raise AssertionError(f"/ask was answered with HTTP {response.status}: {response.body}")
        posted = self.wait_post(channel, since=since, timeout=timeout)
        self.settle()  # the bot records the message ts after posting; replies need it, as in real time
        return posted

    # --- messages -------------------------------------------------------------------------------------

    def post(self, user: str, channel: str, text: str, thread_ts: str | None = None) -> str:
        """`user` writes `text` in `channel` (in a thread when `thread_ts`); returns the message ts."""
        where = self._channel_for(user, channel)
        message = self.fake.add_message(where.id, user, text, thread_ts=thread_ts)
        rich_text = {"type": "rich_text_section", "elements": [{"type": "text", "text": text}]}
        event: Json = {
            "client_msg_id": str(uuid.uuid4()),
            "type": "message",
            "text": text,
            "user": user,
            "ts": message["ts"],
            "team": TEAM_ID,
            "blocks": [{"type": "rich_text", "block_id": message["ts"][-5:], "elements": [rich_text]}],
            "channel": where.id,
            "event_ts": message["ts"],
            "channel_type": where.channel_type,
        }
        if thread_ts:
            event.update(thread_ts=message["thread_ts"], parent_user_id=message["parent_user_id"])
        self.send_event(event)
        return str(message["ts"])

    def reply(self, user: str, to: Message, text: str) -> str:
        """`user` answers in the thread of `to`; returns the reply's ts."""
        return self.post(user, to.channel, text, thread_ts=to.thread_ts or to.ts)

    def edit(self, user: str, channel: str, ts: str, text: str) -> Response:
        """`user` edits their message: the fake's copy changes and a `message_changed` event goes out."""
        where = self._channel_for(user, channel)
        message = self.fake.message(where.id, ts)
        if message.get("user") != user:
            raise AssertionError(f"{user} cannot edit {ts}: it was written by {message.get('user')}")
        previous = dict(message)
        event_ts = self.fake.new_ts()
        message.update(text=text, edited={"user": user, "ts": event_ts})
        event = {
            "type": "message",
            "subtype": "message_changed",
            "message": dict(message),
            "previous_message": previous,
            "channel": where.id,
            "hidden": True,
            "ts": event_ts,
            "event_ts": event_ts,
            "channel_type": where.channel_type,
        }
        return self.send_event(event)

    def delete(self, user: str, channel: str, ts: str) -> Response:
        """The message disappears from the fake's history and a `message_deleted` event goes out."""
        where = self._channel_for(user, channel)
        previous = self.fake.remove_message(where.id, ts)
        event_ts = self.fake.new_ts()
        event = {
            "type": "message",
            "subtype": "message_deleted",
            "previous_message": previous,
            "channel": where.id,
            "hidden": True,
            "deleted_ts": ts,
            "event_ts": event_ts,
            "ts": event_ts,
            "channel_type": where.channel_type,
        }
        return self.send_event(event)

    def react(self, user: str, reaction: str, channel: str, ts: str) -> Response:
        return self._reaction("reaction_added", user, reaction, channel, ts)

    def unreact(self, user: str, reaction: str, channel: str, ts: str) -> Response:
        return self._reaction("reaction_removed", user, reaction, channel, ts)

    def _reaction(self, kind: str, user: str, reaction: str, channel: str, ts: str) -> Response:
        where = self._channel_for(user, channel)
        message = self.fake.message(where.id, ts)
        reaction = reaction.strip(":")
        try:
            change = self.fake.add_reaction if kind == "reaction_added" else self.fake.remove_reaction
            change(message, reaction, user)
        except SlackError as error:
            raise AssertionError(f"{user} cannot {kind} :{reaction}: on {ts}: {error.error}") from None
        event: Json = {"type": kind, "user": user, "reaction": reaction}
        if message.get("user") and "subtype" not in message:  # webhook posts have no item_user
            event["item_user"] = message["user"]
        event.update(item={"type": "message", "channel": where.id, "ts": ts}, event_ts=self.fake.new_ts())
        return self.send_event(event)

    def echo(self, message: Message) -> Response:
        """Deliver one of the bot's own posts back to it as a `message` event, as Slack does."""
        where = self.fake.channels[message.channel]
        event = {k: v for k, v in message.raw.items() if k not in ("reactions", "reply_count", "reply_users")}
        bot_profile = {"id": BOT_ID, "app_id": APP_ID, "name": "PeerLearn", "team_id": TEAM_ID, "deleted": False}
        event.update(channel=where.id, event_ts=message.ts, channel_type=where.channel_type, bot_profile=bot_profile)
        return self.send_event(event)

    # --- the App Home, buttons and modals -------------------------------------------------------------

    def open_home(self, user: str) -> Response:
        im = self.fake.im_for(user)
        event: Json = {"type": "app_home_opened", "user": user, "channel": im.id, "tab": "home"}
        event["event_ts"] = self.fake.new_ts()
        if (view := self.fake.home_view(user)) is not None:
            event["view"] = view
        return self.send_event(event)

    def click(
        self,
        user: str,
        action_id: str,
        value: Any = None,
        *,
        channel: str | None = None,
        message_ts: str | None = None,
        view_id: str | None = None,
    ) -> Response:
        """`user` clicks the button `action_id` (the one whose value is `value`, if given) or picks `value`
        in the select/date picker `action_id`. Without a place, the element is looked up in the user's open
        modal, then the newest messages and ephemerals (in `channel` if given), then the Home tab."""
        surface, block, element = self._find_element(user, action_id, value, channel, message_ts, view_id)
        action = {"action_id": action_id, "block_id": block.get("block_id", ""), "type": element["type"]}
        action["action_ts"] = self.fake.new_ts()
        if element["type"] == "button":
            action.update(text=element["text"], value=element.get("value"))
        else:
            action.update(choice_fields(element, value))
        view, message, channel_ref, response_url = surface.get("view"), None, None, None
        if view is not None:
            container: Json = {"type": "view", "view_id": view["id"]}
        else:
            where, ephemeral = surface["channel"], surface["ephemeral"]
            ts = surface["message"]["ts"]
            container = {"type": "message", "message_ts": ts, "channel_id": where.id, "is_ephemeral": ephemeral}
            if surface["message"].get("thread_ts"):
                container["thread_ts"] = surface["message"]["thread_ts"]
            message = None if ephemeral else surface["message"]  # ephemeral messages are not sent along
            channel_ref = {"id": where.id, "name": where.name}
            response_url = self.fake.new_response_url(user, where.id, message_ts=ts, ephemeral=ephemeral)
        trigger_id = self.fake.new_trigger_id(user)
        payload = block_actions_payload(
            team=self._team(),
            user=self._user(user),
            api_app_id=APP_ID,
            actions=[action],
            trigger_id=trigger_id,
            container=container,
            channel=channel_ref,
            message=message,
            view=view,
            response_url=response_url,
        )
        response = self.sender.interactivity(payload)
        response.meta["trigger_id"] = trigger_id
        if response_url:
            response.meta["response_url"] = response_url
        self.last_response = response
        return response

    def _surfaces(self, user: str, channel: str | None, message_ts: str | None, view_id: str | None) -> list[Json]:
        fake = self.fake
        if view_id is not None:
            return [{"view": fake.views[view_id]}]
        found: list[Json] = []
        if channel is None and message_ts is None:
            found += [{"view": view} for view in reversed(fake.open_modals(user))]
        with fake.lock:
            chats: list[Json] = [
                {"channel": c, "message": m, "ephemeral": False}
                for c in fake.channels.values()
                if (channel in (None, c.id)) and (c.is_im or user in c.members or not c.is_private)
                for m in c.messages.values()
            ]
            chats += [
                {"channel": fake.channels[e["channel"]], "message": e, "ephemeral": True}
                for e in fake.ephemerals
                if e["user"] == user and channel in (None, e["channel"])
            ]
        chats = [s for s in chats if message_ts in (None, s["message"]["ts"])]
        found += sorted(chats, key=lambda s: float(s["message"]["ts"]), reverse=True)
        if channel is None and message_ts is None and (home := fake.home_view(user)) is not None:
            found.append({"view": home})
        return found

    def _find_element(
        self,
        user: str,
        action_id: str,
        value: Any,
        channel: str | None,
        message_ts: str | None,
        view_id: str | None,
    ) -> tuple[Json, Json, Json]:
        seen: list[str] = []
        for surface in self._surfaces(user, channel, message_ts, view_id):
            blocks = (surface.get("view") or surface.get("message") or {}).get("blocks") or []
            for block, element in interactive(blocks):
                is_button = element["type"] == "button"
                if element["action_id"] == action_id and (not is_button or value in (None, element.get("value"))):
                    return surface, block, element
                seen.append(element["action_id"] + (f"={element.get('value')}" if is_button else ""))
        wanted = action_id + (f"={value}" if value is not None else "")
        raise AssertionError(f"{user} sees no element {wanted!r} there; visible: {sorted(set(seen))}")

    def shortcut(self, user: str, callback_id: str, channel: str, ts: str) -> Response:
        """`user` picks the message shortcut `callback_id` from the "More actions" menu of the message `ts` in
        `channel` (any message they can see, thread replies too). `response.meta` has its trigger_id and
        response_url; `world.last_payload` is what was sent (send it again with `resend`: a retry)."""
        where = self._channel_for(user, channel)
        message = {"type": "message", **self.fake.message(where.id, ts)}
        trigger_id = self.fake.new_trigger_id(user)
        response_url = self.fake.new_response_url(user, where.id)
        payload = message_action_payload(
            team=self._team(),
            user=self._user(user),
            channel={"id": where.id, "name": "directmessage" if where.is_im else where.name},
            callback_id=callback_id,
            trigger_id=trigger_id,
            response_url=response_url,
            message={k: v for k, v in message.items() if k != "metadata"},
            action_ts=self.fake.new_ts(),
        )
        return self.resend(payload)

    def resend(self, payload: Mapping[str, Any]) -> Response:
        """Deliver an interactivity payload again, as it was (what a retried request carries)."""
        self.last_payload = dict(payload)
        response = self.sender.interactivity(payload)
        response.meta.update(trigger_id=str(payload.get("trigger_id")), response_url=str(payload.get("response_url")))
        self.last_response = response
        return response

    def submit_view(self, user: str, view: str, values: Mapping[str, Any] | None = None) -> Response:
        """`user` fills the open modal `view` (a view id or callback_id) and presses submit.

        `values` maps an input's block_id or action_id to what the user entered (text, a date, an option
        value, a user id, or a list for multi-selects); `{block_id: {action_id: value}}` works too.
        """
        modal = self._open_modal(user, view)
        state, missing = filled(modal, values)
        if missing:
            labels = ", ".join(f"{label!r} ({block_id})" for block_id, label in missing.items())
            raise AssertionError(f"Slack would not let {user} submit: {labels} is required")
        submitted = {**modal, "state": {"values": state}}
        trigger_id = self.fake.new_trigger_id(user)
        payload = view_submission_payload(
            team=self._team(), user=self._user(user), api_app_id=APP_ID, view=submitted, trigger_id=trigger_id
        )
        self.last_payload = payload
        response = self.sender.interactivity(payload)
        if response.status == 200:
            self.fake.view_submitted(user, modal["id"], response.json() if response.body.startswith("{") else None)
        self.last_response = response
        return response

    def unfilled(self, user: str, view: str, values: Mapping[str, Any] | None = None) -> dict[str, str]:
        """The required inputs `values` leaves empty, by block_id, with the label of each: Slack's client shows
        "Please complete this required field." under each one and sends nothing to the app."""
        return filled(self._open_modal(user, view), values)[1]

    def _open_modal(self, user: str, view: str) -> Json:
        modal = next((m for m in reversed(self.fake.open_modals(user)) if view in (m["id"], m["callback_id"])), None)
        if modal is None:
            open_ids = [(m["id"], m["callback_id"]) for m in self.fake.open_modals(user)]
            raise AssertionError(f"{user} has no open modal {view!r}; open modals: {open_ids}")
        return modal

    # --- raw events -----------------------------------------------------------------------------------

    def send_event(
        self,
        event: Mapping[str, Any],
        *,
        event_id: str | None = None,
        retry_num: int | None = None,
        retry_reason: str = "http_timeout",
    ) -> Response:
        """Deliver one inner event in an `event_callback` envelope (a fresh event_id unless given:
        pass the same one with `retry_num=1` to replay a redelivery)."""
        event_id = event_id or f"Ev{next(self._event_numbers):08d}"
        inner = {"event_ts": self.fake.new_ts(), **event}
        envelope = event_envelope(
            inner,
            team_id=TEAM_ID,
            api_app_id=APP_ID,
            event_id=event_id,
            event_time=int(self.clock.now().timestamp()),
            bot_user_id=BOT_USER_ID,
        )
        response = self.sender.event(envelope, retry_num=retry_num, retry_reason=retry_reason)
        self._handed_to_bolt()
        response.meta["event_id"] = event_id
        self.last_response = response
        return response

    def watch(self, runtime: Any) -> None:
        """Another bot process on the same database (a replica): its inbox worker may take the requests
        sent here, so wait for it too, and settle its lazy listeners as well."""
        self._runtimes.append(runtime)
        self._track(runtime.bolt_app.listener_runner.listener_executor)

    def _handed_to_bolt(self) -> None:
        """A request the bot acked into its inbox (models/inbox.py) is handled by a worker a moment later;
        wait for that, so that what the ack step stores is there when the test goes on, as before an ack."""
        for runtime in self._runtimes:
            worker = getattr(runtime, "worker", None)
            if worker is not None:
                worker.wait_idle()

    # --- reading what the bot did ---------------------------------------------------------------------

    def messages(self, channel: str, thread_ts: str | None = None) -> list[Message]:
        """A channel's top-level messages, or a thread (parent first), oldest first."""
        channel_id = self.fake.im_for(channel).id if channel in self.fake.users else channel
        return [Message.of(channel_id, m) for m in self.fake.messages(channel_id, thread_ts)]

    def ephemerals(self, user: str) -> list[Json]:
        """Ephemeral messages shown to `user` (chat.postEphemeral and response_url), oldest first."""
        return [e for e in self.fake.ephemerals if e["user"] == user]

    def wait_post(
        self,
        channel: str,
        *,
        since: int = 0,
        thread_ts: str | None = None,
        count: int = 1,
        timeout: float = 5.0,
    ) -> Message:
        """Wait for the bot's `count`-th successful chat.postMessage into `channel` (a user id means the
        bot's DM with them; `thread_ts` narrows to that thread); returns the message as Slack holds it."""
        channel_id = self.fake.im_for(channel).id if channel in self.fake.users else channel

        def into_channel(call: Call) -> bool:
            in_thread = thread_ts is None or call.response.get("message", {}).get("thread_ts") == thread_ts
            return call.ok and call.response.get("channel") == channel_id and in_thread

        call = self.fake.wait_for("chat.postMessage", timeout, count=count, since=since, where=into_channel)
        return Message.of(channel_id, self.fake.message(channel_id, call.response["ts"]))

    def wait_dm(self, user: str, *, since: int = 0, timeout: float = 5.0) -> Message:
        """The bot's next DM to `user`."""
        return self.wait_post(user, since=since, timeout=timeout)

    def settle(self, timeout: float = 10.0) -> None:
        """Wait until the bot's background (lazy) listeners are done, e.g. before asserting nothing happened."""
        deadline = time.monotonic() + timeout
        while True:
            with self._work_lock:
                pending = [work for work in self._listener_work if not work.done()]
                self._listener_work.difference_update([w for w in self._listener_work if w.done()])
            if not pending:
                return
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"{len(pending)} listener task(s) still running after {timeout}s")
            concurrent.futures.wait(pending, timeout=remaining)

    def _track(self, executor: concurrent.futures.Executor) -> None:
        """Remember every task the bot's listener executor runs, so `settle()` can wait for them."""
        submit: Callable[..., concurrent.futures.Future[Any]] = executor.submit

        def tracked_submit(fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> concurrent.futures.Future[Any]:
            future = submit(fn, *args, **kwargs)
            with self._work_lock:
                self._listener_work.add(future)
            return future

        executor.submit = tracked_submit  # type: ignore[method-assign]
