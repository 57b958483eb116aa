"""The fake Slack Web API, driven by a real slack_sdk WebClient (sync: JSON and form bodies)."""

from __future__ import annotations

import http.client
import json
import threading
import urllib.request
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from slack_sdk import WebClient, WebhookClient
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_handlers import RateLimitErrorRetryHandler
from slack_sdk.socket_mode import SocketModeClient
from slack_sdk.socket_mode.response import SocketModeResponse

from bot.clock import FrozenClock
from bot.playground.emulator.fake_api import BOT_TOKEN, FakeSlackAPI

SECTION = {"type": "section", "text": {"type": "mrkdwn", "text": "hello"}}


@pytest.fixture
def world(fake_slack: FakeSlackAPI) -> FakeSlackAPI:
    fake_slack.add_user("U_ASKER", tz="Europe/Berlin")
    fake_slack.add_user("U_OTHER")
    fake_slack.add_channel("C_GENERAL", name="general", members=["U_ASKER"])
    return fake_slack


def error_of(call: Any, **kwargs: Any) -> str:
    with pytest.raises(SlackApiError) as raised:
        call(**kwargs)
    return str(raised.value.response["error"])


def reasons(fake: FakeSlackAPI) -> list[str]:
    return [f"{v.method}: {v.reason}" for v in fake.take_violations()]


def test_auth_test_and_users_info_describe_the_workspace(
    world: FakeSlackAPI, client: WebClient, slack_clock: FrozenClock
) -> None:
    auth = client.auth_test()
    assert (auth["team_id"], auth["user_id"], auth["bot_id"]) == ("T0001", "UBOT", "BBOT")
    user = client.users_info(user="U_ASKER")["user"]
    assert (user["tz"], user["tz_offset"], user["is_bot"], user["deleted"]) == ("Europe/Berlin", 3600, False, False)
    assert error_of(client.users_info, user="U_NOBODY") == "user_not_found"
    slack_clock.set(datetime(2027, 7, 1, tzinfo=UTC))  # summer time in Berlin
    assert client.users_info(user="U_ASKER")["user"]["tz_offset"] == 7200
    assert client.team_info()["team"]["id"] == "T0001"
    assert [c.method for c in world.calls] == ["auth.test", "users.info", "users.info", "users.info", "team.info"]
    assert world.calls[0].token == BOT_TOKEN


def test_post_message_is_stored_with_increasing_ts(world: FakeSlackAPI, client: WebClient) -> None:
    first = client.chat_postMessage(channel="C_GENERAL", text="hello", blocks=[SECTION])
    second = client.chat_postMessage(channel="#general", text="again")
    assert first["channel"] == second["channel"] == "C_GENERAL"
    assert first["message"]["bot_id"] == "BBOT"
    assert float(first["ts"]) < float(second["ts"])
    assert len(first["ts"].split(".")[1]) == 6
    assert [m["text"] for m in world.messages("C_GENERAL")] == ["hello", "again"]


def test_threads_and_replies(world: FakeSlackAPI, client: WebClient) -> None:
    parent = world.add_message("C_GENERAL", "U_ASKER", "question?")
    reply = client.chat_postMessage(channel="C_GENERAL", text="answer", thread_ts=parent["ts"])
    assert reply["message"]["thread_ts"] == parent["ts"]
    replies = client.conversations_replies(channel="C_GENERAL", ts=parent["ts"])["messages"]
    assert [m["text"] for m in replies] == ["question?", "answer"]
    assert replies[0]["reply_count"] == 1 and replies[1]["parent_user_id"] == "U_ASKER"
    assert error_of(client.conversations_replies, channel="C_GENERAL", ts="1.000000") == "thread_not_found"
    link = client.chat_getPermalink(channel="C_GENERAL", message_ts=reply["ts"])["permalink"]
    assert link.endswith(f"?thread_ts={parent['ts']}&cid=C_GENERAL")


def test_channel_errors(world: FakeSlackAPI, client: WebClient) -> None:
    world.add_channel("C_NOBOT", bot_member=False, members=["U_ASKER"])
    world.add_channel("C_OLD", archived=True)
    world.add_channel("G_SECRET", private=True, bot_member=False)
    assert error_of(client.chat_postMessage, channel="C_NOBOT", text="x") == "not_in_channel"
    assert error_of(client.chat_postMessage, channel="C_OLD", text="x") == "is_archived"
    assert error_of(client.chat_postMessage, channel="C_NOPE", text="x") == "channel_not_found"
    assert error_of(client.conversations_info, channel="G_SECRET") == "channel_not_found"
    assert client.conversations_info(channel="C_NOBOT")["channel"]["is_member"] is False
    assert world.violations == []  # Slack's answers to a bot's reasonable mistakes are not contract violations


