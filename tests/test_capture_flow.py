"""Issue 20, section 1: capture what is already in Slack, end to end on SQLite and PostgreSQL.

"Ask PeerLearn about this" on someone's message opens the /ask form prefilled with it (readable, with a link);
submitted, it is posted as a question crediting the message's author, routed and, once answered, found by
`/ask search` like any /ask. "Save as knowledge" on a thread saves it as a lesson (title, tags, the replies
kept), credited to who wrote them and linked to the thread, found by search; a private channel's thread stays
in that channel; a retried payload or a second save never makes a second lesson; a long thread offers its
first replies and says so.
"""

from __future__ import annotations

import io
import json
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from bot.capture import MAX_KEPT_REPLIES
from bot.export import export_json, find_user_id, forget_user
from bot.messages.capture import (
    ASK_ABOUT_SHORTCUT,
    SAVE_BLOCK_REPLIES,
    SAVE_MODAL,
    SAVE_SHORTCUT,
)
from bot.messages.forms import ASK_BLOCK_CHANNEL, ASK_BLOCK_QUESTION, ASK_MODAL
from bot.search import search_similar
from models.capture import QuestionSource, SavedMessage, SavedThread
from models.digest import load_digest_data
from models.expert import FORGOTTEN_USER_ID
from models.lesson import Lesson
from tests.route_helpers import GENERAL, SECRET, add_people, bot_maker, declare, plain, question_of, routing_dms
from tests.test_search_vectors_flow import assert_every_vector_current, suggested

BERLIN = "Europe/Berlin"
RANDOM = "C_RANDOM"  # a channel PeerLearn was never invited to


@pytest.fixture
def make_bot(fake_slack, database_url, slack_clock):
    yield from bot_maker(fake_slack, database_url, slack_clock)


@pytest.fixture
def bot(make_bot):
    bot = make_bot()
    add_people(bot.world, U_ANA=BERLIN, U_BRUNO=BERLIN, U_MAYA=BERLIN, U_NICO=BERLIN, U_NEW=BERLIN)
    return bot


def modal(world, user: str, callback_id: str) -> dict:
    [view] = [m for m in world.fake.open_modals(user) if m["callback_id"] == callback_id]
    return view


def input_element(view: dict, block_id: str) -> dict:
    [block] = [b for b in view["blocks"] if b.get("block_id") == block_id]
    return block["element"]


def shortcut(world, user: str, callback_id: str, channel: str, ts: str):
    response = world.shortcut(user, callback_id, channel, ts)
    assert response.status == 200 and not response.body.strip(), response.body  # acked at once, empty
    world.settle()
    return response


def search(world, user: str, terms: str, channel: str = GENERAL) -> str:
    before = len(world.ephemerals(user))
    assert world.command(user, "/ask", world.typed(f"search {terms}"), channel).status == 200
    world.settle()
    [reply] = world.ephemerals(user)[before:]
    return plain(reply)


def lessons(bot) -> list[Lesson]:
    with bot.store.session() as s:
        return list(s.scalars(select(Lesson).order_by(Lesson.id)))


def saved(bot) -> list[SavedThread]:
    with bot.store.session() as s:
        return list(s.scalars(select(SavedThread).order_by(SavedThread.id)))


def link_to(channel: str, ts: str) -> str:
    return f"archives/{channel}/p{ts.replace('.', '')}"


# --- Ask PeerLearn about this ---------------------------------------------------------------------------


