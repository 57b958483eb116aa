"""The playground's JSON API over HTTP: each action must reach the real bot as a signed Slack request, and the
bot's answers must come back through its WebClient into the emulator, which is what the page shows.

The playground always runs on its own fresh SQLite database (never DATABASE_URL), so these tests do too.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.clock import FrozenClock
from bot.config import Settings
from bot.messages.blocks import ephemeral
from bot.messages.capture import ASK_ABOUT_SHORTCUT, SAVE_MODAL, SAVE_SHORTCUT
from bot.messages.forms import TEACH_MODAL
from bot.messages.home import HOME_EDIT_TOPICS, HOME_WORK_DAYS
from bot.messages.routing import ROUTE_DECLINED_NOTE, ROUTE_TAKEN_NOTE, bump_message, on_it_message
from bot.messages.routing_notes import experts_busy_text, knowledge_gap_text
from bot.messages.settings import HOME_EDIT_SETTINGS
from bot.messages.suggestions import SimilarItem, similar_suggestions
from bot.playground.emulator.fake_api import BOT_TOKEN
from bot.playground.server import Playground
from bot.playground.web import serve
from models.expert import Expertise, Person
from models.question import STATUS_RESOLVED, Question

ROOT = Path(__file__).resolve().parent.parent
# Monday 15:00 UTC: 16:00 in Berlin and 10:00 in New York, so both experts are within working hours.
START = datetime(2026, 11, 23, 15, 0, tzinfo=UTC)
GENERAL = "C_GENERAL"
QUESTION = "How do I vacuum a big table without locking it? #postgres"


@contextmanager
def running_playground(start: datetime = START) -> Iterator[tuple[Playground, str]]:
    """A playground on a free 127.0.0.1 port with a frozen clock and no scheduler; yields it and its URL."""
    playground = Playground(Settings(), clock=FrozenClock(start), scheduler=False).start()
    server = serve(playground, 0)
    try:
        yield playground, server.url
    finally:
        server.stop()
        playground.stop()


class Page:
    """What the page does: JSON requests to the playground's API."""

    def __init__(self, url: str) -> None:
        self.url = url

    def request(self, path: str, body: Any = None, headers: dict[str, str] | None = None) -> tuple[int, Any]:
        data = None if body is None else json.dumps(body).encode()
        all_headers = {"Content-Type": "application/json"} | (headers or {})
        request = urllib.request.Request(self.url + path, data=data, headers=all_headers)
        try:
            with urllib.request.urlopen(request, timeout=30) as reply:
                return reply.status, _decode(reply.read(), reply.headers.get_content_type())
        except urllib.error.HTTPError as error:
            return error.code, _decode(error.read(), error.headers.get_content_type())

    def post(self, path: str, **body: Any) -> Any:
        status, answer = self.request(path, body)
        assert status == 200, answer
        return answer

    def refused(self, path: str, **body: Any) -> str:
        status, answer = self.request(path, body)
        assert status == 400, answer
        return str(answer["error"])

    def state(self, user: str, channel: str | None = GENERAL, thread: str | None = None, **extra: Any) -> Any:
        query = {"user": user, **({"channel": channel} if channel else {}), **({"thread": thread} if thread else {})}
        status, answer = self.request("/api/state?" + urllib.parse.urlencode(query | extra))
        assert status == 200, answer
        return answer

    def until(self, what: str, look: Callable[[], Any], timeout: float = 10.0) -> Any:
        """Poll like the page does until `look()` finds something."""
        deadline = time.monotonic() + timeout
        while (found := look()) in (None, [], False):
            if time.monotonic() > deadline:
                raise AssertionError(f"Timed out after {timeout}s waiting for {what}")
            time.sleep(0.05)
        return found


def _decode(body: bytes, content_type: str) -> Any:
    return json.loads(body) if content_type == "application/json" else body.decode()


def texts(message: dict[str, Any]) -> str:
    return message["text"] + json.dumps(message.get("blocks") or [], ensure_ascii=False)


@pytest.fixture
def playground(no_slack_env: None) -> Iterator[Playground]:
    with running_playground() as (playground, url):
        playground.page = Page(url)  # type: ignore[attr-defined]
        yield playground
        playground.world.settle()
    assert playground.fake.violations == [], "the bot broke Slack's contract"


@pytest.fixture
def page(playground: Playground) -> Page:
    return playground.page  # type: ignore[attr-defined, no-any-return]