def test_update_delete_and_ephemeral(world: FakeSlackAPI, client: WebClient) -> None:
    mine = client.chat_postMessage(channel="C_GENERAL", text="v1")
    theirs = world.add_message("C_GENERAL", "U_ASKER", "user text")
    updated = client.chat_update(channel="C_GENERAL", ts=mine["ts"], text="v2")
    assert updated["message"]["text"] == "v2" and world.message("C_GENERAL", mine["ts"])["edited"]
    assert error_of(client.chat_update, channel="C_GENERAL", ts="1.000000", text="x") == "message_not_found"
    assert error_of(client.chat_update, channel="C_GENERAL", ts=theirs["ts"], text="x") == "cant_update_message"
    ephemeral = client.chat_postEphemeral(channel="C_GENERAL", user="U_ASKER", text="psst")
    assert ephemeral["message_ts"] and world.ephemerals[-1]["text"] == "psst"
    assert error_of(client.chat_postEphemeral, channel="C_GENERAL", user="U_OTHER", text="x") == "user_not_in_channel"
    client.chat_delete(channel="C_GENERAL", ts=mine["ts"])
    assert [m["text"] for m in world.messages("C_GENERAL")] == ["user text"]


def test_dms_reactions_and_history(world: FakeSlackAPI, client: WebClient) -> None:
    im = client.conversations_open(users="U_OTHER")["channel"]["id"]
    assert im.startswith("D")
    posted = client.chat_postMessage(channel="U_OTHER", text="hi in DM")  # a user id posts to the DM
    assert posted["channel"] == im
    client.reactions_add(channel=im, timestamp=posted["ts"], name="eyes")
    got = client.reactions_get(channel=im, timestamp=posted["ts"])["message"]["reactions"]
    assert got == [{"name": "eyes", "users": ["UBOT"], "count": 1}]
    assert error_of(client.reactions_add, channel=im, timestamp=posted["ts"], name="eyes") == "already_reacted"
    assert client.conversations_history(channel=im)["messages"][0]["text"] == "hi in DM"


def test_views_open_push_update_publish(world: FakeSlackAPI, client: WebClient) -> None:
    modal = {"type": "modal", "title": {"type": "plain_text", "text": "Ask"}, "blocks": [SECTION]}
    trigger = world.new_trigger_id("U_ASKER")
    view = client.views_open(trigger_id=trigger, view=modal)["view"]
    assert view["id"].startswith("V") and world.open_modals("U_ASKER")[0]["id"] == view["id"]
    assert error_of(client.views_open, trigger_id=trigger, view=modal) == "exchanged_trigger_id"
    pushed = client.views_push(trigger_id=world.new_trigger_id("U_ASKER"), view=modal)["view"]
    assert pushed["previous_view_id"] == view["id"]
    changed = {**modal, "title": {"type": "plain_text", "text": "Changed"}}
    assert client.views_update(view_id=view["id"], view=changed)["view"]["title"]["text"] == "Changed"
    assert error_of(client.views_update, view_id=view["id"], hash="stale", view=modal) == "hash_conflict"
    home = client.views_publish(user_id="U_ASKER", view={"type": "home", "blocks": [SECTION]})["view"]
    assert world.home_view("U_ASKER") == home


