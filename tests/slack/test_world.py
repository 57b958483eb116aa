"""SlackWorld against a minimal Bolt bot: every helper produces what Slack would send and keeps state."""

from __future__ import annotations

import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from slack_bolt import Ack, App, Respond
from slack_bolt.adapter.wsgi import SlackRequestHandler
from slack_sdk import WebClient

from bot.clock import FrozenClock
from bot.playground.emulator.fake_api import BOT_TOKEN, FakeSlackAPI
from bot.playground.emulator.world import SlackWorld

from .conftest import Serve

SECRET = "test-signing-secret"


def button(action_id: str, text: str, value: str = "") -> dict[str, Any]:
    return {"type": "button", "action_id": action_id, "text": {"type": "plain_text", "text": text}, "value": value}


def section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}}


def actions(*elements: dict[str, Any]) -> dict[str, Any]:
    return {"type": "actions", "elements": list(elements)}


EASY, HARD = ({"text": {"type": "plain_text", "text": level}, "value": level} for level in ("easy", "hard"))
ANSWER_MODAL = {
    "type": "modal",
    "callback_id": "answer_modal",
    "title": {"type": "plain_text", "text": "Answer"},
    "submit": {"type": "plain_text", "text": "Send"},
    "blocks": [
        {
            "type": "input",
            "block_id": "answer",
            "label": {"type": "plain_text", "text": "Your answer"},
            "element": {"type": "plain_text_input", "action_id": "text"},
        },
        {
            "type": "input",
            "block_id": "level",
            "optional": True,
            "label": {"type": "plain_text", "text": "Level"},
            "element": {
                "type": "static_select",
                "action_id": "pick",
                "options": [EASY, HARD],
            },
        },
    ],
}


def build_bot(fake: FakeSlackAPI, executor: ThreadPoolExecutor, inbox: list[dict[str, Any]]) -> App:
    """Posts a question with an Answer button, opens a modal, answers in the thread, publishes a Home tab."""
    client = WebClient(base_url=fake.base_url, token=BOT_TOKEN)
    app = App(signing_secret=SECRET, client=client, listener_executor=executor)

    @app.command("/ask")
    def ask(ack: Ack, command: dict[str, Any], client: WebClient) -> None:
        ack()
        blocks = [
            section(f"*Question:* {command['text']}"),
            actions(button("answer", "Answer")),
        ]
        client.chat_postMessage(channel=command["channel_id"], text=command["text"], blocks=blocks)
        dismiss = [section("Posted."), actions(button("dismiss", "OK"))]
        client.chat_postEphemeral(
            channel=command["channel_id"], user=command["user_id"], text="Posted.", blocks=dismiss
        )

    @app.action("answer")
    def answer(ack: Ack, body: dict[str, Any], client: WebClient) -> None:
        ack()
        inbox.append(body)
        metadata = json.dumps({"channel": body["channel"]["id"], "ts": body["message"]["ts"]})
        client.views_open(trigger_id=body["trigger_id"], view={**ANSWER_MODAL, "private_metadata": metadata})

    @app.view("answer_modal")
    def answered(ack: Ack, view: dict[str, Any], client: WebClient) -> None:
        ack()
        inbox.append(view)
        where = json.loads(view["private_metadata"])
        text = view["state"]["values"]["answer"]["text"]["value"]
        client.chat_postMessage(channel=where["channel"], thread_ts=where["ts"], text=text)

    @app.action("dismiss")
    def dismiss(ack: Ack, respond: Respond) -> None:
        ack()
        respond(delete_original=True)

    @app.action("refresh")
    @app.action("vote")
    @app.action("level")
    def refresh(ack: Ack, body: dict[str, Any]) -> None:
        ack()
        inbox.append(body)

    @app.event("app_home_opened")
    def home(body: dict[str, Any], event: dict[str, Any], client: WebClient) -> None:
        inbox.append(body)
        view = {
            "type": "home",
            "blocks": [section("Hi"), actions(button("refresh", "Refresh"))],
        }
        client.views_publish(user_id=event["user"], view=view)

    @app.event("message")
    @app.event("reaction_added")
    @app.event("reaction_removed")
    def record(body: dict[str, Any]) -> None:
        inbox.append(body)

    return app


@pytest.fixture
def inbox() -> list[dict[str, Any]]:
    return []


