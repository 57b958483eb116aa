"""The Slack workspace the emulator plays: users, channels, messages, views, and the contract check.

The Web API methods over this state are in web_methods.py, served over HTTP by `FakeSlackAPI` (fake_api.py).
Everything here runs under `lock`; an error is answered by raising `SlackError`, a contract violation by
`_reject` (recorded in `violations`).
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from bot.playground.emulator.contract import Problem, check_arguments, check_blocks, check_mentions, check_view

TEAM_ID = "T0001"
TEAM_DOMAIN = "peerlearn-test"
BOT_USER_ID = "UBOT"
BOT_ID = "BBOT"
APP_ID = "A0001"
FIRST_TS = 1_700_000_000.0001
MESSAGE_METHODS = ("chat.postMessage", "chat.postEphemeral", "chat.update", "response_url")

Json = dict[str, Any]


class SlackError(Exception):
    """Answer the current call with `{"ok": false, "error": ...}`."""

    def __init__(self, error: str, status: int = 200, headers: Mapping[str, str] | None = None, **extra: Any):
        super().__init__(error)
        self.error, self.status, self.headers, self.extra = error, status, dict(headers or {}), extra


@dataclass(frozen=True)
class Violation:
    method: str
    reason: str
    args: Json

    def __str__(self) -> str:
        return f"{self.method}: {self.reason}"


@dataclass
class User:
    id: str
    name: str
    real_name: str
    tz: str = "UTC"
    is_bot: bool = False
    deleted: bool = False
    is_admin: bool = False
    is_owner: bool = False

    def to_api(self, now: float) -> Json:
        """As users.info returns it; tz_offset is the zone's offset at `now` (so it follows DST)."""
        offset = ZoneInfo(self.tz).utcoffset(datetime.fromtimestamp(now, UTC))
        profile = {"real_name": self.real_name, "display_name": self.name, "team": TEAM_ID}
        return {
            "id": self.id,
            "team_id": TEAM_ID,
            "name": self.name,
            "real_name": self.real_name,
            "deleted": self.deleted,
            "tz": self.tz,
            "tz_label": self.tz,
            "tz_offset": int(offset.total_seconds()) if offset else 0,
            "is_bot": self.is_bot,
            "is_admin": self.is_admin,
            "is_owner": self.is_owner,
            "is_app_user": False,
            "profile": profile | ({"bot_id": BOT_ID} if self.id == BOT_USER_ID else {}),
        }


@dataclass
class Channel:
    id: str
    name: str
    is_private: bool = False
    is_archived: bool = False
    is_im: bool = False
    is_mpim: bool = False  # a group DM (conversations.open with several users)
    members: set[str] = field(default_factory=set)
    messages: dict[str, Json] = field(default_factory=dict)  # ts -> message, in posting order

    @property
    def channel_type(self) -> str:  # as in message events
        return "im" if self.is_im else "mpim" if self.is_mpim else "group" if self.is_private else "channel"

    def to_api(self) -> Json:
        if self.is_im:
            user = next(iter(self.members - {BOT_USER_ID}), BOT_USER_ID)
            return {"id": self.id, "is_im": True, "user": user, "is_open": True, "created": 1_700_000_000}
        return {
            "id": self.id,
            "name": self.name,
            "is_channel": not self.is_private,
            "is_group": self.is_private and not self.is_mpim,
            "is_im": False,
            "is_mpim": self.is_mpim,
            "is_private": self.is_private,
            "is_archived": self.is_archived,
            "is_general": self.name == "general",
            "is_member": BOT_USER_ID in self.members,
            "num_members": len(self.members),
            "created": 1_700_000_000,
            "context_team_id": TEAM_ID,
        }


@dataclass
class ResponseUrl:
    """Where a slash command or a click came from, so responses can change the right message."""

    user: str
    channel: str
    message_ts: str | None = None  # the message the click came from
    ephemeral: bool = False
    uses: int = 0


def with_block_ids(blocks: Any) -> list[Json]:
    """Blocks as Slack stores them: a block the app sent without a block_id gets a random one."""
    if not isinstance(blocks, list):
        return []
    return [{"block_id": secrets.token_hex(3), **block} if isinstance(block, dict) else block for block in blocks]


