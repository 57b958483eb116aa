"""Issue 4's weekly digests, end to end on SQLite and PostgreSQL: `/ask digest …` through the real endpoint,
the scheduler's digest tick called with a frozen clock, Slack played by the emulator.

Exactly once is shown with two replicas racing on one database and with restarts; privacy with a private
channel whose content must never reach another channel's digest.
"""

from __future__ import annotations

import json
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest
from prometheus_client import REGISTRY
from sqlalchemy import select

from bot import digest
from bot.config import Settings
from bot.runtime.cli import main as cli_main
from bot.runtime.wiring import build_runtime
from handlers.digest import NOT_A_CHANNEL, NOT_IN_CHANNEL
from models.digest import (
    DIGEST_CLAIMED,
    DIGEST_EMPTY,
    DIGEST_FAILED,
    DIGEST_POSTED,
    DIGEST_POSTING,
    DigestRun,
    DigestSubscription,
    load_digest_data,
)
from models.expert import Expertise
from models.lesson import Lesson, LessonTag
from models.question import (
    STATUS_OPEN,
    STATUS_POSTING,
    STATUS_RESOLVED,
    STATUS_UNPOSTED,
    VOTE_ACCEPT,
    VOTE_HELPFUL,
    Answer,
    Question,
    QuestionTag,
    Vote,
)
from models.workspace import ensure_workspace
from tests.slack.fake_api import BOT_TOKEN, TEAM_ID
from tests.slack.fixtures import START

GENERAL = "C_GENERAL"
SECRET = "G_SECRET"
PEOPLE = ("U_ASKER", "U_EXPERT", "U_FAN")
# START is Monday 2026-11-23 10:00 UTC (11:00 in Berlin): this Monday's 09:00 has passed, so a channel
# subscribing now gets its first digest next Monday, 09:00 in Berlin.
NEXT_MONDAY_9_BERLIN = datetime(2026, 11, 30, 8, 0, tzinfo=UTC)
SLOT = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)  # Monday 09:00 UTC, the default slot in a UTC workspace


@pytest.fixture
def world(slack):
    for user in PEOPLE:
        slack.add_user(user, tz="Europe/Berlin")
    slack.add_channel(GENERAL, name="general", members=list(PEOPLE))
    return slack


def ack_text(response) -> str:
    payload = response.json() or {}
    texts = [payload.get("text", "")]
    texts += [b["text"]["text"] for b in payload.get("blocks", []) if b.get("type") == "section"]
    return "\n".join(texts)


def is_digest(args) -> bool:
    blocks = args.get("blocks") or []
    return bool(blocks) and blocks[0].get("type") == "header" and blocks[0]["text"]["text"] == "Weekly digest"


def digest_posts(fake, channel: str | None = None, since: int = 0):
    """The bot's successful digest posts (into `channel`)."""
    return fake.calls_to(
        "chat.postMessage",
        since=since,
        where=lambda call: call.ok and is_digest(call.args) and channel in (None, call.args.get("channel")),
    )


