"""Issue 2's core loop, end to end: signed requests into the real endpoint, Slack played by the emulator.

Each test reads as a conversation in #general between an asker, an expert and a bystander.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from sqlalchemy import func, select

from models.question import STATUS_OPEN, STATUS_RESOLVED, STATUS_UNPOSTED, Answer, Question, Vote

ROOT = Path(__file__).resolve().parent.parent
GENERAL = "C_GENERAL"
PEOPLE = ("U_ASKER", "U_EXPERT", "U_FAN")


@pytest.fixture
def world(slack):
    for user in PEOPLE:
        slack.add_user(user)
    slack.add_channel(GENERAL, name="general", members=list(PEOPLE))
    return slack


def db(world):
    return world.runtime.store.session()


def one_question(world) -> Question:
    with db(world) as s:
        return s.scalars(select(Question)).one()


def count(world, model) -> int:
    with db(world) as s:
        return s.scalar(select(func.count()).select_from(model))


def ack_text(response) -> str:
    payload = response.json() or {}
    texts = [payload.get("text", "")]
    texts += [b["text"]["text"] for b in payload.get("blocks", []) if b.get("type") == "section"]
    return "\n".join(texts)


def test_ask_posts_the_question_in_the_channel_and_stores_it(world):
    response = world.command("U_ASKER", "/ask", "How do I vacuum a big table? #postgres #ops", GENERAL)
    assert response.status == 200
    assert ack_text(response) == ""  # nothing to say: the question itself appears in the channel

    posted = world.wait_post(GENERAL)
    assert "<@U_ASKER>" in posted.plain
    assert "How do I vacuum a big table?" in posted.plain
    assert "`#postgres` `#ops`" in posted.plain
    assert "thread" in posted.plain

    world.settle()
    question = one_question(world)
    assert (question.channel_id, question.message_ts, question.status) == (GENERAL, posted.ts, STATUS_OPEN)
    assert question.tag_names == ["postgres", "ops"]
    assert question.channel_private is False
    assert question.team_id == "T0001"


def test_a_thread_conversation_ending_with_the_askers_check_mark(world):
    question = world.ask("U_ASKER", "How do I vacuum a big table? #postgres", GENERAL)
    answer_ts = world.reply("U_EXPERT", question, "Run VACUUM (VERBOSE) in a quiet hour.")
    world.reply("U_ASKER", question, "Thanks, trying it now")  # the asker's follow-up is not an answer
    world.post("U_FAN", GENERAL, "unrelated chatter")  # not in a thread
    world.settle()
    with db(world) as s:
        answers = s.scalars(select(Answer)).all()
        assert [(a.user_id, a.ts, a.text) for a in answers] == [
            ("U_EXPERT", answer_ts, "Run VACUUM (VERBOSE) in a quiet hour.")
        ]

    since = world.fake.mark()
    world.react("U_ASKER", "white_check_mark", GENERAL, answer_ts)
    update = world.fake.wait_for("chat.update", since=since)
    assert update.args["ts"] == question.ts and update.args["channel"] == GENERAL
    redrawn = world.fake.message(GENERAL, question.ts)
    text = json.dumps(redrawn["blocks"])
    assert "Resolved" in text and "<@U_EXPERT>" in text
    resolved = one_question(world)
    assert resolved.status == STATUS_RESOLVED
    with db(world) as s:
        assert s.get(Answer, resolved.accepted_answer_id).user_id == "U_EXPERT"

    since = world.fake.mark()
    world.unreact("U_ASKER", "white_check_mark", GENERAL, answer_ts)
    world.fake.wait_for("chat.update", since=since)
    assert "Resolved" not in json.dumps(world.fake.message(GENERAL, question.ts)["blocks"])
    assert one_question(world).status == STATUS_OPEN


def test_helpful_votes_count_but_not_self_votes_or_the_bots(world):
    question = world.ask("U_ASKER", "Where are the runbooks? #ops", GENERAL)
    answer_ts = world.reply("U_EXPERT", question, "In the wiki under Ops")
    world.react("U_FAN", "+1", GENERAL, answer_ts)
    world.react("U_FAN", "bulb", GENERAL, answer_ts)
    world.react("U_EXPERT", "pray", GENERAL, answer_ts)  # self-vote
    world.send_event(
        {
            "type": "reaction_added",
            "user": "UBOT",
            "reaction": "+1",
            "item_user": "U_EXPERT",
            "item": {"type": "message", "channel": GENERAL, "ts": answer_ts},
        }
    )  # the bot's own reaction
    world.react("U_FAN", "tada", GENERAL, answer_ts)  # not a helpful emoji
    world.react("U_FAN", "white_check_mark", GENERAL, answer_ts)  # only the asker's ✅ accepts
    world.settle()
    with db(world) as s:
        votes = s.scalars(select(Vote).order_by(Vote.reaction)).all()
        assert [(v.voter_id, v.reaction, v.kind, v.author_id) for v in votes] == [
            ("U_FAN", "+1", "helpful", "U_EXPERT"),
            ("U_FAN", "bulb", "helpful", "U_EXPERT"),
        ]
    assert one_question(world).status == STATUS_OPEN

    world.unreact("U_FAN", "bulb", GENERAL, answer_ts)
    world.settle()
    assert count(world, Vote) == 1


def test_edits_and_deletions_of_answers_are_followed(world):
    question = world.ask("U_ASKER", "Which linter do we use? #python", GENERAL)
    answer_ts = world.reply("U_EXPERT", question, "flake8")
    world.edit("U_EXPERT", GENERAL, answer_ts, "ruff, since last year")
    world.settle()
    with db(world) as s:
        assert s.scalars(select(Answer.text)).one() == "ruff, since last year"

    world.react("U_ASKER", "white_check_mark", GENERAL, answer_ts)
    world.settle()
    assert one_question(world).status == STATUS_RESOLVED
    since = world.fake.mark()
    world.delete("U_EXPERT", GENERAL, answer_ts)
    world.fake.wait_for("chat.update", since=since)
    assert one_question(world).status == STATUS_OPEN
    with db(world) as s:
        assert s.scalars(select(Answer)).one().deleted_at is not None


def test_bot_messages_in_the_thread_are_not_answers(world):
    question = world.ask("U_ASKER", "Who owns the billing service? #billing", GENERAL)
    world.echo(question)  # Slack delivers the bot's own post back to it
    world.send_event(
        {
            "type": "message",
            "subtype": "bot_message",
            "bot_id": "B_OTHER",
            "username": "deploys",
            "text": "deployed",
            "ts": "1700000999.000100",
            "thread_ts": question.ts,
            "channel": GENERAL,
            "channel_type": "channel",
        }
    )
    world.send_event(
        {
            "type": "message",
            "user": "U_APPBOT",
            "bot_id": "B_APP",
            "text": "beep",
            "ts": "1700000999.000200",
            "thread_ts": question.ts,
            "channel": GENERAL,
            "channel_type": "channel",
        }
    )
    world.settle()
    assert count(world, Answer) == 0


@pytest.mark.parametrize("retry_num", [1, 2, 3])
def test_redelivered_events_change_nothing_twice(world, retry_num):
    question = world.ask("U_ASKER", "How do I rotate keys? #security", GENERAL)
    answer_ts = world.reply("U_EXPERT", question, "With the vault CLI")
    reaction = {
        "type": "reaction_added",
        "user": "U_FAN",
        "reaction": "+1",
        "item_user": "U_EXPERT",
        "item": {"type": "message", "channel": GENERAL, "ts": answer_ts},
    }
    first = world.send_event(reaction)
    for attempt in range(1, retry_num + 1):
        again = world.send_event(reaction, event_id=first.meta["event_id"], retry_num=attempt)
        assert again.status == 200
    # The user removes the reaction; a late redelivery of the original "added" must not bring it back.
    world.send_event({**reaction, "type": "reaction_removed"})
    world.send_event(reaction, event_id=first.meta["event_id"], retry_num=retry_num)
    world.settle()
    assert count(world, Vote) == 0
    assert count(world, Answer) == 1


def test_ask_help_and_teach_help_explain_usage_ephemerally(world):
    for command in ("/ask", "/teach"):
        response = world.command("U_ASKER", command, "help", GENERAL)
        assert response.status == 200
        body = response.json()
        assert body.get("response_type", "ephemeral") == "ephemeral"
        assert command in ack_text(response)
    world.settle()
    assert world.fake.calls_to("chat.postMessage") == []
    assert count(world, Question) == 0


@pytest.mark.parametrize("text", ["", "   ", "\u200b\u200d\ufeff"])
def test_ask_without_text_opens_the_form_and_the_form_posts(world, text):
    response = world.command("U_ASKER", "/ask", text, GENERAL)
    assert response.status == 200
    opened = world.fake.wait_for("views.open")
    assert opened.args["view"]["callback_id"] == "ask_modal"

    since = world.fake.mark()
    submitted = world.submit_view(
        "U_ASKER", "ask_modal", {"question": "What's our on-call rotation?", "tags": "#oncall, ops"}
    )
    assert submitted.status == 200 and not submitted.body.strip()  # an empty 200 closes the form
    posted = world.wait_post(GENERAL, since=since)
    assert "What's our on-call rotation?" in posted.plain
    assert "`#oncall` `#ops`" in posted.plain
    world.settle()
    assert one_question(world).message_ts == posted.ts


def test_the_form_refuses_an_empty_question_with_an_inline_error(world):
    world.command("U_ASKER", "/ask", "", GENERAL)
    world.fake.wait_for("views.open")
    response = world.submit_view("U_ASKER", "ask_modal", {"question": "   ", "channel": GENERAL})
    assert response.status == 200
    assert response.json()["response_action"] == "errors"
    assert "question" in response.json()["errors"]
    world.settle()
    assert count(world, Question) == 0


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("#postgres #ops", "only found tags"),
        ("🤔🤔🤔 #postgres", "needs a few words"),
        ("?!", "needs a few words"),
        ("x" * 20_000, "20,000 characters"),
    ],
)
def test_bad_input_gets_a_clear_ephemeral_answer_and_the_bot_keeps_serving(world, text, expected):
    response = world.command("U_ASKER", "/ask", text, GENERAL)
    assert response.status == 200
    assert expected in ack_text(response)
    if len(text) > 1000:
        assert "nothing is lost" in ack_text(response)
    world.settle()
    assert count(world, Question) == 0
    assert world.ask("U_ASKER", "Still working? #meta", GENERAL).ts


def test_right_to_left_text_is_a_fine_question(world):
    posted = world.ask("U_ASKER", "كيف أستخدم قاعدة البيانات؟ #postgres", GENERAL)
    assert "كيف أستخدم قاعدة البيانات؟" in posted.plain


def test_user_text_can_never_ping_the_channel(world):
    posted = world.ask("U_ASKER", "<!channel> <!here|here> <!subteam^S1|@devs> @everyone help! #ops", GENERAL)
    assert "<!" not in json.dumps(posted.raw["blocks"]) and "<!" not in posted.raw["text"]
    assert "@\u200bchannel" in posted.plain
    # (the emulator also flags any active broadcast mention as a contract violation at teardown)


def test_a_channel_without_the_bot_gets_an_explanation_and_the_text_back(world):
    world.add_channel("C_SECRET", name="secret", private=True, members=["U_ASKER"], bot_member=False)
    response = world.command("U_ASKER", "/ask", "Where is the budget sheet? #finance", "C_SECRET")
    assert response.status == 200
    world.settle()
    notes = [json.dumps(e) for e in world.ephemerals("U_ASKER")]
    assert any("/invite @PeerLearn" in note and "Where is the budget sheet?" in note for note in notes), notes
    question = one_question(world)
    assert question.status == STATUS_UNPOSTED and question.text == "Where is the budget sheet?"


def test_an_archived_channel_is_explained(world):
    world.add_channel("C_OLD", name="old", members=["U_ASKER"], archived=True)
    world.command("U_ASKER", "/ask", "Is this still used? #legacy", "C_OLD")
    world.settle()
    assert any("archived" in json.dumps(e) for e in world.ephemerals("U_ASKER"))


def test_a_private_channel_question_is_marked_private(world):
    world.add_channel("C_PRIV", name="team-secret", private=True, members=["U_ASKER", "U_EXPERT"])
    world.ask("U_ASKER", "What is our Q3 plan? #planning", "C_PRIV")
    world.settle()
    assert one_question(world).channel_private is True


def test_every_subscribed_event_has_a_listener(world):
    manifest = yaml.safe_load((ROOT / "manifest.yml").read_text())
    events = manifest["settings"]["event_subscriptions"]["bot_events"]
    samples = {
        "app_home_opened": {"type": "app_home_opened", "user": "U_ASKER", "channel": "D1", "tab": "home"},
        "app_uninstalled": {"type": "app_uninstalled"},
        "member_joined_channel": {"type": "member_joined_channel", "user": "U_FAN", "channel": GENERAL},
        "team_join": {"type": "team_join", "user": {"id": "U_NEW", "name": "new", "tz": "UTC"}},
        "tokens_revoked": {"type": "tokens_revoked", "tokens": {"oauth": [], "bot": ["UBOT"]}},
        "reaction_added": {
            "type": "reaction_added",
            "user": "U_FAN",
            "reaction": "+1",
            "item": {"type": "message", "channel": GENERAL, "ts": "1.1"},
        },
        "reaction_removed": {
            "type": "reaction_removed",
            "user": "U_FAN",
            "reaction": "+1",
            "item": {"type": "message", "channel": GENERAL, "ts": "1.1"},
        },
        "message.channels": {
            "type": "message",
            "user": "U_FAN",
            "text": "hi",
            "ts": "2.2",
            "channel": GENERAL,
            "channel_type": "channel",
        },
        "message.groups": {
            "type": "message",
            "user": "U_FAN",
            "text": "hi",
            "ts": "3.3",
            "channel": "G1",
            "channel_type": "group",
        },
    }
    assert set(events) <= set(samples), f"add a sample for {set(events) - set(samples)}"
    for name in events:
        response = world.send_event(samples[name])
        assert response.status == 200, f"{name} is subscribed in manifest.yml but Bolt answered {response.status}"


def test_app_home_lists_my_open_questions(world):
    world.ask("U_ASKER", "How do I get VPN access? #it", GENERAL)
    world.settle()
    since = world.fake.mark()
    world.open_home("U_ASKER")
    published = world.fake.wait_for("views.publish", since=since)
    assert published.args["user_id"] == "U_ASKER"
    assert "How do I get VPN access?" in json.dumps(published.args["view"])


def test_healthz_reports_a_migrated_database(world):
    import urllib.request

    with urllib.request.urlopen(world.sender.url.replace("/slack/events", "/healthz")) as response:
        assert response.status == 200
        assert json.loads(response.read())["migrations"] == "at head"


def test_badly_signed_requests_are_refused_and_change_nothing(world):
    for signing in ("missing", "forged", "stale"):
        response = world.sender.slash_command(
            {
                "team_id": "T0001",
                "channel_id": GENERAL,
                "user_id": "U_ASKER",
                "command": "/ask",
                "text": "sneaky? #x",
                "trigger_id": "1.2.3",
                "response_url": world.fake.new_response_url("U_ASKER", GENERAL),
            },
            signing=signing,
        )
        assert response.status == 401, signing
    world.settle()
    assert count(world, Question) == 0