@pytest.fixture
def world(
    fake_slack: FakeSlackAPI, slack_clock: FrozenClock, serve_wsgi: Serve, inbox: list[dict[str, Any]]
) -> Iterator[SlackWorld]:
    executor = ThreadPoolExecutor(max_workers=4)
    url = serve_wsgi(SlackRequestHandler(build_bot(fake_slack, executor, inbox)))
    world = SlackWorld(fake_slack, url, SECRET, slack_clock, listener_executor=executor)
    world.add_user("U_ASKER", tz="Europe/Berlin")
    world.add_user("U_EXPERT", tz="America/New_York")
    world.add_channel("C_GENERAL", name="general", members=["U_ASKER", "U_EXPERT"])
    yield world
    world.settle()  # the bot's calls after the test's last assertion are still checked
    executor.shutdown()


def events(inbox: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [body["event"] for body in inbox if body.get("type") == "event_callback"]


def test_a_question_its_answer_and_the_accepting_reaction(world: SlackWorld, inbox: list[dict[str, Any]]) -> None:
    question = world.ask("U_ASKER", "How do I vacuum? #postgres", "C_GENERAL")
    assert question.channel == "C_GENERAL" and question.user == "UBOT"
    assert "*Question:* How do I vacuum? #postgres" in question.plain
    assert question.ts.startswith(str(int(world.clock.now().timestamp())))  # ts follow the frozen clock
    reply_ts = world.reply("U_EXPERT", question, "VACUUM (VERBOSE) big_table;")
    world.react("U_ASKER", ":white_check_mark:", "C_GENERAL", reply_ts)
    world.settle()
    message, reaction = events(inbox)
    assert message["thread_ts"] == question.ts and message["parent_user_id"] == "UBOT"
    assert (message["channel_type"], message["user"], message["ts"]) == ("channel", "U_EXPERT", reply_ts)
    assert reaction["item_user"] == "U_EXPERT" and reaction["item"]["ts"] == reply_ts
    thread = world.messages("C_GENERAL", thread_ts=question.ts)
    assert [m.text for m in thread] == ["How do I vacuum? #postgres", "VACUUM (VERBOSE) big_table;"]
    assert thread[0].raw["reply_count"] == 1
    assert world.fake.message("C_GENERAL", reply_ts)["reactions"][0]["users"] == ["U_ASKER"]
    world.unreact("U_ASKER", "white_check_mark", "C_GENERAL", reply_ts)
    world.settle()
    assert events(inbox)[-1]["type"] == "reaction_removed"


def test_click_opens_a_modal_and_submitting_it_answers(world: SlackWorld, inbox: list[dict[str, Any]]) -> None:
    question = world.ask("U_ASKER", "Why is the sky blue?", "C_GENERAL")
    assert world.click("U_EXPERT", "answer").status == 200
    world.fake.wait_for("views.open")
    click = inbox[0]
    assert click["container"] == {
        "type": "message",
        "message_ts": question.ts,
        "channel_id": "C_GENERAL",
        "is_ephemeral": False,
    }
    assert click["message"]["ts"] == question.ts
    assert click["actions"][0]["block_id"] == question.blocks[1]["block_id"] != ""  # Slack fills in block_ids
    with pytest.raises(AssertionError, match="'Your answer' \\(answer\\) is required"):
        world.submit_view("U_EXPERT", "answer_modal", {})
    since = world.fake.mark()
    world.submit_view("U_EXPERT", "answer_modal", {"answer": "Rayleigh scattering", "pick": "hard"})
    answer = world.wait_post("C_GENERAL", since=since, thread_ts=question.ts)
    assert answer.text == "Rayleigh scattering"
    assert inbox[1]["state"]["values"] == {
        "answer": {"text": {"type": "plain_text_input", "value": "Rayleigh scattering"}},
        "level": {"pick": {"type": "static_select", "selected_option": HARD}},
    }
    assert world.fake.open_modals("U_EXPERT") == []  # an empty ack closed it


def test_ephemeral_buttons_answer_through_the_response_url(world: SlackWorld) -> None:
    world.ask("U_ASKER", "Anything?", "C_GENERAL")
    world.fake.wait_for("chat.postEphemeral")
    assert [e["text"] for e in world.ephemerals("U_ASKER")] == ["Posted."]
    with pytest.raises(AssertionError, match=r"visible: \['answer=', 'dismiss='\]"):
        world.click("U_ASKER", "nope")
    response = world.click("U_ASKER", "dismiss")
    call = world.fake.wait_for("response_url", where=lambda c: c.target == response.meta["response_url"])
    assert call.args["delete_original"] is True
    assert world.ephemerals("U_ASKER") == []


def test_click_finds_the_button_by_value_and_picks_options(world: SlackWorld, inbox: list[dict[str, Any]]) -> None:
    for answer in ("a1", "a2"):
        world.fake.add_message("C_GENERAL", "UBOT", answer, blocks=[actions(button("vote", "Helpful", answer))])
    level = {"type": "static_select", "action_id": "level", "options": [EASY, HARD]}
    world.fake.add_message("C_GENERAL", "UBOT", "How hard?", blocks=[actions(level)])
    world.click("U_ASKER", "vote", "a1")
    world.click("U_ASKER", "level", "hard")
    with pytest.raises(AssertionError, match="has no option 'medium'"):
        world.click("U_ASKER", "level", "medium")
    world.settle()
    vote, pick = inbox
    assert (vote["message"]["text"], vote["actions"][0]["value"]) == ("a1", "a1")
    assert pick["actions"][0]["selected_option"] == HARD


def test_home_tab(world: SlackWorld, inbox: list[dict[str, Any]]) -> None:
    world.open_home("U_ASKER")
    world.fake.wait_for("views.publish", user_id="U_ASKER")
    world.click("U_ASKER", "refresh")
    world.settle()
    home_view = world.fake.home_view("U_ASKER")
    assert home_view is not None
    assert inbox[-1]["container"] == {"type": "view", "view_id": home_view["id"]}
    world.open_home("U_ASKER")  # the second time, the event carries the published view
    world.settle()
    assert events(inbox)[-1]["view"]["id"] == home_view["id"]


def test_edits_deletes_and_redelivered_events(world: SlackWorld, inbox: list[dict[str, Any]]) -> None:
    ts = world.post("U_ASKER", "C_GENERAL", "frist")
    world.edit("U_ASKER", "C_GENERAL", ts, "first")
    world.delete("U_ASKER", "C_GENERAL", ts)
    event = {"type": "reaction_added", "user": "U_ASKER", "reaction": "eyes", "item": {"type": "message"}}
    first = world.send_event(event)
    world.send_event(event, event_id=first.meta["event_id"], retry_num=1)
    world.settle()
    posted, changed, deleted, original, retried = inbox
    assert changed["event"]["subtype"] == "message_changed"
    assert (changed["event"]["message"]["text"], changed["event"]["previous_message"]["text"]) == ("first", "frist")
    assert deleted["event"]["subtype"] == "message_deleted" and deleted["event"]["deleted_ts"] == ts
    assert posted["event_id"] != changed["event_id"] != deleted["event_id"]
    assert original["event_id"] == retried["event_id"]
    assert world.messages("C_GENERAL") == []
    with pytest.raises(AssertionError, match="U_EXPERT cannot edit"):
        world.edit("U_EXPERT", "C_GENERAL", world.post("U_ASKER", "C_GENERAL", "mine"), "theirs")


def test_echo_and_settle_for_negative_assertions(world: SlackWorld, inbox: list[dict[str, Any]]) -> None:
    question = world.ask("U_ASKER", "Loops?", "C_GENERAL")
    since = world.fake.mark()
    assert world.echo(question).status == 200
    world.settle()
    assert inbox == []  # Bolt drops the bot's own messages before any listener
    assert world.fake.calls_to("chat.postMessage", since=since) == []


def test_helpful_errors_for_test_authors(world: SlackWorld) -> None:
    with pytest.raises(AssertionError, match=r"add it first with world\.add_user"):
        world.post("U_GHOST", "C_GENERAL", "boo")
    with pytest.raises(AssertionError, match="U_OUTSIDER is not in C_GENERAL"):
        world.add_user("U_OUTSIDER")
        world.post("U_OUTSIDER", "C_GENERAL", "hi")
    with pytest.raises(AssertionError, match="has no open modal"):
        world.submit_view("U_ASKER", "answer_modal", {})


def test_commands_in_dms(world: SlackWorld, fake_slack: FakeSlackAPI) -> None:
    response = world.command("U_ASKER", "/ask", "In private")
    assert response.status == 200 and response.meta["trigger_id"] in fake_slack.triggers
    dm = world.wait_dm("U_ASKER")
    assert dm.channel == fake_slack.im_for("U_ASKER").id and dm.text == "In private"