def test_asking_about_a_message_posts_a_question_crediting_its_author_routed_and_then_found(bot):
    world = bot.world
    declare(world, "U_MAYA", "#deploys")
    written = world.post("U_BRUNO", GENERAL, world.typed("Deploys fail when a <migration> & a restart overlap"))

    shortcut(world, "U_ANA", ASK_ABOUT_SHORTCUT, GENERAL, written)

    form = modal(world, "U_ANA", ASK_MODAL)  # the /ask form, prefilled
    assert input_element(form, ASK_BLOCK_QUESTION)["initial_value"] == (
        "Deploys fail when a <migration> & a restart overlap"  # readable: Slack's &lt; &amp; read back
    )
    assert input_element(form, ASK_BLOCK_CHANNEL)["initial_conversation"] == GENERAL
    note = form["blocks"][0]["elements"][0]["text"]
    assert "<@U_BRUNO>" in note and link_to(GENERAL, written) in note

    since = world.fake.mark()
    done = world.submit_view(
        "U_ANA",
        ASK_MODAL,
        {"question": "Why do deploys fail when a <migration> & a restart overlap?", "tags": "#deploys"},
    )
    assert done.status == 200
    posted = world.wait_post(GENERAL, since=since)
    world.settle()
    assert "<@U_ANA> asks about what <@U_BRUNO> wrote:" in posted.plain
    assert link_to(GENERAL, written) in posted.plain and "original message" in posted.plain
    shown = posted.raw["blocks"][0]["text"]["text"]
    assert "a &lt;migration&gt; &amp; a restart" in shown  # modal input is raw: escaped exactly once
    question = question_of(bot.store, posted)
    assert (question.asker_id, question.tag_names) == ("U_ANA", ["deploys"])
    with bot.store.session() as s:
        source = s.get(QuestionSource, question.id)
        assert (source.author_id, source.message_ts, source.channel_id) == ("U_BRUNO", written, GENERAL)
    [dm] = routing_dms(world, "U_MAYA")  # routed as /ask routes
    assert "deploys fail" in dm.plain.lower()

    answer = world.reply("U_MAYA", posted, "Run the migration before the restart, never both at once.")
    world.react("U_ANA", "white_check_mark", GENERAL, answer)
    world.settle()
    resolved = world.fake.message(GENERAL, posted.ts)  # redrawn once answered: still crediting the author
    assert "Resolved" in str(resolved["blocks"]) and "asks about what <@U_BRUNO> wrote" in str(resolved["blocks"])
    found = search(world, "U_NEW", "deploys migration restart")
    assert "Why do deploys fail" in found and "Answered by <@U_MAYA>" in found


def test_asking_about_a_message_where_peerlearn_is_not_offers_a_channel_it_is_in(bot):
    world = bot.world
    world.add_channel(RANDOM, name="random", members=["U_ANA", "U_BRUNO"], bot_member=False)
    written = world.post("U_BRUNO", RANDOM, "Is there a way to rerun only the failed CI jobs?")

    shortcut(world, "U_ANA", ASK_ABOUT_SHORTCUT, RANDOM, written)

    form = modal(world, "U_ANA", ASK_MODAL)
    assert "initial_conversation" not in input_element(form, ASK_BLOCK_CHANNEL)  # not where it cannot post
    note = form["blocks"][0]["elements"][0]["text"]
    assert "I'm not in <#C_RANDOM>" in note and "Pick a channel I'm in" in note and "/invite @PeerLearn" in note
    assert (
        input_element(form, ASK_BLOCK_QUESTION)["initial_value"] == "Is there a way to rerun only the failed CI jobs?"
    )

    # Picked anyway, #random refuses the post: Ana is told why, with her question back.
    world.submit_view("U_ANA", ASK_MODAL, {"channel": RANDOM})
    world.settle()
    told = world.messages("U_ANA")[-1].plain  # by DM: PeerLearn can't show a note in #random either
    assert "rerun only the failed CI jobs" in told and "invite" in told.lower(), told

    shortcut(world, "U_ANA", ASK_ABOUT_SHORTCUT, RANDOM, written)
    since = world.fake.mark()
    world.submit_view("U_ANA", ASK_MODAL, {"channel": GENERAL})  # the prefilled question as it is
    posted = world.wait_post(GENERAL, since=since)
    assert "rerun only the failed CI jobs" in posted.plain and "<@U_BRUNO>" in posted.plain