def plain(call) -> str:
    """A posted message's fallback text and block texts, one per line."""
    found = [call.args.get("text", "")]

    def walk(node):
        if isinstance(node, dict):
            if isinstance(node.get("text"), str):
                found.append(node["text"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(call.args.get("blocks"))
    return "\n".join(found)


def digest_runs_metric(status: str) -> float:
    return REGISTRY.get_sample_value("peerlearn_digest_runs_total", {"status": status}) or 0.0


def tick_at(runtime, moment: datetime):
    runtime.clock.set(moment)
    return digest.tick(runtime.services, runtime.bolt_app.client, moment)


def runs(store) -> dict[str, DigestRun]:
    with store.session() as s:
        return {run.channel_id: run for run in s.scalars(select(DigestRun))}


def subscription(store, channel: str) -> DigestSubscription | None:
    with store.session() as s:
        return s.get(DigestSubscription, (TEAM_ID, channel))


def subscribe_directly(store, channel: str, at: datetime, **change) -> None:
    with store.session() as s:
        ensure_workspace(s, TEAM_ID, at)
        digest.subscribe(
            s, team_id=TEAM_ID, channel_id=channel, user_id="U_ADMIN", now=at, change=digest.ScheduleChange(**change)
        )


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


# --- store-level: what a channel's week contains -------------------------------------------------------------


@pytest.fixture
def runtime(fake_slack, database_url, slack_clock):
    settings = Settings(bot_token=BOT_TOKEN, database_url=database_url, slack_api_url=fake_slack.base_url)
    runtime = build_runtime(settings, clock=slack_clock)
    yield runtime
    runtime.close()


def add_question(s, channel, text, tags=(), *, at=START, status=STATUS_OPEN, ts=None, asker="U_ASKER"):
    question = Question(
        team_id=TEAM_ID,
        channel_id=channel,
        asker_id=asker,
        text=text,
        status=status,
        message_ts=ts or f"{at.timestamp():.6f}",
        request_key=f"{channel}:{text}",
        created_at=at,
        channel_private=channel.startswith("G"),
        tags=[QuestionTag(tag=tag, team_id=TEAM_ID, position=i) for i, tag in enumerate(tags)],
    )
    s.add(question)
    s.flush()
    return question


def add_answer(s, question, user, *, at=START, accepted_by=None, helpful_from=(), deleted=False):
    answer = Answer(
        team_id=TEAM_ID,
        question_id=question.id,
        channel_id=question.channel_id,
        ts=f"{at.timestamp() + question.id / 1000:.6f}",
        user_id=user,
        text="try this",
        created_at=at,
        deleted_at=at if deleted else None,
    )
    s.add(answer)
    s.flush()
    votes = [(accepted_by, VOTE_ACCEPT, "white_check_mark")] if accepted_by else []
    votes += [(voter, VOTE_HELPFUL, "+1") for voter in helpful_from]
    for voter, kind, reaction in votes:
        s.add(
            Vote(
                team_id=TEAM_ID,
                channel_id=question.channel_id,
                message_ts=answer.ts,
                voter_id=voter,
                reaction=reaction,
                kind=kind,
                author_id=user,
                answer_id=answer.id,
                created_at=at,
            )
        )
    if accepted_by:
        question.status, question.accepted_answer_id, question.resolved_at = STATUS_RESOLVED, answer.id, at
    return answer


def test_a_channels_week_is_read_with_its_limits_totals_and_nothing_else(runtime):
    week_start = START - timedelta(days=6)
    with runtime.store.session() as s:
        for i in range(12):
            add_question(s, GENERAL, f"open {i}", ("kafka",), at=week_start + timedelta(hours=i))
        old = add_question(s, GENERAL, "asked long ago", ("postgres",), at=START - timedelta(days=30))
        add_answer(s, old, "U_EXPERT", at=START - timedelta(days=1), accepted_by="U_ASKER", helpful_from=["U_FAN"])
        resolved_last_month = add_question(s, GENERAL, "resolved last month", at=START - timedelta(days=40))
        add_answer(s, resolved_last_month, "U_FAN", at=START - timedelta(days=39), accepted_by="U_ASKER")
        mine = add_question(s, GENERAL, "deleted answer", ("postgres",), at=START)
        add_answer(s, mine, "U_GONE", helpful_from=["U_FAN"], deleted=True)
        add_question(s, GENERAL, "never posted", ("kafka",), status=STATUS_UNPOSTED, ts="1.1")
        add_question(s, GENERAL, "still posting", ("kafka",), status=STATUS_POSTING, ts="1.2")
        elsewhere = add_question(s, "C_OTHER", "other channel", ("rust",))
        add_answer(s, elsewhere, "U_OTHER", accepted_by="U_ASKER", helpful_from=["U_FAN"])
        s.add(Expertise(team_id=TEAM_ID, user_id="U_PG", tag="postgres", declared_at=START - timedelta(days=100)))
        s.add(Expertise(team_id=TEAM_ID, user_id="U_RUST", tag="rust", declared_at=START))  # a tag not used here
        s.add(Expertise(team_id=TEAM_ID, user_id="U_NEW", tag="postgres", declared_at=START))
    with runtime.store.session() as s:
        data = load_digest_data(s, TEAM_ID, GENERAL, START - timedelta(days=7), START + timedelta(hours=1), limit=10)

    assert data.asked == 13  # the 12 open ones and "deleted answer"; not the unposted or old ones
    assert [q.text for q in data.open.items] == [f"open {i}" for i in range(10)] and data.open.total == 13
    assert data.open.items[0].tags == ("kafka",)
    assert [(q.text, q.answerer_id) for q in data.answered.items] == [("asked long ago", "U_EXPERT")]
    assert data.answered.total == 1 and data.answered.items[0].tags == ("postgres",)
    # Votes on a deleted answer and votes in other channels do not make anyone a helper here.
    assert [(h.user_id, h.accepted, h.helpful) for h in data.helpers.items] == [("U_EXPERT", 1, 1)]
    assert [(e.user_id, e.tags) for e in data.new_experts.items] == [("U_NEW", ("postgres",))]
    assert [(g.tag, g.questions) for g in data.gaps.items] == [("kafka", 12)]


def test_an_empty_week_posts_a_note_or_nothing_as_each_channel_chose(runtime, fake_slack):
    for channel in ("C_NOTE", "C_SKIP"):
        fake_slack.add_channel(channel)
        subscribe_directly(runtime.store, channel, START)
    with runtime.store.session() as s:
        digest.set_empty_weeks(s, team_id=TEAM_ID, channel_id="C_SKIP", user_id="U1", now=START, post=False)
    outcomes = tick_at(runtime, SLOT)
    assert sorted((o.channel_id, o.status) for o in outcomes) == [("C_NOTE", DIGEST_POSTED), ("C_SKIP", DIGEST_EMPTY)]
    [note] = digest_posts(fake_slack)
    assert note.args["channel"] == "C_NOTE" and "A quiet week in <#C_NOTE>" in plain(note)
    assert runs(runtime.store)["C_SKIP"].status == DIGEST_EMPTY
    assert tick_at(runtime, SLOT + timedelta(hours=1)) == []


# --- exactly once: replicas, restarts, failures ------------------------------------------------------------------


def test_two_replicas_ticking_at_once_post_each_digest_exactly_once(fake_slack, database_url, slack_clock):
    settings = Settings(bot_token=BOT_TOKEN, database_url=database_url, slack_api_url=fake_slack.base_url)
    replicas = [build_runtime(settings, clock=slack_clock) for _ in range(2)]
    channels = [f"C_TEAM{i}" for i in range(6)]
    try:
        with replicas[0].store.session() as s:
            add_question(s, channels[0], "Who reviews infra changes? #ops", at=SLOT - timedelta(days=1))
        for channel in channels:
            fake_slack.add_channel(channel)
            subscribe_directly(replicas[0].store, channel, START)
        slack_clock.set(SLOT)
        start = threading.Barrier(len(replicas))

        def replica(runtime):
            start.wait(timeout=10)
            return [o for _ in range(3) for o in digest.tick(runtime.services, runtime.bolt_app.client, SLOT)]

        with ThreadPoolExecutor(len(replicas)) as pool:
            outcomes = [o for found in pool.map(replica, replicas) for o in found]
        assert sorted(o.channel_id for o in outcomes) == channels  # each claimed by exactly one replica
        for channel in channels:
            assert len(digest_posts(fake_slack, channel)) == 1, channel
        assert all(run.status == DIGEST_POSTED and run.attempts == 1 for run in runs(replicas[0].store).values())
        assert len(runs(replicas[1].store)) == len(channels)
    finally:
        for runtime in replicas:
            runtime.close()


def test_a_digest_missed_while_no_replica_ran_goes_out_once_when_one_is_back(fake_slack, database_url, slack_clock):
    settings = Settings(bot_token=BOT_TOKEN, database_url=database_url, slack_api_url=fake_slack.base_url)
    fake_slack.add_channel("C_MONDAY")
    fake_slack.add_channel("C_SUNDAY")
    before = build_runtime(settings, clock=slack_clock)
    subscribe_directly(before.store, "C_MONDAY", START)
    subscribe_directly(before.store, "C_SUNDAY", START, weekday=6)  # Sunday 09:00 UTC
    assert tick_at(before, SLOT - timedelta(days=2)) == []  # Saturday: nothing due
    before.close()  # down from Saturday to Monday afternoon

    after = build_runtime(settings, clock=slack_clock)
    outcomes = tick_at(after, SLOT + timedelta(hours=5))
    # Monday's slot passed 5 hours ago (within the grace period); Sunday's 29 hours ago (beyond it).
    assert [(o.channel_id, o.status) for o in outcomes] == [("C_MONDAY", DIGEST_POSTED)]
    assert tick_at(after, SLOT + timedelta(hours=5, minutes=1)) == []
    after.close()

    again = build_runtime(settings, clock=slack_clock)
    assert tick_at(again, SLOT + timedelta(hours=6)) == []
    assert len(digest_posts(fake_slack, "C_MONDAY")) == 1
    assert digest_posts(fake_slack, "C_SUNDAY") == []
    assert set(runs(again.store)) == {"C_MONDAY"}  # the skipped Sunday left no row
    # Next Sunday's digest goes out as usual.
    assert [o.channel_id for o in tick_at(again, SLOT + timedelta(days=6))] == ["C_SUNDAY"]
    again.close()


def test_slack_errors_are_recorded_and_the_other_channels_still_get_theirs(runtime, fake_slack):
    fake_slack.add_channel("C1_ARCHIVED", archived=True)
    fake_slack.add_channel("C3_NOBOT", bot_member=False)
    fake_slack.add_channel("C4_OK")
    for channel in ("C1_ARCHIVED", "C2_DELETED", "C3_NOBOT", "C4_OK"):
        subscribe_directly(runtime.store, channel, START)
    failed_before, posted_before = digest_runs_metric("failed"), digest_runs_metric("posted")

    outcomes = tick_at(runtime, SLOT)
    assert [(o.channel_id, o.status, o.error) for o in outcomes] == [
        ("C1_ARCHIVED", DIGEST_FAILED, "is_archived"),
        ("C2_DELETED", DIGEST_FAILED, "channel_not_found"),
        ("C3_NOBOT", DIGEST_FAILED, "not_in_channel"),
        ("C4_OK", DIGEST_POSTED, None),
    ]
    recorded = runs(runtime.store)
    assert {c: (r.status, r.error) for c, r in recorded.items()} == {
        "C1_ARCHIVED": (DIGEST_FAILED, "is_archived"),
        "C2_DELETED": (DIGEST_FAILED, "channel_not_found"),
        "C3_NOBOT": (DIGEST_FAILED, "not_in_channel"),
        "C4_OK": (DIGEST_POSTED, None),
    }
    assert all(r.finished_at == SLOT for r in recorded.values())
    assert (digest_runs_metric("failed"), digest_runs_metric("posted")) == (failed_before + 3, posted_before + 1)
    # Retrying cannot fix these: later ticks leave them alone.
    since = fake_slack.mark()
    assert tick_at(runtime, SLOT + timedelta(hours=2)) == []
    assert fake_slack.calls_to("chat.postMessage", since=since) == []


def test_a_rate_limited_digest_is_retried_on_a_later_tick_then_given_up(runtime, fake_slack):
    for channel in ("C1_BUSY", "C2_OK"):
        fake_slack.add_channel(channel)
        subscribe_directly(runtime.store, channel, START)
    fake_slack.rate_limit("chat.postMessage", retry_after=0, times=4)  # the first try and slack_sdk's 3 retries

    outcomes = tick_at(runtime, SLOT)
    assert [(o.channel_id, o.status, o.error) for o in outcomes] == [
        ("C1_BUSY", DIGEST_FAILED, "ratelimited"),
        ("C2_OK", DIGEST_POSTED, None),
    ]
    assert tick_at(runtime, SLOT + timedelta(minutes=5)) == []  # not before RETRY_AFTER
    [retry] = tick_at(runtime, SLOT + timedelta(minutes=10))
    assert (retry.channel_id, retry.status) == ("C1_BUSY", DIGEST_POSTED)
    assert runs(runtime.store)["C1_BUSY"].attempts == 2
    assert len(digest_posts(fake_slack, "C1_BUSY")) == 1

    # A channel that keeps failing is tried MAX_ATTEMPTS times in all, then left failed.
    fake_slack.add_channel("C3_FLAKY")
    subscribe_directly(runtime.store, "C3_FLAKY", SLOT + timedelta(hours=1), hour=11, minute=0)
    fake_slack.fail("chat.postMessage", "internal_error", times=digest.MAX_ATTEMPTS)
    eleven = SLOT + timedelta(hours=2)
    for minutes in range(0, 60, 10):
        tick_at(runtime, eleven + timedelta(minutes=minutes))
    flaky = runs(runtime.store)["C3_FLAKY"]
    assert (flaky.status, flaky.error, flaky.attempts) == (DIGEST_FAILED, "internal_error", digest.MAX_ATTEMPTS)
    assert len(fake_slack.calls_to("chat.postMessage", channel="C3_FLAKY")) == digest.MAX_ATTEMPTS


def test_an_abandoned_claim_is_taken_over_but_an_interrupted_post_is_never_repeated(runtime, fake_slack):
    for channel in ("C1_CLAIMED", "C2_POSTING"):
        fake_slack.add_channel(channel)
        subscribe_directly(runtime.store, channel, START)
    with runtime.store.session() as s:
        # Two replicas died at the slot: one while building, one while chat.postMessage was in flight.
        for channel, status in (("C1_CLAIMED", DIGEST_CLAIMED), ("C2_POSTING", DIGEST_POSTING)):
            s.add(
                DigestRun(
                    team_id=TEAM_ID,
                    channel_id=channel,
                    week_key="2026-W49",
                    status=status,
                    claimed_by="replica-that-died",
                    claimed_at=SLOT,
                    attempts=1,
                )
            )
    assert tick_at(runtime, SLOT + timedelta(minutes=5)) == []  # maybe still building
    [outcome] = tick_at(runtime, SLOT + digest.STALE_CLAIM)
    assert (outcome.channel_id, outcome.status) == ("C1_CLAIMED", DIGEST_POSTED)
    assert runs(runtime.store)["C1_CLAIMED"].attempts == 2
    assert tick_at(runtime, SLOT + timedelta(hours=3)) == []
    assert digest_posts(fake_slack, "C2_POSTING") == []
    assert runs(runtime.store)["C2_POSTING"].status == DIGEST_POSTING


def test_a_claim_taken_over_meanwhile_is_not_posted_by_its_old_owner(runtime, fake_slack):
    fake_slack.add_channel("C_SLOW")
    subscribe_directly(runtime.store, "C_SLOW", START)
    with runtime.store.session() as s:
        slow = digest.claim_run(s, (TEAM_ID, "C_SLOW", "2026-W49"), "slow-replica", SLOT)
    [outcome] = tick_at(runtime, SLOT + digest.STALE_CLAIM)  # the slow replica's claim looked abandoned
    assert outcome.status == DIGEST_POSTED
    # The slow replica wakes up and tries to carry on: its claim is no longer valid.
    with runtime.store.session() as s:
        assert not digest.mark_run_posting(s, slow)
    assert len(digest_posts(fake_slack, "C_SLOW")) == 1


# --- the admin verb ---------------------------------------------------------------------------------------------


def test_the_admin_verb_prints_the_digest_then_posts_it_once_per_week(
    fake_slack, database_url, monkeypatch, capsys, no_slack_env
):
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("SLACK_API_URL", fake_slack.base_url)
    monkeypatch.setenv("SLACK_BOT_TOKEN", BOT_TOKEN)
    fake_slack.add_channel(GENERAL)
    settings = Settings.from_env()
    runtime = build_runtime(settings)
    with runtime.store.session() as s:  # the verb reads the real clock: "this week" is now
        add_question(s, GENERAL, "Who has the VPN config? #vpn", at=datetime.now(UTC) - timedelta(hours=1))
    runtime.close()
    verb = ["digest", "--team", TEAM_ID, "--channel", GENERAL]

    assert cli_main([*verb, "--dry-run"]) == 0
    printed = capsys.readouterr().out
    assert printed.startswith("== Weekly digest ==")
    assert "Who has the VPN config?" in printed and "https://peerlearn-test.slack.com/archives/C_GENERAL/p" in printed
    assert cli_main([*verb, "--dry-run", "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["blocks"][0]["type"] == "header" and "Who has the VPN config?" in json.dumps(payload)
    assert digest_posts(fake_slack) == []

    assert cli_main(verb) == 0
    assert "Posted the digest in C_GENERAL" in capsys.readouterr().out
    assert cli_main(verb) == 1  # this week's digest went out already
    assert "already posted" in capsys.readouterr().err
    assert len(digest_posts(fake_slack)) == 1
    assert cli_main([*verb, "--force"]) == 0
    assert len(digest_posts(fake_slack)) == 2


def test_each_workspace_posts_with_its_own_token_and_a_revoked_one_is_recorded(runtime, fake_slack):
    fake_slack.tokens.update({"xoxb-installed", "xoxb-revoked"})
    fake_slack.revoke_token("xoxb-revoked")
    fake_slack.add_channel("C_OTHER_TEAM")
    for team, channel in (("T0002", "C_OTHER_TEAM"), ("T0003", "C_UNINSTALLED")):
        with runtime.store.session() as s:
            ensure_workspace(s, team, START)
            digest.subscribe(s, team_id=team, channel_id=channel, user_id="U1", now=START)
    with runtime.store.session() as s:
        question = add_question(s, "C_OTHER_TEAM", "Who runs payroll? #hr", at=SLOT - timedelta(days=1))
        question.team_id = "T0002"
    tokens = {"T0002": "xoxb-installed", "T0003": "xoxb-revoked"}

    outcomes = digest.tick(runtime.services, runtime.bolt_app.client, SLOT, token_for=tokens.get)
    assert [(o.team_id, o.status, o.error) for o in outcomes] == [
        ("T0002", DIGEST_POSTED, None),
        ("T0003", DIGEST_FAILED, "token_revoked"),
    ]
    [post] = digest_posts(fake_slack)
    assert post.token == "xoxb-installed"
    assert "Who runs payroll?" in plain(post) and "/archives/C_OTHER_TEAM/p" in plain(post)
    assert "xoxb-installed" in {call.token for call in fake_slack.calls_to("auth.test")}  # for the links
    assert digest.can_retake(runs(runtime.store)["C_UNINSTALLED"], SLOT + timedelta(hours=1)) is False


def test_without_a_token_the_admin_verb_still_prints_the_digest_but_will_not_post(
    fake_slack, database_url, monkeypatch, capsys, no_slack_env
):
    monkeypatch.setenv("DATABASE_URL", database_url)
    verb = ["digest", "--team", TEAM_ID, "--channel", GENERAL]
    assert cli_main([*verb, "--dry-run"]) == 0
    printed = capsys.readouterr().out
    assert "quiet week in <#C_GENERAL>" in printed and "https://" not in printed
    assert cli_main(verb) == 2
    assert "SLACK_BOT_TOKEN" in capsys.readouterr().err
    assert fake_slack.calls == []