def ask(page: Page, user: str = "U_ASKER", text: str = QUESTION) -> dict[str, Any]:
    """`/ask` from the message box; returns the question as the channel shows it."""
    page.post("/api/send", user=user, channel=GENERAL, text=f"/ask {text}")
    return page.until("the question in #general", lambda: page.state(user)["view"]["messages"])[-1]


def test_the_page_says_it_is_a_local_simulation_and_is_served_with_its_script(page):
    status, html = page.request("/")
    assert status == 200
    words = " ".join(html.split())
    assert "a local simulation" in words and "Nothing here reaches a real Slack workspace" in words
    for asset in ("/playground.js", "/playground.css"):
        assert page.request(asset)[0] == 200


SHORTCODE = re.compile(r":([a-z0-9_+-]*[a-z][a-z0-9_+-]*):")


def test_the_page_knows_the_emoji_of_every_shortcode_the_bot_writes(playground, page):
    """The page shows emoji as Slack does (`:hourglass_flowing_sand:` → ⏳) from emoji.json: Slack's shortcodes
    (iamcal/emoji-data). Everything the bot sent here, and the notes it sends later (a bump, a knowledge gap…)."""
    status, table = page.request("/emoji.json")
    assert status == 200
    emoji = table["emoji"]
    assert (emoji["hourglass_flowing_sand"], emoji["+1"], emoji["thumbsup"], emoji["white_check_mark"]) == (
        "⏳",
        "👍",
        "👍",
        "✅",
    )
    question = ask(page)
    page.post("/api/send", user="U_BERLIN", channel=GENERAL, text="Use pg_repack", thread_ts=question["ts"])
    answer = page.until("the answer", lambda: page.state("U_ASKER", thread=question["ts"])["thread"]["messages"][1:])
    page.post("/api/react", user="U_ASKER", channel=GENERAL, ts=answer[0]["ts"], reaction="white_check_mark")
    page.post("/api/home", user="U_BERLIN")
    page.post("/api/digest", channel=GENERAL)
    playground.world.settle()
    later = [
        bump_message(["postgres"]),
        ephemeral(knowledge_gap_text(["rust"])),
        ephemeral(experts_busy_text(["rust"], 4)),
        on_it_message("U_BERLIN"),
        similar_suggestions(1, [SimilarItem("lesson", 2, "Use pg_repack", "U_BERLIN")], 10),
        *(ephemeral(note) for note in (ROUTE_TAKEN_NOTE, ROUTE_DECLINED_NOTE)),
    ]
    used = {
        name
        for text in _texts([c.args for c in playground.fake.calls] + [m.as_kwargs() for m in later])
        for name in SHORTCODE.findall(text)
    }
    assert {"hourglass_flowing_sand", "raising_hand", "white_check_mark", "thread"} <= used
    assert sorted(used - set(emoji)) == []