@pytest.mark.filterwarnings("ignore:The top-level `text` argument is missing")
def test_contract_violations_are_recorded_and_refused(world: FakeSlackAPI, client: WebClient) -> None:
    assert error_of(client.chat_postMessage, channel="C_GENERAL", blocks=[SECTION]) == "no_text"
    too_many = [SECTION] * 51
    assert error_of(client.chat_postMessage, channel="C_GENERAL", text="x", blocks=too_many) == "invalid_blocks"
    long_section = {"type": "section", "text": {"type": "mrkdwn", "text": "x" * 3001}}
    assert error_of(client.chat_postMessage, channel="C_GENERAL", text="x", blocks=[long_section]) == "invalid_blocks"
    button = {"type": "button", "action_id": "a", "text": {"type": "plain_text", "text": "b" * 76}}
    blocks = [{"type": "actions", "elements": [button]}, {"type": "fancy"}]
    assert error_of(client.chat_postEphemeral, channel="C_GENERAL", user="U_ASKER", text="x", blocks=blocks)
    assert error_of(client.views_open, trigger_id="nope", view={"type": "modal", "blocks": []}) == "invalid_arguments"
    assert error_of(client.api_call, api_method="users.info", params={}) == "invalid_arguments"
    assert error_of(client.api_call, api_method="files.upload") == "unknown_method"
    assert reasons(world) == [
        "chat.postMessage: no_text: blocks/attachments given without fallback `text` (needed for notifications)",
        "chat.postMessage: invalid_blocks: 51 blocks (max 50)",
        "chat.postMessage: invalid_blocks: blocks[0] (section).text: text must be 1..3000 chars (got 3001)",
        "chat.postEphemeral: invalid_blocks: blocks[0] (actions).elements[0] (button).text: "
        "text must be 1..75 chars (got 76)",
        "chat.postEphemeral: invalid_blocks: blocks[1]: unknown block type 'fancy'",
        "views.open: invalid_arguments: modal needs a title",
        "users.info: invalid_arguments: missing required argument 'user'",
        "files.upload: unknown_method: files.upload is not an emulated method",
    ]


def test_broadcast_mentions_are_violations_but_escaped_text_is_fine(world: FakeSlackAPI, client: WebClient) -> None:
    client.chat_postMessage(channel="C_GENERAL", text="ok: &lt;!channel&gt; and <@U_ASKER>")
    mrkdwn = {"type": "section", "text": {"type": "mrkdwn", "text": "ping <!subteam^S123|@oncall>"}}
    client.chat_postMessage(channel="C_GENERAL", text="hey <!here>", blocks=[mrkdwn])  # Slack delivers it...
    client.chat_postMessage(channel="C_GENERAL", text="@everyone look", link_names=True)
    assert reasons(world) == [  # ...but a bot must never broadcast on a user's behalf
        "chat.postMessage: mention: broadcast mention '<!here>' in 'hey <!here>'",
        "chat.postMessage: mention: broadcast mention '<!subteam^S123|@oncall>' in 'ping <!subteam^S123|@oncall>'",
        "chat.postMessage: mention: broadcast mention '@everyone' in '@everyone look'",
    ]


def test_tokens(world: FakeSlackAPI) -> None:
    assert error_of(WebClient(base_url=world.base_url, token="xoxb-wrong").auth_test) == "invalid_auth"
    assert error_of(WebClient(base_url=world.base_url).auth_test) == "not_authed"
    assert len(world.take_violations()) == 2
    form = b"token=" + BOT_TOKEN.encode() + b"&user=U_ASKER"  # the token may also come as a form field
    request = urllib.request.Request(world.base_url + "users.info", data=form, method="POST")
    with urllib.request.urlopen(request) as reply:
        assert json.load(reply)["user"]["id"] == "U_ASKER"
    world.revoke_token(BOT_TOKEN)
    assert error_of(WebClient(base_url=world.base_url, token=BOT_TOKEN).auth_test) == "token_revoked"
    world.accept_token(BOT_TOKEN)
    assert WebClient(base_url=world.base_url, token=BOT_TOKEN).auth_test()["ok"]
    world.refuse_token(BOT_TOKEN, "account_inactive")
    assert error_of(WebClient(base_url=world.base_url, token=BOT_TOKEN).auth_test) == "account_inactive"


def test_socket_mode_takes_the_app_token_only_and_delivers_envelopes(world: FakeSlackAPI) -> None:
    endpoint = world.enable_socket_mode("xapp-1-A0001-1")
    bot, app = WebClient(base_url=world.base_url, token=BOT_TOKEN), WebClient(base_url=world.base_url)
    assert error_of(bot.apps_connections_open, app_token=BOT_TOKEN) == "not_allowed_token_type"
    assert error_of(app.apps_connections_open, app_token="xapp-1-A0001-unknown") == "invalid_auth"
    assert error_of(WebClient(base_url=world.base_url, token="xapp-1-A0001-1").auth_test) == "not_allowed_token_type"
    client = SocketModeClient(app_token="xapp-1-A0001-1", web_client=bot)
    client.socket_mode_request_listeners.append(
        lambda c, request: c.send_socket_mode_response(
            SocketModeResponse(request.envelope_id, {"text": f"got {request.payload['text']}"})
        )
    )
    client.connect()
    try:
        ack = endpoint.deliver("slash_commands", {"command": "/ask", "text": "help"})
        assert ack["payload"] == {"text": "got help"}
    finally:
        client.close()


