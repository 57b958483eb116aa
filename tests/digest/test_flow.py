"""Issue 4's weekly digests, end to end on SQLite and PostgreSQL: `/ask digest …` through the real endpoint,
the scheduler's digest tick called with a frozen clock, Slack played by the emulator; privacy with a private
channel whose content must never reach another channel's digest."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from bot.playground.emulator.fake_api import TEAM_ID
from handlers.digest import NOT_A_CHANNEL, NOT_IN_CHANNEL
from models.digest import DIGEST_POSTED
from models.expert import Expertise
from models.lesson import Lesson, LessonTag
from tests.digest.helpers import (
    GENERAL,
    NEXT_MONDAY_9_BERLIN,
    PEOPLE,
    SECRET,
    ack_text,
    digest_posts,
    plain,
    runs,
    subscription,
    tick_at,
)
from tests.slack.fixtures import START

# --- the whole story through Slack ---------------------------------------------------------------------------


def test_a_subscribed_channel_gets_its_digest_on_monday_morning_once(world):
    question = world.ask("U_ASKER", "How do I vacuum a big table? #postgres", GENERAL)
    answer_ts = world.reply("U_EXPERT", question, "VACUUM (VERBOSE) in a quiet hour")
    world.react("U_ASKER", "white_check_mark", GENERAL, answer_ts)
    world.react("U_FAN", "+1", GENERAL, answer_ts)
    open_question = world.ask("U_FAN", "Who owns the Kafka cluster? #kafka", GENERAL)
    world.settle()

    response = world.command("U_ASKER", "/ask", "digest on", GENERAL)
    assert "weekly digest is on: every Monday at 09:00, in your time zone" in ack_text(response)
    world.settle()
    # The lazy step learned the subscriber's zone from users.info.
    assert subscription(world.runtime.store, GENERAL).timezone == "Europe/Berlin"
    assert not [e for e in world.ephemerals("U_ASKER") if NOT_IN_CHANNEL in json.dumps(e)]

    runtime = world.runtime
    assert tick_at(runtime, START) == []  # today's 09:00 passed before the channel subscribed
    assert tick_at(runtime, NEXT_MONDAY_9_BERLIN - timedelta(minutes=1)) == []
    outcomes = tick_at(runtime, NEXT_MONDAY_9_BERLIN)
    assert [(o.channel_id, o.status, o.week_key) for o in outcomes] == [(GENERAL, DIGEST_POSTED, "2026-W49")]

    [post] = digest_posts(world.fake)
    text = plain(post)
    answer_link = runtime.bolt_app.client.chat_getPermalink(channel=GENERAL, message_ts=answer_ts)["permalink"]
    question_link = runtime.bolt_app.client.chat_getPermalink(channel=GENERAL, message_ts=open_question.ts)
    assert f"How do I vacuum a big table? `#postgres` — answered by <@U_EXPERT> · <{answer_link}|" in text
    assert (
        f"Who owns the Kafka cluster? `#kafka` — asked 6 days ago, no replies yet · <{question_link['permalink']}|"
        in text
    )
    assert "1. <@U_EXPERT> — 1 accepted answer, 1 helpful answer" in text
    assert "`#kafka` — 1 question, nobody has declared it yet" in text
    assert post.args["channel"] == GENERAL and post.args["unfurl_links"] in (False, "0", "false", 0)

    # The rest of the week, every tick finds the week's digest done.
    for later in (timedelta(minutes=1), timedelta(hours=5), timedelta(hours=23)):
        assert tick_at(runtime, NEXT_MONDAY_9_BERLIN + later) == []
    assert len(digest_posts(world.fake)) == 1
    run = runs(runtime.store)[GENERAL]
    assert (run.status, run.week_key, run.attempts, run.message_ts) == (
        DIGEST_POSTED,
        "2026-W49",
        1,
        post.response["ts"],
    )

    # And the next week has its own digest.
    assert [o.week_key for o in tick_at(runtime, NEXT_MONDAY_9_BERLIN + timedelta(days=7))] == ["2026-W50"]


def test_a_private_channels_content_never_reaches_another_channels_digest(world):
    world.add_channel(SECRET, name="falcon-core", private=True, members=["U_ASKER", "U_EXPERT"])
    secret = world.ask("U_ASKER", "When does Project Falcon launch? #falcon", SECRET)
    secret_answer = world.reply("U_EXPERT", secret, "Falcon ships in March")
    world.react("U_ASKER", "white_check_mark", SECRET, secret_answer)
    world.ask("U_FAN", "Where is the style guide? #docs", GENERAL)
    world.settle()
    store = world.runtime.store
    with store.session() as s:
        # Lessons and declared topics, as /teach would store them, in both channels.
        lesson = Lesson(
            team_id=TEAM_ID,
            channel_id=SECRET,
            author_id="U_EXPERT",
            text="Falcon's launch checklist lives in the vault",
            message_ts="1700000000.999999",
            request_key="lesson-1",
            created_at=START,
            tags=[LessonTag(tag="falcon", team_id=TEAM_ID, position=0)],
        )
        s.add(lesson)
        s.add(Expertise(team_id=TEAM_ID, user_id="U_EXPERT", tag="falcon", declared_at=START))
        s.add(Expertise(team_id=TEAM_ID, user_id="U_FAN", tag="docs", declared_at=START))

    for channel, user in ((GENERAL, "U_FAN"), (SECRET, "U_ASKER")):
        world.command(user, "/ask", "digest on", channel)
    world.command("U_FAN", "/ask", "digest preview", GENERAL)
    world.settle()

    [preview] = [e for e in world.ephemerals("U_FAN") if "Preview" in json.dumps(e)]
    preview_text = json.dumps(preview)
    assert "Where is the style guide?" in preview_text
    assert "falcon" not in preview_text.lower() and SECRET not in preview_text and "U_EXPERT" not in preview_text

    outcomes = tick_at(world.runtime, NEXT_MONDAY_9_BERLIN)
    assert sorted((o.channel_id, o.status) for o in outcomes) == [(GENERAL, DIGEST_POSTED), (SECRET, DIGEST_POSTED)]
    [general] = digest_posts(world.fake, GENERAL)
    [private] = digest_posts(world.fake, SECRET)
    general_text = plain(general)
    assert "Where is the style guide?" in general_text
    assert "<@U_FAN> is now a go-to person for `#docs`" in general_text
    for leak in ("falcon", "vault", "march", SECRET.lower(), "u_expert"):
        assert leak not in general_text.lower()
    private_text = plain(private)
    assert "When does Project Falcon launch?" in private_text
    assert "answered by <@U_EXPERT>" in private_text
    assert "Falcon's launch checklist lives in the vault" in private_text
    assert "<@U_EXPERT> is now a go-to person for `#falcon`" in private_text
    assert "style guide" not in private_text and "#docs" not in private_text and "U_FAN" not in private_text


def test_digest_settings_are_per_channel_and_misread_schedules_get_a_friendly_answer(world):
    world.add_channel("C_RANDOM", name="random", members=list(PEOPLE))
    response = world.command("U_ASKER", "/ask", "digest at fri 16:00 Europe/Berlin", GENERAL)
    assert "now goes out every Friday at 16:00 (Europe/Berlin). Next one: Friday, Nov 27." in ack_text(response)
    stored = subscription(world.runtime.store, GENERAL)
    assert (stored.enabled, stored.weekday, stored.hour, stored.minute, stored.timezone) == (
        True,
        4,
        16,
        0,
        "Europe/Berlin",
    )
    assert subscription(world.runtime.store, "C_RANDOM") is None

    response = world.command("U_ASKER", "/ask", "digest at fryday 4pm", GENERAL)
    assert "couldn't read `fryday`" in ack_text(response)
    response = world.command("U_ASKER", "/ask", "digest at fri 16:00 Europe/Berln", GENERAL)
    assert "Did you mean `Europe/Berlin`?" in ack_text(response)
    assert subscription(world.runtime.store, GENERAL).weekday == 4  # unchanged

    assert "no digest at all" in ack_text(world.command("U_FAN", "/ask", "digest empty skip", GENERAL))
    status = ack_text(world.command("U_FAN", "/ask", "digest", GENERAL))
    assert "goes out every Friday at 16:00 (Europe/Berlin); a quiet week gets nothing" in status

    assert "is off" in ack_text(world.command("U_FAN", "/ask", "digest off", GENERAL))
    assert not subscription(world.runtime.store, GENERAL).enabled
    friday_4pm_berlin = datetime(2026, 11, 27, 15, 0, tzinfo=UTC)
    assert tick_at(world.runtime, friday_4pm_berlin) == []
    assert "no weekly digest running" in ack_text(world.command("U_FAN", "/ask", "digest off", "C_RANDOM"))

    # A question that starts with "digest" is still a question.
    posted = world.ask("U_FAN", "digest of a Kafka topic: how do I replay it? #kafka", GENERAL)
    assert "digest of a Kafka topic" in posted.plain
    world.settle()
    assert digest_posts(world.fake) == []


def test_subscribing_where_the_bot_cannot_post_warns_and_dms_are_refused(world):
    world.add_channel("C_NOBOT", name="nobot", members=["U_ASKER"], bot_member=False)
    world.command("U_ASKER", "/ask", "digest on", "C_NOBOT")
    world.settle()
    assert any(NOT_IN_CHANNEL in json.dumps(e) for e in world.ephemerals("U_ASKER"))
    assert subscription(world.runtime.store, "C_NOBOT").enabled  # stored; it posts once the bot is invited

    response = world.command("U_ASKER", "/ask", "digest on")  # in the DM with the bot
    assert NOT_A_CHANNEL in ack_text(response)
    response = world.command("U_ASKER", "/ask", "digest help", GENERAL)
    assert "/ask digest at fri 16:00 Europe/Berlin" in ack_text(response)


def test_a_preview_of_a_quiet_week_is_the_friendly_note_and_posts_nothing(world):
    since = world.fake.mark()
    response = world.command("U_FAN", "/ask", "digest preview", GENERAL)
    assert response.status == 200
    world.settle()
    [preview] = [e for e in world.ephemerals("U_FAN") if "Preview" in json.dumps(e)]
    assert "quiet week" in json.dumps(preview)
    assert "`/ask digest on` posts one weekly" in json.dumps(preview)
    assert world.fake.calls_to("chat.postMessage", since=since) == []