def test_asking_about_a_private_message_warns_that_the_channel_picked_will_see_it(bot):
    world = bot.world
    world.add_channel("G_HIDDEN", name="hidden", private=True, members=["U_ANA", "U_BRUNO"], bot_member=False)
    written = world.post("U_BRUNO", "G_HIDDEN", "Why does the nightly export time out?")

    shortcut(world, "U_ANA", ASK_ABOUT_SHORTCUT, "G_HIDDEN", written)

    note = modal(world, "U_ANA", ASK_MODAL)["blocks"][0]["elements"][0]["text"]
    assert "from a private conversation" in note and "I'm not in <#G_HIDDEN>" in note


# --- Save as knowledge ----------------------------------------------------------------------------------


def a_thread(world, channel: str = GENERAL) -> tuple[str, list[str]]:
    root = world.post("U_ANA", channel, "How do we rotate the TLS certificate on the ingress?")
    replies = [
        world.post("U_BRUNO", channel, world.typed("Run certbot renew && reload nginx"), thread_ts=root),
        world.post("U_MAYA", channel, "Then bump the kubernetes secret so every pod picks it up", thread_ts=root),
        world.post("U_NICO", channel, "thanks!", thread_ts=root),
    ]
    return root, replies


def test_saving_a_thread_makes_a_lesson_credited_linked_found_by_search_and_in_the_digest(bot):
    world = bot.world
    root, (bruno, maya, nico) = a_thread(world)

    shortcut(world, "U_ANA", SAVE_SHORTCUT, GENERAL, maya)  # from a reply: the whole thread is offered

    form = modal(world, "U_ANA", SAVE_MODAL)
    assert input_element(form, "title")["initial_value"] == "How do we rotate the TLS certificate on the ingress?"
    replies = input_element(form, SAVE_BLOCK_REPLIES)
    assert [o["value"] for o in replies["options"]] == [bruno, maya, nico]
    assert [o["value"] for o in replies["initial_options"]] == [bruno, maya, nico]  # all kept unless unticked
    assert "Run certbot renew &amp;&amp; reload nginx" in replies["options"][0]["text"]["text"]

    done = world.submit_view(
        "U_ANA",
        SAVE_MODAL,
        {
            "title": "Rotating the ingress TLS certificate",
            "tags": "#kubernetes #tls",
            SAVE_BLOCK_REPLIES: [bruno, maya],
        },
    )
    assert done.status == 200 and not done.body.strip()
    world.settle()

    [lesson] = lessons(bot)
    assert (lesson.channel_id, lesson.message_ts, lesson.channel_private) == (GENERAL, root, False)
    assert lesson.author_id == "U_ANA" and lesson.tag_names == ["kubernetes", "tls"]
    assert lesson.text.startswith("Rotating the ingress TLS certificate\n\nHow do we rotate")
    assert "certbot renew && reload nginx" in lesson.text and "bump the kubernetes secret" in lesson.text
    assert "thanks!" not in lesson.text and lesson.text.endswith("With <@U_BRUNO>, <@U_MAYA>.")
    [thread] = saved(bot)
    assert link_to(GENERAL, root) in thread.permalink and thread.saved_by == "U_ANA"
    told = plain(world.ephemerals("U_ANA")[-1])
    assert "Saved as a lesson" in told and "<@U_ANA>, <@U_BRUNO>, <@U_MAYA>" in told

    assert_every_vector_current(bot.store)  # embedded after the ack, like any lesson
    found = search(world, "U_NEW", "rotate ingress certificate")
    assert "Lesson by <@U_ANA>" in found and "Rotating the ingress TLS certificate" in found
    assert link_to(GENERAL, root) in found
    with bot.store.session() as s:  # in this channel's week, as lessons are
        day = timedelta(days=1)
        week = load_digest_data(s, lesson.team_id, GENERAL, lesson.created_at - day, lesson.created_at + day)
        assert [item.lesson_id for item in week.lessons.items] == [lesson.id]