def test_failure_injection(world: FakeSlackAPI, client: WebClient) -> None:
    world.fail("chat.postMessage", "missing_scope", needed="chat:write", provided="")
    with pytest.raises(SlackApiError) as raised:
        client.chat_postMessage(channel="C_GENERAL", text="x")
    assert raised.value.response.data == {"ok": False, "error": "missing_scope", "needed": "chat:write", "provided": ""}
    assert client.chat_postMessage(channel="C_GENERAL", text="x")["ok"]  # only once
    world.rate_limit("users.info", retry_after=7, times=1)
    with pytest.raises(SlackApiError) as limited:
        client.users_info(user="U_ASKER")
    assert limited.value.response.status_code == 429
    assert limited.value.response.headers["Retry-After"] == "7"
    world.rate_limit("users.info", retry_after=0)
    patient = WebClient(base_url=world.base_url, token=BOT_TOKEN, retry_handlers=[RateLimitErrorRetryHandler()])
    assert patient.users_info(user="U_ASKER")["ok"]  # retried after Retry-After
    assert [c.status for c in world.calls_to("users.info")] == [429, 429, 200]


def test_wait_for_sees_calls_from_other_threads(world: FakeSlackAPI, client: WebClient) -> None:
    since = world.mark()
    worker = threading.Thread(target=client.chat_postMessage, kwargs={"channel": "C_GENERAL", "text": "later"})
    worker.start()
    call = world.wait_for("chat.postMessage", since=since, channel="C_GENERAL")
    worker.join()
    assert call.args["text"] == "later" and call.ok
    world.wait_quiet(idle=0.05)
    with pytest.raises(AssertionError) as timeout:
        world.wait_for("chat.update", timeout=0.1, ts="1.0")
    assert "chat.update(ts='1.0')" in str(timeout.value)
    assert 'chat.postMessage {"channel": "C_GENERAL", "text": "later"} -> ok' in str(timeout.value)


def test_response_urls(world: FakeSlackAPI, client: WebClient) -> None:
    posted = client.chat_postMessage(channel="C_GENERAL", text="original")
    url = world.new_response_url("U_ASKER", "C_GENERAL", message_ts=posted["ts"])
    assert WebhookClient(url).send(text="replaced", replace_original=True).status_code == 200
    assert world.message("C_GENERAL", posted["ts"])["text"] == "replaced"
    WebhookClient(url).send(text="just for you")
    assert world.ephemerals[-1]["text"] == "just for you"
    WebhookClient(url).send(text="for all", response_type="in_channel")
    WebhookClient(url).send(delete_original=True)
    assert [m["text"] for m in world.messages("C_GENERAL")] == ["for all"]
    assert [c.args.get("text") for c in world.calls_to("response_url")] == ["replaced", "just for you", "for all", None]
    assert WebhookClient(url).send(text="fifth use").status_code == 200
    assert WebhookClient(url).send(text="sixth use").status_code == 404
    bad = WebhookClient(world.new_response_url("U_ASKER", "C_GENERAL")).send(text="x", blocks=[{"type": "nope"}])
    assert bad.status_code == 400
    assert reasons(world) == [
        "response_url: used_url: used more than 5 times",
        "response_url: invalid_blocks: blocks[0]: unknown block type 'nope'",
    ]


def test_slow_responses(world: FakeSlackAPI) -> None:
    world.respond_slowly("auth.test", 0.3)
    timeout: Any = 0.1  # typed as int by slack_sdk, but urllib takes seconds as a float
    impatient = WebClient(base_url=world.base_url, token=BOT_TOKEN, timeout=timeout, retry_handlers=[])
    with pytest.raises(TimeoutError):
        impatient.auth_test()


def test_an_answer_after_applying_can_be_slow_or_never_come(world: FakeSlackAPI) -> None:
    timeout: Any = 0.2
    impatient = WebClient(base_url=world.base_url, token=BOT_TOKEN, timeout=timeout, retry_handlers=[])
    world.respond_slowly("chat.postMessage", 0.5, after_applying=True)
    with pytest.raises(TimeoutError):
        impatient.chat_postMessage(channel="C_GENERAL", text="slow")
    assert [m["text"] for m in world.messages("C_GENERAL")] == ["slow"], "Slack did it; the client never heard"

    world.drop_responses("chat.update")
    with pytest.raises(http.client.RemoteDisconnected):
        impatient.chat_update(channel="C_GENERAL", ts=world.messages("C_GENERAL")[0]["ts"], text="cut")
    assert world.messages("C_GENERAL")[0]["text"] == "cut"
    [cut] = world.calls_to("chat.update")
    assert cut.ok and not cut.answered and "connection cut" in str(cut)
    seen: list[str] = []
    world.after_applying("auth.test", lambda call: seen.append(call.method))
    assert impatient.auth_test()["ok"] and impatient.auth_test()["ok"]
    assert seen == ["auth.test"], "once, then answered as usual"