def _texts(node: Any) -> Iterator[str]:
    """Every `text` string in a payload (what Slack shows: message text, text objects)."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "text" and isinstance(value, str):
                yield value
            else:
                yield from _texts(value)
    elif isinstance(node, list):
        for item in node:
            yield from _texts(item)


def test_it_listens_on_loopback_only_and_refuses_other_hosts_and_form_posts(playground, page):
    assert page.url.startswith("http://127.0.0.1:")
    assert playground.server.url.startswith("http://127.0.0.1:")  # the bot's own endpoint too
    status, _ = page.request("/api/state?user=U_ASKER", headers={"Host": "playground.example.com"})
    assert status == 403  # a web page on another name (DNS rebinding) cannot drive it
    request = urllib.request.Request(page.url + "/api/send", data=b"user=U_ASKER&channel=C_GENERAL&text=hi")
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=10)
    assert refused.value.code == 415  # only JSON, which another site cannot send without a CORS preflight


def test_ask_goes_through_the_real_endpoint_and_the_bot_posts_through_the_emulator(playground, page):
    question = ask(page)
    assert question["user"] == "UBOT" and "How do I vacuum a big table without locking it?" in texts(question)
    posted = playground.fake.calls_to("chat.postMessage", channel=GENERAL)
    assert posted and posted[0].token == BOT_TOKEN  # the bot's own WebClient, with its token
    playground.world.settle()
    with playground.runtime.store.session() as session:
        stored = session.query(Question).one()
        assert (stored.channel_id, stored.message_ts, stored.tag_names) == (GENERAL, question["ts"], ["postgres"])


def test_the_experts_declared_their_topics_with_teach_when_it_started(playground, page):
    with playground.runtime.store.session() as session:
        declared = {(e.user_id, e.tag) for e in session.query(Expertise)}
    assert declared == {
        ("U_BERLIN", "postgres"),
        ("U_BERLIN", "kubernetes"),
        ("U_NEWYORK", "postgres"),
        ("U_NEWYORK", "python"),
    }
    assert page.state("U_BERLIN", channel="dm")["view"]["ephemerals"]  # /teach answered them in their DM


def test_a_question_is_routed_to_the_experts_dms_which_only_they_see(page):
    ask(page)
    for expert in ("U_BERLIN", "U_NEWYORK"):  # both within their working hours at START
        dms = page.until(  # Bruno's DM also holds his introduction to Nico, as an onboarding buddy
            f"{expert}'s DM",
            lambda expert=expert: [
                m for m in page.state(expert, channel="dm")["view"]["messages"] if "vacuum" in texts(m)
            ],
        )
        assert "How do I vacuum a big table without locking it?" in texts(dms[-1])
    people = {p["id"]: p for p in page.state("U_ASKER")["people"]}
    assert people["U_BERLIN"]["dm_latest"] and people["U_NEWYORK"]["dm_latest"]  # the page's "DM" badges
    assert not any("vacuum" in texts(m) for m in page.state("U_NEWCOMER", channel="dm")["view"]["messages"])


def test_an_answer_in_the_thread_accepted_with_a_check_mark_resolves_the_question(playground, page):
    question = ask(page)
    page.post(
        "/api/send", user="U_BERLIN", channel=GENERAL, text="VACUUM (VERBOSE) in a quiet hour", thread_ts=question["ts"]
    )
    thread = page.until(
        "the reply in the thread", lambda: page.state("U_ASKER", thread=question["ts"])["thread"]["messages"][1:]
    )
    answer = thread[0]
    assert answer["user"] == "U_BERLIN"
    assert page.state("U_ASKER")["view"]["messages"][-1]["reply_count"] == 1

    page.post("/api/react", user="U_ASKER", channel=GENERAL, ts=answer["ts"], reaction="white_check_mark")

    def resolved() -> bool:
        message = page.state("U_ASKER")["view"]["messages"][-1]
        return "Resolved" in texts(message) and "<@U_BERLIN>" in texts(message)

    page.until("the question to show it is resolved", resolved)
    playground.world.settle()
    with playground.runtime.store.session() as session:
        assert session.query(Question).one().status == STATUS_RESOLVED


def test_a_reaction_button_toggles(playground, page):
    question = ask(page)
    page.post("/api/react", user="U_NEWCOMER", channel=GENERAL, ts=question["ts"], reaction="+1")
    reactions = page.state("U_NEWCOMER")["view"]["messages"][-1]["reactions"]
    assert reactions == [{"name": "+1", "users": ["U_NEWCOMER"], "count": 1}]
    page.post("/api/react", user="U_NEWCOMER", channel=GENERAL, ts=question["ts"], reaction="+1")
    assert page.state("U_NEWCOMER")["view"]["messages"][-1].get("reactions", []) == []


def test_ephemeral_answers_are_shown_to_their_user_only(page):
    page.post("/api/send", user="U_NEWCOMER", channel=GENERAL, text="/ask help")
    shown = page.until("the help", lambda: page.state("U_NEWCOMER")["view"]["ephemerals"])
    assert "/ask" in texts(shown[-1])
    assert page.state("U_ASKER")["view"]["ephemerals"] == []
    assert page.state("U_NEWCOMER", channel="C_ENGINEERING")["view"]["ephemerals"] == []


def test_ask_without_text_opens_the_modal_and_submitting_it_posts_the_question(page):
    page.post("/api/send", user="U_ASKER", channel=GENERAL, text="/ask")
    modal = page.until("the /ask modal", lambda: page.state("U_ASKER")["modal"])
    inputs = {b["block_id"]: b["element"] for b in modal["blocks"] if b["type"] == "input"}
    assert "question" in inputs and "channel" in inputs
    assert page.state("U_BERLIN")["modal"] is None  # only the person who ran /ask sees it

    question, tags = inputs["question"]["action_id"], inputs["tags"]["action_id"]
    values = {"question": {question: "Where do the runbooks live?"}, "tags": {tags: "#ops"}}
    answer = page.post("/api/submit", user="U_ASKER", view_id=modal["id"], values=values)
    assert answer["ok"] and answer["ack"] in (None, {})
    posted = page.until("the question from the modal", lambda: page.state("U_ASKER")["view"]["messages"])
    assert "Where do the runbooks live?" in texts(posted[-1])
    assert page.state("U_ASKER")["modal"] is None


def test_a_required_field_left_empty_is_shown_under_the_field_as_slacks_client_does(playground, page):
    page.post("/api/send", user="U_NEWCOMER", channel=GENERAL, text="/ask")
    modal = page.until("the /ask modal", lambda: page.state("U_NEWCOMER")["modal"])
    sent = len(playground.fake.calls)

    answer = page.post("/api/submit", user="U_NEWCOMER", view_id=modal["id"], values={})

    assert answer == {"ok": False, "errors": {"question": "Please complete this required field."}}
    assert page.state("U_NEWCOMER")["modal"]["id"] == modal["id"]  # still open, nothing sent to the bot
    assert len(playground.fake.calls) == sent
    bad_tags = {"question": {"value": "Where are the runbooks?"}, "tags": {"value": "#ops ???"}}
    answer = page.post("/api/submit", user="U_NEWCOMER", view_id=modal["id"], values=bad_tags)
    assert answer["ack"] == {
        "response_action": "errors",
        "errors": {"tags": "Not a tag: ???. Tags are words like #postgres or #ci-cd."},
    }


def test_a_modal_can_be_closed(page):
    page.post("/api/send", user="U_ASKER", channel=GENERAL, text="/ask")
    modal = page.until("the /ask modal", lambda: page.state("U_ASKER")["modal"])
    page.post("/api/close", user="U_ASKER", view_id=modal["id"])
    assert page.state("U_ASKER")["modal"] is None
    assert "closed" in page.refused("/api/close", user="U_ASKER", view_id=modal["id"])


def test_the_app_home_is_published_when_opened(page):
    page.post("/api/home", user="U_ASKER")
    home = page.until("the App Home", lambda: page.state("U_ASKER")["home"])
    assert home["type"] == "home" and home["blocks"]
    assert page.state("U_BERLIN")["home"] is None


def test_a_private_channel_is_seen_by_its_members_only(page):
    assert "G_LEADS" in [c["id"] for c in page.state("U_ASKER")["channels"]]
    nico = page.state("U_NEWCOMER", channel="G_LEADS")
    assert "G_LEADS" not in [c["id"] for c in nico["channels"]] and nico["view"] is None
    assert "not in G_LEADS" in page.refused("/api/send", user="U_NEWCOMER", channel="G_LEADS", text="hello?")


def test_what_slack_would_refuse_is_refused_with_a_reason(page):
    assert "not a valid command" in page.refused("/api/send", user="U_ASKER", channel=GENERAL, text="/giphy cats")
    assert "read-only" in page.refused("/api/send", user="U_ASKER", channel="dm", text="hello bot")
    assert "Nobody" in page.refused("/api/send", user="U_MALLORY", channel=GENERAL, text="hi")
    assert "Type a message" in page.refused("/api/send", user="U_ASKER", channel=GENERAL, text="   ")


def test_typed_text_is_escaped_and_mentions_are_linked_as_a_slack_client_does(playground, page):
    ts = page.post("/api/send", user="U_ASKER", channel=GENERAL, text="@bruno see #engineering <b> & @here")["ts"]
    message = playground.fake.message(GENERAL, ts)
    assert message["text"] == "<@U_BERLIN> see <#C_ENGINEERING|engineering> &lt;b&gt; &amp; <!here>"


def test_post_digest_now_posts_the_channels_digest_through_the_bot(playground, page):
    question = ask(page)
    page.post("/api/send", user="U_NEWYORK", channel=GENERAL, text="Use pg_repack", thread_ts=question["ts"])
    answer = page.post("/api/digest", channel=GENERAL)
    assert answer == {"ok": True, "outcome": "posted", "error": None}
    digest = page.state("U_NEWCOMER")["view"]["messages"][-1]
    assert digest["blocks"][0]["type"] == "header" and "digest" in digest["blocks"][0]["text"]["text"].lower()
    assert "How do I vacuum" in texts(digest)
    assert "in channels" in page.refused("/api/digest", channel="D_ASKER")


def test_the_state_long_poll_answers_as_soon_as_something_changes(page):
    version = page.state("U_ASKER")["version"]
    answered: list[Any] = []
    waiting = threading.Thread(target=lambda: answered.append(page.state("U_ASKER", since=version)))
    waiting.start()
    page.post("/api/send", user="U_BERLIN", channel=GENERAL, text="Morning all")
    waiting.join(timeout=15)
    assert answered and answered[0]["version"] > version
    assert answered[0]["view"]["messages"][-1]["text"] == "Morning all"


def test_time_travel_moves_the_bots_clock(playground, page):
    before = datetime.fromisoformat(page.state("U_ASKER")["now"])
    page.post("/api/travel", hours=24)
    after = page.state("U_ASKER")
    assert datetime.fromisoformat(after["now"]) - before == timedelta(hours=24)
    assert playground.runtime.clock.now() == START + timedelta(hours=24)
    assert next(p for p in after["people"] if p["id"] == "U_BERLIN")["local_time"] == "Tue 16:00"


def test_contract_violations_are_logged_and_shown_instead_of_failing(playground, page, caplog):
    client = WebClient(base_url=playground.fake.base_url, token=BOT_TOKEN)
    client.chat_postMessage(channel=GENERAL, text="<!channel> look")  # delivered, as Slack would, but flagged
    state = page.state("U_ASKER")
    assert state["violation_count"] == 1 and "chat.postMessage" in state["violations"][0]
    assert any("Slack contract violation" in r.getMessage() for r in caplog.records)
    playground.fake.take_violations()  # provoked on purpose


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_app_py_without_slack_tokens_starts_the_playground(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLACK_") and k != "DATABASE_URL"}
    env["PORT"] = str(_free_port())
    process = subprocess.Popen(
        [sys.executable, str(ROOT / "app.py")], cwd=tmp_path, env=env, stdout=subprocess.PIPE, text=True
    )
    try:
        lines: list[str] = []
        reader = threading.Thread(target=lambda: lines.extend(iter(process.stdout.readline, "")), daemon=True)
        reader.start()
        url = Page("").until("the playground's address", lambda: [line for line in lines if "http://" in line], 60)
        address = url[0].split()[-1]
        assert address == f"http://127.0.0.1:{env['PORT']}"
        status, html = Page(address).request("/")
        assert status == 200 and "local simulation" in html
        assert not list(tmp_path.glob("*.db"))  # its own temporary database, not the default peerlearn.db
    finally:
        process.terminate()
        assert process.wait(timeout=30) == 0


def test_a_button_click_reaches_the_bot_as_block_actions(playground, page):
    page.post("/api/home", user="U_NEWYORK")
    home = page.until("the App Home", lambda: page.state("U_NEWYORK")["home"])
    since = playground.fake.mark()
    page.post("/api/click", user="U_NEWYORK", action_id=HOME_EDIT_TOPICS, view_id=home["id"])
    form = page.until("the topics form", lambda: page.state("U_NEWYORK")["modal"])
    assert form["callback_id"] == TEACH_MODAL
    assert playground.fake.calls_to("views.open", since=since)[0].ok  # opened with the click's trigger_id
    assert "sees no element" in page.refused("/api/click", user="U_NEWYORK", action_id="no_such_button")


def test_working_days_are_ticked_on_the_home_tab(playground, page):
    page.post("/api/home", user="U_BERLIN")
    home = page.until("the App Home", lambda: page.state("U_BERLIN")["home"])
    # The page sends every box ticked, as Slack's client does: Sunday to Thursday.
    page.post(
        "/api/click", user="U_BERLIN", action_id=HOME_WORK_DAYS, value=["0", "1", "2", "3", "6"], view_id=home["id"]
    )
    page.until("the days shown", lambda: "Sunday to Thursday" in json.dumps(page.state("U_BERLIN")["home"]))
    with playground.runtime.store.session() as session:
        assert session.get(Person, ("T0001", "U_BERLIN")).work_days == "01236"
    people = {p["id"]: p for p in page.state("U_BERLIN")["people"]}
    assert people["U_BERLIN"]["working_hours"] is True  # Monday 16:00 in Berlin
    page.post("/api/click", user="U_BERLIN", action_id=HOME_WORK_DAYS, value=["1", "2", "3"], view_id=home["id"])
    page.until(
        "Monday off", lambda: not {p["id"]: p for p in page.state("U_BERLIN")["people"]}["U_BERLIN"]["working_hours"]
    )


def test_maya_is_an_admin_and_changes_the_workspace_settings(playground, page):
    page.post("/api/home", user="U_ASKER")
    assert "Workspace settings" not in json.dumps(page.until("Ana's Home", lambda: page.state("U_ASKER")["home"]))
    page.post("/api/home", user="U_NEWYORK")
    home = page.until("Maya's Home", lambda: page.state("U_NEWYORK")["home"])
    assert "Workspace settings" in json.dumps(home) and "Programme analytics" in json.dumps(home)
    page.post("/api/click", user="U_NEWYORK", action_id=HOME_EDIT_SETTINGS, view_id=home["id"])
    form = page.until("the settings form", lambda: page.state("U_NEWYORK")["modal"])
    answer = page.post("/api/submit", user="U_NEWYORK", view_id=form["id"], values={"escalation_hours": "0"})
    assert answer["ack"]["errors"] == {"escalation_hours": "Write a number of hours from 1 to 168."}
    answer = page.post("/api/submit", user="U_NEWYORK", view_id=form["id"], values={"escalation_hours": "2"})
    assert answer["ok"] and answer["ack"] is None
    page.until(
        "the change shown",
        lambda: (
            "escalation period 4 hours → 2 hours" in json.dumps(page.state("U_NEWYORK")["home"], ensure_ascii=False)
        ),
    )


def test_nico_the_newcomer_was_paired_with_bruno_who_volunteered_as_a_buddy(playground, page):
    welcome = page.until("Nico's introduction", lambda: page.state("U_NEWCOMER", channel="dm")["view"]["messages"])
    assert "<@U_BERLIN> is your onboarding buddy" in texts(welcome[-1]) and "Your first week" in texts(welcome[-1])
    buddy = page.state("U_BERLIN", channel="dm")["view"]["messages"]
    assert any("<@U_NEWCOMER> just joined" in texts(m) for m in buddy)
    page.post("/api/home", user="U_NEWYORK")
    home = page.until("Maya's Home", lambda: page.state("U_NEWYORK")["home"])
    assert "<#C_WELCOME>" in json.dumps(home) and "onboarding channel none" in json.dumps(home, ensure_ascii=False)


def test_it_checks_required_arguments_and_block_kit_with_the_contract_it_ships(no_slack_env):
    with running_playground() as (playground, url):
        page = Page(url)
        assert "How do I vacuum" in texts(ask(page))
        client = WebClient(base_url=playground.fake.base_url, token=BOT_TOKEN)
        with pytest.raises(SlackApiError):
            client.chat_postMessage(channel=GENERAL, text="too long", blocks=[{"type": "divider"}] * 51)
        with pytest.raises(SlackApiError, match="invalid_arguments"):
            client.api_call("chat.postEphemeral", json={"channel": GENERAL, "text": "no user"})
        assert [v.method for v in playground.fake.take_violations()] == ["chat.postMessage", "chat.postEphemeral"]
        playground.world.settle()
        assert playground.fake.violations == []


def test_the_seeded_thread_can_be_saved_as_knowledge_from_its_more_actions_menu(playground, page):
    shortcuts = page.state("U_NEWCOMER")["shortcuts"]
    assert [s["callback_id"] for s in shortcuts] == [ASK_ABOUT_SHORTCUT, SAVE_SHORTCUT]  # as the manifest declares
    messages = page.state("U_NEWCOMER", channel="C_ENGINEERING")["view"]["messages"]
    [root] = [m for m in messages if m.get("reply_count")]  # the seeded thread (other seeds post there too)
    assert root["reply_count"] == 2

    page.post("/api/shortcut", user="U_NEWCOMER", channel="C_ENGINEERING", ts=root["ts"], callback_id=SAVE_SHORTCUT)
    modal = page.until("the save form", lambda: page.state("U_NEWCOMER")["modal"])
    assert modal["callback_id"] == SAVE_MODAL and len(input_options(modal, "replies")) == 2
    values = {"title": {"value": "Find the commit that broke a test"}, "tags": {"value": "#git"}}
    answer = page.post("/api/submit", user="U_NEWCOMER", view_id=modal["id"], values=values)
    assert answer["ok"] and answer["ack"] in (None, {})
    playground.world.settle()

    page.post("/api/send", user="U_ASKER", channel=GENERAL, text="/ask search commit broke test")
    found = page.until("the search answer", lambda: page.state("U_ASKER", channel=GENERAL)["view"]["ephemerals"])
    assert "Find the commit that broke a test" in texts(found[-1]) and "Lesson by" in texts(found[-1])


def input_options(modal: dict[str, Any], block_id: str) -> list[dict[str, Any]]:
    [block] = [b for b in modal["blocks"] if b.get("block_id") == block_id]
    return list(block["element"]["options"])