def test_saving_the_same_thread_again_updates_its_lesson_and_a_retried_submission_saves_once(bot):
    world = bot.world
    root, (bruno, maya, nico) = a_thread(world)
    shortcut(world, "U_ANA", SAVE_SHORTCUT, GENERAL, root)
    first = world.last_payload
    again = world.resend(first)  # Slack delivers the shortcut again: its form opened once already
    assert again.status == 200
    world.settle()
    assert len(world.fake.open_modals("U_ANA")) == 1
    assert not any("try the shortcut again" in plain(e) for e in world.ephemerals("U_ANA"))

    world.submit_view("U_ANA", SAVE_MODAL, {"title": "TLS rotation", "tags": "#tls", SAVE_BLOCK_REPLIES: [bruno]})
    world.resend(world.last_payload)  # the same submission, retried
    world.settle()
    assert len(lessons(bot)) == 1 and len(saved(bot)) == 1
    assert sum("as a lesson" in plain(e) for e in world.ephemerals("U_ANA")) == 1  # told once

    shortcut(world, "U_MAYA", SAVE_SHORTCUT, GENERAL, nico)
    form = modal(world, "U_MAYA", SAVE_MODAL)
    assert "saved already" in form["blocks"][0]["elements"][0]["text"]
    assert input_element(form, "title")["initial_value"] == "TLS rotation"
    assert input_element(form, "tags")["initial_value"] == "#tls"
    assert [o["value"] for o in input_element(form, SAVE_BLOCK_REPLIES)["initial_options"]] == [bruno]
    world.submit_view("U_MAYA", SAVE_MODAL, {"title": "Rotating TLS certificates", SAVE_BLOCK_REPLIES: [bruno, maya]})
    world.settle()

    [lesson] = lessons(bot)
    assert lesson.text.startswith("Rotating TLS certificates") and "bump the kubernetes secret" in lesson.text
    [thread] = saved(bot)
    assert thread.saved_by == "U_MAYA" and [m.ts for m in thread.messages] == [root, bruno, maya]
    assert "Updated as a lesson" in plain(world.ephemerals("U_MAYA")[-1])
    assert_every_vector_current(bot.store)  # of the new text


def test_a_private_channels_thread_is_saved_private_and_found_only_there(bot):
    world = bot.world
    add_people(world, SECRET, private=True, U_ANA=BERLIN, U_BRUNO=BERLIN, U_MAYA=BERLIN, U_NICO=BERLIN)
    root, _ = a_thread(world, SECRET)

    shortcut(world, "U_ANA", SAVE_SHORTCUT, SECRET, root)
    assert "private conversation" in str(modal(world, "U_ANA", SAVE_MODAL)["blocks"])
    world.submit_view("U_ANA", SAVE_MODAL, {"title": "Rotating the payroll TLS certificate"})
    world.settle()

    [lesson] = lessons(bot)
    assert lesson.channel_private and lesson.channel_id == SECRET
    assert "payroll TLS certificate" in search(world, "U_ANA", "payroll tls certificate", SECRET)
    assert "payroll" not in search(world, "U_ANA", "payroll tls certificate", GENERAL).replace(
        "payroll tls certificate", ""
    )
    # Asking about it: from another channel nothing of it is suggested; from its own channel it is.
    world.ask("U_MAYA", "How do I rotate the payroll TLS certificate?", GENERAL)
    assert not any("payroll TLS certificate" in text for text in suggested(world, "U_MAYA"))
    world.ask("U_MAYA", "How do I rotate the payroll TLS certificate again?", SECRET)
    assert any("Rotating the payroll TLS certificate" in text for text in suggested(world, "U_MAYA"))
    with bot.store.session() as s:
        for viewer in (GENERAL, None):  # suggestions in another channel, the App Home's search
            hits = search_similar(s, team_id=lesson.team_id, text="payroll tls certificate", viewer_channel_id=viewer)
            assert hits == []
        elsewhere = load_digest_data(
            s, lesson.team_id, GENERAL, lesson.created_at - timedelta(days=1), lesson.created_at + timedelta(days=1)
        )
        assert elsewhere.lessons.total == 0


