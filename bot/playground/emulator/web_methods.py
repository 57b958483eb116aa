"""The Slack Web API methods the emulator answers, one `_api_<method>` each, from the workspace's state.

They run under the workspace's lock (FakeSlackAPI calls them); one answers an error by raising `SlackError`.
"""

from __future__ import annotations

from typing import Any

from bot.playground.emulator.contract import Problem
from bot.playground.emulator.workspace import (
    BOT_ID,
    BOT_USER_ID,
    TEAM_DOMAIN,
    TEAM_ID,
    Json,
    SlackError,
    Workspace,
    arg_is_true,
    with_block_ids,
)


def _timestamp(value: Any, error: str, default: float) -> float:
    if value in (None, ""):
        return default
    try:
        return float(value)
    except (TypeError, ValueError):
        raise SlackError(error) from None


class WebMethods(Workspace):
    """The workspace answering the Web API methods the bot calls (as Slack would, errors included)."""

    def _api_auth_test(self, args: Json) -> Json:
        return {
            "url": f"https://{TEAM_DOMAIN}.slack.com/",
            "team": self.team["name"],
            "user": self.users[BOT_USER_ID].name,
            "team_id": TEAM_ID,
            "user_id": BOT_USER_ID,
            "bot_id": BOT_ID,
            "is_enterprise_install": False,
        }

    def _api_team_info(self, args: Json) -> Json:
        if args.get("team") not in (None, "", TEAM_ID):
            raise SlackError("team_not_found")
        return {"team": {**self.team, "email_domain": "example.com", "icon": {"image_default": True}}}

    def _api_users_info(self, args: Json) -> Json:
        return {"user": self._user(args["user"]).to_api(self.now())}

    def _api_conversations_info(self, args: Json) -> Json:
        return {"channel": self._visible_channel(args["channel"]).to_api()}

    def _api_conversations_members(self, args: Json) -> Json:
        """Members, paginated by `limit`/`cursor` as Slack does; a private channel only to a member bot."""
        channel = self._visible_channel(args["channel"])
        members = sorted(channel.members)
        start = int(args.get("cursor") or 0)
        limit = max(1, min(int(args.get("limit") or 100), 1000))
        page, rest = members[start : start + limit], members[start + limit :]
        return {"members": page, "response_metadata": {"next_cursor": str(start + limit) if rest else ""}}

    def _api_conversations_open(self, args: Json) -> Json:
        if args.get("channel"):
            channel = self._visible_channel(args["channel"])
        else:
            users = list(dict.fromkeys(u.strip() for u in str(args["users"]).split(",") if u.strip()))
            if not users:
                raise SlackError("users_list_not_supplied")
            if len(users) > 8:
                raise SlackError("too_many_users")
            if any(self._user(user).deleted for user in users):
                raise SlackError("user_disabled")
            channel = self.im_for(users[0]) if len(users) == 1 else self.mpim_for(users)
        return {"channel": channel.to_api() if arg_is_true(args, "return_im") else {"id": channel.id}}

    def _api_chat_postMessage(self, args: Json) -> Json:
        metadata = self._metadata("chat.postMessage", args)
        channel = self._writable_channel(args["channel"])
        message = self.add_message(
            channel.id,
            BOT_USER_ID,
            args.get("text", ""),
            thread_ts=args.get("thread_ts"),
            blocks=args.get("blocks"),
        )
        if metadata is not None:
            message["metadata"] = metadata
        return {"channel": channel.id, "ts": message["ts"], "message": message}

    def _api_chat_postEphemeral(self, args: Json) -> Json:
        channel = self._writable_channel(args["channel"])
        self._user(args["user"])
        if args["user"] not in channel.members:
            raise SlackError("user_not_in_channel")
        return {"message_ts": self._add_ephemeral(channel.id, args["user"], args)["ts"]}

    def _api_chat_update(self, args: Json) -> Json:
        metadata = self._metadata("chat.update", args)
        channel = self._visible_channel(args["channel"])
        message = self._message(channel, args["ts"])
        if message.get("user") != BOT_USER_ID:
            raise SlackError("cant_update_message")
        if metadata is not None:  # without the argument, the message keeps its metadata
            message["metadata"] = metadata
        if "text" in args:
            message["text"] = args["text"]
        if "blocks" in args:
            message["blocks"] = with_block_ids(args["blocks"])
        message["edited"] = {"user": BOT_USER_ID, "ts": self.new_ts()}
        return {"channel": channel.id, "ts": message["ts"], "text": message["text"], "message": message}

    def _api_chat_delete(self, args: Json) -> Json:
        channel = self._visible_channel(args["channel"])
        message = self._message(channel, args["ts"])
        if message.get("user") != BOT_USER_ID:
            raise SlackError("cant_delete_message")
        del channel.messages[message["ts"]]
        return {"channel": channel.id, "ts": message["ts"]}

    def _api_chat_getPermalink(self, args: Json) -> Json:
        channel = self._visible_channel(args["channel"])
        message = self._message(channel, args["message_ts"])
        link = f"https://{TEAM_DOMAIN}.slack.com/archives/{channel.id}/p{message['ts'].replace('.', '')}"
        if message.get("thread_ts", message["ts"]) != message["ts"]:
            link += f"?thread_ts={message['thread_ts']}&cid={channel.id}"
        return {"channel": channel.id, "permalink": link}

    def _page(self, messages: list[Json], args: Json) -> Json:
        """A page of `messages` (by `cursor` and `limit`, at most 999), each as Slack lists it: message metadata
        only with `include_all_metadata`."""
        start = int(args.get("cursor") or 0)
        limit = max(1, min(int(args.get("limit") or 100), 999))
        with_metadata = arg_is_true(args, "include_all_metadata")
        page = [m if with_metadata else {k: v for k, v in m.items() if k != "metadata"} for m in messages]
        more = start + limit < len(messages)
        return {
            "messages": page[start : start + limit],
            "has_more": more,
            "response_metadata": {"next_cursor": str(start + limit) if more else ""},
        }

    def _between(self, messages: list[Json], args: Json) -> list[Json]:
        """The messages after `oldest` and before `latest` (those timestamps included with `inclusive`).
        Without `latest`, everything up to now (Slack's default), which here is every message: timestamps
        may run ahead of a frozen clock."""
        oldest = _timestamp(args.get("oldest"), "invalid_ts_oldest", 0.0)
        latest = _timestamp(args.get("latest"), "invalid_ts_latest", float("inf"))
        inclusive = arg_is_true(args, "inclusive")
        return [
            m
            for m in messages
            if (oldest <= float(m["ts"]) <= latest if inclusive else oldest < float(m["ts"]) < latest)
        ]

    def _api_conversations_replies(self, args: Json) -> Json:
        channel = self._visible_channel(args["channel"])
        parent = channel.messages.get(str(args["ts"]))
        if parent is None:
            raise SlackError("thread_not_found")
        root = parent.get("thread_ts", parent["ts"])
        return self._page(self._between(self.messages(channel.id, thread_ts=root), args), args)

    def _api_conversations_history(self, args: Json) -> Json:
        """Top-level messages, newest first."""
        channel = self._visible_channel(args["channel"])
        if BOT_USER_ID not in channel.members and not channel.is_im:
            raise SlackError("not_in_channel")
        return self._page(list(reversed(self._between(self.messages(channel.id), args))), args)

    def _api_reactions_add(self, args: Json) -> Json:
        message = self._message(self._visible_channel(args["channel"]), args["timestamp"])
        self.add_reaction(message, str(args["name"]).strip(":"), BOT_USER_ID)
        return {}

    def _api_reactions_get(self, args: Json) -> Json:
        channel = self._visible_channel(args["channel"])
        message = self._message(channel, args["timestamp"])
        return {"type": "message", "channel": channel.id, "message": message}

    def _trigger_user(self, trigger_id: str) -> str:
        if trigger_id not in self.triggers:
            raise SlackError("invalid_trigger_id")
        if trigger_id in self._used_triggers:
            raise SlackError("exchanged_trigger_id")
        self._used_triggers.add(trigger_id)
        return self.triggers[trigger_id]

    def _api_views_open(self, args: Json) -> Json:
        user_id = self._trigger_user(args["trigger_id"])
        view = self._new_view(args, user_id)
        self.modals[user_id] = [view["id"]]
        return {"view": view}

    def _api_views_push(self, args: Json) -> Json:
        user_id = self._trigger_user(args["trigger_id"])
        stack = self.modals.setdefault(user_id, [])
        if not stack:
            raise SlackError("not_found", reason="views.push needs an open modal")
        if len(stack) >= 3:
            raise SlackError("push_limit_reached")
        view = self._new_view(args, user_id)
        view.update(previous_view_id=stack[-1], root_view_id=stack[0])
        stack.append(view["id"])
        return {"view": view}

    def _api_views_update(self, args: Json) -> Json:
        view_id = args.get("view_id") or next(
            (v for v, view in self.views.items() if view["external_id"] == args.get("external_id")), None
        )
        previous = self.views.get(view_id or "")
        if previous is None:
            raise SlackError("not_found")
        if args.get("hash") and args["hash"] != previous["hash"]:
            raise SlackError("hash_conflict")
        view = self._new_view(args, self.view_owner[previous["id"]], previous)
        view.update(previous_view_id=previous["previous_view_id"], root_view_id=previous["root_view_id"])
        return {"view": view}

    def _api_views_publish(self, args: Json) -> Json:
        user = self._user(args["user_id"])
        previous = self.home_view(user.id)
        if args.get("hash") and previous and args["hash"] != previous["hash"]:
            raise SlackError("hash_conflict")
        if args["view"].get("type") != "home":
            self._reject("views.publish", args, [Problem("invalid_arguments", "publish needs type home")])
        view = self._new_view(args, user.id, previous)
        self.home[user.id] = view["id"]
        return {"view": view}