def arg_is_true(args: Mapping[str, Any], name: str) -> bool:
    """A boolean argument as Slack reads it (form bodies send "true" or "1")."""
    return str(args.get(name, "")).lower() in ("1", "true")


class Workspace:
    """One workspace (team T0001, bot UBOT): its state, the changes people make, and the contract check."""

    def __init__(self, now: Callable[[], float] | None = None) -> None:
        self.now = now or time.time
        self.violations: list[Violation] = []
        self.team: Json = {"id": TEAM_ID, "name": "PeerLearn Test", "domain": TEAM_DOMAIN}
        self.users: dict[str, User] = {}
        self.channels: dict[str, Channel] = {}
        self.ephemerals: list[Json] = []  # {channel, user, ts, text, blocks}
        self.views: dict[str, Json] = {}  # view id -> view as Slack returns it
        self.view_owner: dict[str, str] = {}
        self.home: dict[str, str] = {}  # user -> published home view id
        self.modals: dict[str, list[str]] = {}  # user -> open modal stack (view ids)
        self.triggers: dict[str, str] = {}  # trigger_id -> user
        self.response_urls: dict[str, ResponseUrl] = {}
        self._used_triggers: set[str] = set()
        self._last_ts = 0
        self._counter = 0
        self.lock = threading.Condition(threading.RLock())  # hold it to read the state consistently
        self.add_user(BOT_USER_ID, name="peerlearn", real_name="PeerLearn", is_bot=True)

    # --- world state ---------------------------------------------------------------------------------

    def _next_id(self, prefix: str) -> str:
        with self.lock:
            self._counter += 1
            return f"{prefix}{self._counter:06d}"

    def new_ts(self) -> str:
        """A fresh message timestamp ("1700000000.000100" style), strictly increasing."""
        with self.lock:
            micros = max(int(self.now() * 1_000_000), int(FIRST_TS * 1_000_000), self._last_ts + 100)
            self._last_ts = micros
        return f"{micros // 1_000_000}.{micros % 1_000_000:06d}"

    def add_user(
        self,
        user_id: str,
        *,
        name: str | None = None,
        real_name: str | None = None,
        tz: str = "UTC",
        is_bot: bool = False,
        deleted: bool = False,
        is_admin: bool = False,
        is_owner: bool = False,
    ) -> User:
        ZoneInfo(tz)  # fail here, in the test's setup, on a misspelt zone
        name = name or user_id.lower().removeprefix("u_").removeprefix("u")
        user = User(
            id=user_id,
            name=name,
            real_name=real_name or name.title(),
            tz=tz,
            is_bot=is_bot,
            deleted=deleted,
            is_admin=is_admin,
            is_owner=is_owner,
        )
        with self.lock:
            self.users[user_id] = user
        return user

    def add_channel(
        self,
        channel_id: str,
        *,
        name: str | None = None,
        private: bool = False,
        members: Iterable[str] = (),
        bot_member: bool = True,
        archived: bool = False,
    ) -> Channel:
        channel = Channel(
            id=channel_id,
            name=name or channel_id.lower().removeprefix("c_"),
            is_private=private,
            is_archived=archived,
            members=set(members) | ({BOT_USER_ID} if bot_member else set()),
        )
        with self.lock:
            self.channels[channel_id] = channel
        return channel

    def im_for(self, user_id: str) -> Channel:
        """The bot's direct-message channel with `user_id` (created on first use, id `D…`)."""
        with self.lock:
            if user_id not in self.users:
                raise SlackError("user_not_found")
            for channel in self.channels.values():
                if channel.is_im and channel.members == {user_id, BOT_USER_ID}:
                    return channel
            channel_id = "D" + user_id[1:] if ("D" + user_id[1:]) not in self.channels else self._next_id("D")
            channel = Channel(id=channel_id, name=channel_id, is_private=True, is_im=True)
            channel.members = {user_id, BOT_USER_ID}
            self.channels[channel_id] = channel
            return channel

    def mpim_for(self, user_ids: list[str]) -> Channel:
        """The group DM of `user_ids` and the bot (created on first use, id `G…`, named `mpdm-a--b--bot-1`)."""
        with self.lock:
            members = {*user_ids, BOT_USER_ID}
            for channel in self.channels.values():
                if channel.is_mpim and channel.members == members:
                    return channel
            names = "--".join(self._user(user_id).name for user_id in [*user_ids, BOT_USER_ID])
            channel_id = self._next_id("G")
            channel = Channel(id=channel_id, name=f"mpdm-{names}-1", is_private=True, is_mpim=True, members=members)
            self.channels[channel_id] = channel
            return channel

    def add_message(
        self,
        channel_id: str,
        user_id: str,
        text: str,
        *,
        thread_ts: str | None = None,
        blocks: list[Json] | None = None,
        ts: str | None = None,
    ) -> Json:
        """Put a message into the channel's history (the bot's own posts go through here too)."""
        with self.lock:
            channel = self._channel(channel_id)
            message: Json = {"type": "message", "ts": ts or self.new_ts(), "user": user_id, "text": text}
            message["team"] = TEAM_ID
            if blocks:
                message["blocks"] = with_block_ids(blocks)
            if user_id == BOT_USER_ID:
                message.update(bot_id=BOT_ID, app_id=APP_ID)
            if thread_ts:
                parent = channel.messages.get(thread_ts)
                root = parent.get("thread_ts", thread_ts) if parent else thread_ts
                root_message = channel.messages.get(root)
                message.update(thread_ts=root, parent_user_id=(root_message or {}).get("user", ""))
                if root_message is not None:
                    root_message["thread_ts"] = root
                    root_message["reply_count"] = root_message.get("reply_count", 0) + 1
                    root_message["reply_users"] = sorted({*root_message.get("reply_users", []), user_id})
                    root_message["latest_reply"] = message["ts"]
            channel.messages[message["ts"]] = message
            return message

    def remove_message(self, channel_id: str, ts: str) -> Json:
        with self.lock:
            channel = self._channel(channel_id)
            return channel.messages.pop(self._message(channel, ts)["ts"])

    def messages(self, channel_id: str, thread_ts: str | None = None) -> list[Json]:
        """Top-level messages of a channel (oldest first), or a thread: the parent, then its replies."""
        with self.lock:
            everything = list(self._channel(channel_id).messages.values())
        if thread_ts is None:
            return [m for m in everything if m.get("thread_ts", m["ts"]) == m["ts"]]
        return [m for m in everything if m["ts"] == thread_ts or m.get("thread_ts") == thread_ts]

    def message(self, channel_id: str, ts: str) -> Json:
        with self.lock:
            return self._message(self._channel(channel_id), ts)

    def home_view(self, user_id: str) -> Json | None:
        with self.lock:
            view_id = self.home.get(user_id)
            return self.views[view_id] if view_id else None

    def open_modals(self, user_id: str) -> list[Json]:
        """The user's modal stack, bottom first."""
        with self.lock:
            return [self.views[v] for v in self.modals.get(user_id, [])]

    def show_command_ack(self, user_id: str, channel_id: str, ack: Json) -> None:
        """What Slack shows for a slash command's ack body: an ephemeral message to the user (a
        `response_type: in_channel` ack becomes a message in the channel)."""
        with self.lock:
            self._apply_response(ResponseUrl(user=user_id, channel=channel_id), ack)
            self.lock.notify_all()

    def close_view(self, user_id: str, view_id: str) -> Json:
        """The user closes a modal (its close button): it leaves their stack, or the whole stack goes
        when the view has `clear_on_close`; returns the closed view."""
        with self.lock:
            stack = self.modals.get(user_id, [])
            if view_id not in stack:
                raise SlackError("not_found")
            if self.views[view_id].get("clear_on_close"):
                stack.clear()
            else:
                stack.remove(view_id)
            self.lock.notify_all()
            return self.views[view_id]

    def view_submitted(self, user_id: str, view_id: str, ack: Json | None) -> None:
        """Apply the bot's answer to a view_submission as Slack does: no body closes the view,
        `response_action` update / push / clear / errors changes the modal stack (or keeps it)."""
        ack = ack or {}
        with self.lock:
            stack = self.modals.setdefault(user_id, [])
            action = ack.get("response_action")
            if action in ("update", "push"):
                args = {"view": ack.get("view")}
                try:
                    self.check(f"view_submission response_action={action}", args)
                except SlackError:
                    return  # recorded as a violation; Slack would show the user an error
                previous = self.views[view_id] if action == "update" else None
                view = self._new_view(args, user_id, previous)
                if action == "push":
                    view.update(previous_view_id=view_id, root_view_id=stack[0] if stack else view["id"])
                    stack.append(view["id"])
            elif action == "clear":
                stack.clear()
            elif action == "errors":
                inputs = {b.get("block_id") for b in self.views[view_id]["blocks"] if b.get("type") == "input"}
                unknown = sorted(set(ack.get("errors") or {}) - inputs)
                if unknown or not ack.get("errors"):
                    reason = f"errors must name input block_ids {sorted(inputs)}, got {unknown or 'none'}"
                    self._record("view_submission response_action=errors", ack, [Problem("invalid_arguments", reason)])
            elif view_id in stack:
                stack.remove(view_id)

    def new_trigger_id(self, user_id: str) -> str:
        trigger_id = f"{int(self.now())}.{secrets.randbelow(10**9)}.{secrets.token_hex(16)}"
        with self.lock:
            self.triggers[trigger_id] = user_id
        return trigger_id

    # --- the contract ---------------------------------------------------------------------------------

    def check(self, method: str, args: Json) -> None:
        """Check what the bot sends against the contract: violations are recorded, and the ones Slack
        refuses raise SlackError. Broadcast mentions are only recorded: Slack would deliver them."""
        problems = check_arguments(method, args)
        if method in MESSAGE_METHODS:
            problems += check_blocks(args.get("blocks"))
            link_names = arg_is_true(args, "link_names") or args.get("parse") == "full"
            self._record(method, args, check_mentions(args.get("text"), args.get("blocks"), link_names=link_names))
        if isinstance(args.get("view"), dict):
            problems += check_view(args["view"])
            self._record(method, args, check_mentions(None, args["view"]))
        elif "view" in args:
            problems.append(Problem("invalid_arguments", "view must be a JSON object"))
        self._reject(method, args, problems)

    def _record(self, method: str, args: Json, problems: list[Problem]) -> None:
        for problem in problems:
            self.violations.append(Violation(method, f"{problem.error}: {problem.reason}", dict(args)))

    def _reject(self, method: str, args: Json, problems: list[Problem]) -> None:
        """Record the problems as violations and answer with the first one's error, as Slack would."""
        self._record(method, args, problems)
        if problems:
            raise SlackError(problems[0].error)

    def _metadata(self, method: str, args: Json) -> Json | None:
        """Message metadata as Slack takes it: a JSON object with a string `event_type` and an object
        `event_payload` (Slack's "Using message metadata"); anything else is refused (invalid_metadata_format)
        and recorded as a violation."""
        metadata = args.get("metadata")
        if metadata is None:
            return None
        if (
            not isinstance(metadata, dict)
            or not isinstance(metadata.get("event_type"), str)
            or not metadata["event_type"]
            or not isinstance(metadata.get("event_payload"), dict)
        ):
            reason = "metadata must be an object with a string event_type and an object event_payload"
            self._reject(method, args, [Problem("invalid_metadata_format", reason)])
        return {"event_type": metadata["event_type"], "event_payload": dict(metadata["event_payload"])}

    # --- lookups that answer like Slack when something is missing -----------------------------------

    def _channel(self, channel_id: str) -> Channel:
        channel = self.channels.get(channel_id)
        if channel is None:  # Slack also accepts a channel name
            name = channel_id.lstrip("#")
            channel = next((c for c in self.channels.values() if c.name == name and not c.is_im), None)
        if channel is None:
            raise SlackError("channel_not_found")
        return channel

    def _visible_channel(self, channel_id: str) -> Channel:
        channel = self._channel(channel_id)
        if channel.is_private and BOT_USER_ID not in channel.members:
            raise SlackError("channel_not_found")
        return channel

    def _writable_channel(self, channel_id: str) -> Channel:
        if channel_id in self.users:  # posting to a user ID goes to the bot's DM with them
            return self.im_for(channel_id)
        channel = self._visible_channel(channel_id)
        if channel.is_archived:
            raise SlackError("is_archived")
        if BOT_USER_ID not in channel.members:
            raise SlackError("not_in_channel")
        return channel

    def _message(self, channel: Channel, ts: str) -> Json:
        message = channel.messages.get(str(ts))
        if message is None:
            raise SlackError("message_not_found")
        return message

    def _user(self, user_id: str) -> User:
        user = self.users.get(user_id)
        if user is None:
            raise SlackError("user_not_found")
        return user

    # --- changes Slack makes when people (and the bot) act ----------------------------------------

    def add_reaction(self, message: Json, name: str, user_id: str) -> None:
        with self.lock:
            reactions: list[Json] = message.setdefault("reactions", [])
            entry = next((r for r in reactions if r["name"] == name), None)
            if entry is None:
                entry = {"name": name, "users": [], "count": 0}
                reactions.append(entry)
            if user_id in entry["users"]:
                raise SlackError("already_reacted")
            entry["users"].append(user_id)
            entry["count"] += 1

    def remove_reaction(self, message: Json, name: str, user_id: str) -> None:
        with self.lock:
            reactions: list[Json] = message.get("reactions", [])
            entry = next((r for r in reactions if r["name"] == name and user_id in r["users"]), None)
            if entry is None:
                raise SlackError("no_reaction")
            entry["users"].remove(user_id)
            entry["count"] -= 1
            message["reactions"] = [r for r in reactions if r["count"] > 0]

    def _new_view(self, args: Json, user_id: str, previous: Json | None = None) -> Json:
        view = dict(args["view"])
        view_id = previous["id"] if previous else self._next_id("V")
        stored: Json = {
            "id": view_id,
            "team_id": TEAM_ID,
            "type": view["type"],
            "blocks": with_block_ids(view.get("blocks")),
            "private_metadata": view.get("private_metadata", ""),
            "callback_id": view.get("callback_id", ""),
            "external_id": view.get("external_id", ""),
            "state": {"values": {}},
            "hash": f"{int(self.now())}.{secrets.token_hex(4)}",
            "title": view.get("title"),
            "submit": view.get("submit"),
            "close": view.get("close"),
            "clear_on_close": bool(view.get("clear_on_close", False)),
            "notify_on_close": bool(view.get("notify_on_close", False)),
            "previous_view_id": None,
            "root_view_id": view_id,
            "app_id": APP_ID,
            "app_installed_team_id": TEAM_ID,
            "bot_id": BOT_ID,
        }
        self.views[view_id] = stored
        self.view_owner[view_id] = user_id
        return stored

    def _add_ephemeral(self, channel_id: str, user_id: str, args: Json) -> Json:
        ephemeral = {
            "channel": channel_id,
            "user": user_id,
            "ts": self.new_ts(),
            "text": args.get("text", ""),
        }
        ephemeral.update(blocks=with_block_ids(args.get("blocks")), thread_ts=args.get("thread_ts"))
        self.ephemerals.append(ephemeral)
        return ephemeral

    def _apply_response(self, origin: ResponseUrl, args: Json) -> None:
        channel = self.channels.get(origin.channel)
        original = channel.messages.get(origin.message_ts or "") if channel and not origin.ephemeral else None
        if arg_is_true(args, "delete_original"):
            if original is not None and channel is not None:
                del channel.messages[original["ts"]]
            self.ephemerals[:] = [e for e in self.ephemerals if e["ts"] != origin.message_ts]
        elif arg_is_true(args, "replace_original") and origin.message_ts:
            targets = [original] if original else [e for e in self.ephemerals if e["ts"] == origin.message_ts]
            for target in targets:
                target.update(text=args.get("text", ""), blocks=with_block_ids(args.get("blocks")))
        elif args.get("response_type") == "in_channel" and channel is not None:
            self.add_message(channel.id, BOT_USER_ID, args.get("text", ""), blocks=args.get("blocks"))
        else:
            self._add_ephemeral(origin.channel, origin.user, args)