def test_what_people_wrote_is_kept_as_written_and_never_pings_anyone(bot):
    world = bot.world
    root = world.post("U_ANA", GENERAL, world.typed("@here is `a < b && c > d` safe in <b>bash</b>?"))
    world.post("U_BRUNO", GENERAL, world.typed("Quote it: [[ a < b ]] && echo yes @channel"), thread_ts=root)

    shortcut(world, "U_NICO", ASK_ABOUT_SHORTCUT, GENERAL, root)
    form = modal(world, "U_NICO", ASK_MODAL)
    assert input_element(form, ASK_BLOCK_QUESTION)["initial_value"] == "@here is `a < b && c > d` safe in <b>bash</b>?"
    since = world.fake.mark()
    world.submit_view("U_NICO", ASK_MODAL, {})  # the question as prefilled
    posted = world.wait_post(GENERAL, since=since)
    world.settle()

    shortcut(world, "U_NICO", SAVE_SHORTCUT, GENERAL, root)
    world.submit_view("U_NICO", SAVE_MODAL, {"title": "Comparing strings in bash"})
    world.settle()

    [lesson] = lessons(bot)
    assert "[[ a < b ]] && echo yes @channel" in lesson.text  # stored as written
    found = search(world, "U_MAYA", "comparing strings bash")
    assert "Comparing strings in bash" in found
    shown = str(posted.raw["blocks"]) + str(world.ephemerals("U_MAYA")[-1]["blocks"])
    assert "<!here>" not in shown and "<!channel>" not in shown and "&lt;b&gt;bash&lt;/b&gt;" in shown
    assert world.fake.violations == []  # no broadcast, nothing Slack would refuse


def test_a_thread_longer_than_the_form_offers_its_first_replies_and_says_so(bot):
    world = bot.world
    root = world.post("U_ANA", GENERAL, "Which flags make pytest fastest on CI?")
    replies = [
        world.post("U_BRUNO", GENERAL, f"Tip {n}: try -p no:cacheprovider {n}", thread_ts=root) for n in range(14)
    ]

    shortcut(world, "U_ANA", SAVE_SHORTCUT, GENERAL, root)

    form = modal(world, "U_ANA", SAVE_MODAL)
    options = input_element(form, SAVE_BLOCK_REPLIES)["options"]
    assert [o["value"] for o in options] == replies[:MAX_KEPT_REPLIES]
    assert "Showing the first 10 of 14 replies" in str(form["blocks"])
    world.submit_view("U_ANA", SAVE_MODAL, {"title": "Fast pytest on CI"})
    world.settle()
    [lesson] = lessons(bot)
    assert "Tip 9:" in lesson.text and "Tip 10:" not in lesson.text


def test_a_channel_peerlearn_cannot_read_is_said_kindly_and_nothing_is_saved(bot):
    world = bot.world
    world.add_channel("G_HIDDEN", name="hidden", private=True, members=["U_ANA"], bot_member=False)
    written = world.post("U_ANA", "G_HIDDEN", "Our staging password rotation runbook")

    shortcut(world, "U_ANA", SAVE_SHORTCUT, "G_HIDDEN", written)

    told = plain(world.ephemerals("U_ANA")[-1])
    assert "I can't read <#G_HIDDEN>" in told and "/invite @PeerLearn" in told
    assert world.fake.open_modals("U_ANA") == [] and lessons(bot) == []