def test_message_metadata_is_kept_and_listed_only_when_asked_for(
    world: FakeSlackAPI, client: WebClient, slack_clock: FrozenClock
) -> None:
    metadata = {"event_type": "peerlearn_question", "event_payload": {"question_id": 7}}
    first = client.chat_postMessage(channel="C_GENERAL", text="tagged", metadata=metadata)
    assert first["message"]["metadata"] == metadata
    client.chat_postMessage(channel="C_GENERAL", text="thread reply", thread_ts=first["ts"])
    client.chat_update(channel="C_GENERAL", ts=first["ts"], text="tagged, edited")  # keeps its metadata
    slack_clock.advance(timedelta(minutes=5))
    second = client.chat_postMessage(channel="C_GENERAL", text="plain")

    plain = client.conversations_history(channel="C_GENERAL")["messages"]
    assert [m["text"] for m in plain] == ["plain", "tagged, edited"]  # newest first, top level only
    assert all("metadata" not in m for m in plain)
    listed = client.conversations_history(channel="C_GENERAL", include_all_metadata=True)["messages"]
    assert [m.get("metadata") for m in listed] == [None, metadata]
    replies = client.conversations_replies(channel="C_GENERAL", ts=first["ts"], include_all_metadata=True)
    assert replies["messages"][0]["metadata"] == metadata

    since = client.conversations_history(channel="C_GENERAL", oldest=first["ts"])["messages"]
    assert [m["ts"] for m in since] == [second["ts"]], "oldest is exclusive"
    inclusive = client.conversations_history(channel="C_GENERAL", oldest=first["ts"], inclusive=True)
    assert [m["ts"] for m in inclusive["messages"]] == [second["ts"], first["ts"]]
    before = client.conversations_history(channel="C_GENERAL", latest=second["ts"])["messages"]
    assert [m["ts"] for m in before] == [first["ts"]]
    paged = client.conversations_history(channel="C_GENERAL", limit=1)
    assert paged["has_more"] and [m["ts"] for m in paged["messages"]] == [second["ts"]]
    rest = client.conversations_history(channel="C_GENERAL", limit=1, cursor=paged["response_metadata"]["next_cursor"])
    assert not rest["has_more"] and [m["ts"] for m in rest["messages"]] == [first["ts"]]
    assert error_of(client.conversations_history, channel="C_GENERAL", oldest="soon") == "invalid_ts_oldest"


def test_history_needs_the_bot_in_the_channel_and_metadata_its_shape(world: FakeSlackAPI, client: WebClient) -> None:
    world.add_channel("C_ELSEWHERE", members=["U_ASKER"], bot_member=False)
    assert error_of(client.conversations_history, channel="C_ELSEWHERE") == "not_in_channel"
    bad = {"event_type": "peerlearn_question", "event_payload": "7"}
    assert error_of(client.chat_postMessage, channel="C_GENERAL", text="x", metadata=bad) == "invalid_metadata_format"
    assert world.messages("C_GENERAL") == []
    assert reasons(world) == [
        "chat.postMessage: invalid_metadata_format: metadata must be an object with a string event_type and an "
        "object event_payload"
    ]


def test_conversations_members_pages_and_hides_private_channels_from_outsiders(fake_slack, client):
    fake_slack.add_user("U1")
    fake_slack.add_user("U2")
    fake_slack.add_user("U3")
    fake_slack.add_channel("C1", name="one", members=["U1", "U2", "U3"])
    fake_slack.add_channel("G1", name="secret", private=True, members=["U1"], bot_member=False)
    first = client.conversations_members(channel="C1", limit=2)
    cursor = first["response_metadata"]["next_cursor"]
    assert cursor
    rest = client.conversations_members(channel="C1", limit=2, cursor=cursor)
    assert rest["response_metadata"]["next_cursor"] == ""
    assert {"U1", "U2", "U3"} <= set(first["members"]) | set(rest["members"])
    with pytest.raises(SlackApiError) as refused:
        client.conversations_members(channel="G1")
    assert refused.value.response["error"] == "channel_not_found"