def test_a_thread_deleted_while_its_form_was_open_is_not_saved_and_the_form_says_why(bot):
    world = bot.world
    root, _ = a_thread(world)
    shortcut(world, "U_ANA", SAVE_SHORTCUT, GENERAL, root)
    world.delete("U_ANA", GENERAL, root)

    refused = world.submit_view("U_ANA", SAVE_MODAL, {"title": "TLS rotation"})

    assert refused.json()["errors"]["title"].startswith("That message was deleted")
    world.settle()
    assert lessons(bot) == [] and saved(bot) == []


def test_a_lesson_peerlearn_posted_is_a_lesson_already(bot):
    world = bot.world
    since = world.fake.mark()
    world.command("U_BRUNO", "/teach", "#git Use git bisect run to find the commit that broke a test", GENERAL)
    posted = world.wait_post(GENERAL, since=since)
    world.settle()

    shortcut(world, "U_ANA", SAVE_SHORTCUT, GENERAL, posted.ts)

    assert "searchable already" in plain(world.ephemerals("U_ANA")[-1])
    assert world.fake.open_modals("U_ANA") == [] and len(lessons(bot)) == 1 and saved(bot) == []


def test_a_direct_message_cannot_be_saved_and_says_where_to_save_instead(bot):
    world = bot.world
    world.add_channel("D_ANA_BRUNO", name="directmessage", members=["U_ANA", "U_BRUNO"], bot_member=False)
    written = world.post("U_BRUNO", "D_ANA_BRUNO", "The staging DB password rotates every Monday")

    shortcut(world, "U_ANA", SAVE_SHORTCUT, "D_ANA_BRUNO", written)

    told = plain(world.ephemerals("U_ANA")[-1])
    assert "only save threads from channels" in told
    assert world.fake.open_modals("U_ANA") == [] and lessons(bot) == []


def test_a_saved_thread_is_exported_and_forgetting_a_contributor_removes_their_words(bot):
    world = bot.world
    root, (bruno, maya, _) = a_thread(world)
    shortcut(world, "U_ANA", SAVE_SHORTCUT, GENERAL, root)
    world.submit_view("U_ANA", SAVE_MODAL, {"title": "TLS rotation", SAVE_BLOCK_REPLIES: [bruno, maya]})
    world.settle()

    team_id = lessons(bot)[0].team_id
    with bot.store.session() as s:
        out = io.StringIO()
        counts = export_json(s, team_id, out, bot.clock.now())
        exported = json.loads(out.getvalue())
    assert counts["saved_threads"] == 1 and counts["saved_thread_messages"] == 3
    assert [m["user_id"] for m in exported["saved_thread_messages"]] == ["U_ANA", "U_BRUNO", "U_MAYA"]
    assert exported["saved_threads"][0]["saved_by"] == "U_ANA"

    with bot.store.session() as s:
        forget_user(s, team_id, "U_BRUNO")
    with bot.store.session() as s:
        lesson = s.scalars(select(Lesson)).one()
        assert "certbot" not in lesson.text and "<@U_BRUNO>" not in lesson.text
        assert "bump the kubernetes secret" in lesson.text and lesson.author_id == "U_ANA"
        assert s.scalar(select(func.count()).select_from(SavedMessage)) == 2
        assert find_user_id(s, lesson.team_id, "U_BRUNO") == []

    with bot.store.session() as s:  # the person who saved it, and wrote its first message
        forget_user(s, team_id, "U_ANA")
    with bot.store.session() as s:
        lesson = s.scalars(select(Lesson)).one()
        thread = s.scalars(select(SavedThread)).one()
        assert lesson.author_id == "U_MAYA" and thread.saved_by == FORGOTTEN_USER_ID
        assert "rotate the TLS certificate" not in lesson.text and "bump the kubernetes secret" in lesson.text
        assert find_user_id(s, team_id, "U_ANA") == []


def test_help_tells_where_the_shortcuts_are(bot):
    world = bot.world
    assert "*Ask PeerLearn about this*" in world.command("U_NEW", "/ask", "help", GENERAL).body
    assert "*Save as knowledge*" in world.command("U_NEW", "/teach", "help", GENERAL).body
