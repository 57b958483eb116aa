"""What a channel's week contains, read from the store with its limits and totals; a quiet week posts a note
or nothing, as each channel chose. SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

from bot.digest import schedule
from bot.playground.emulator.fake_api import TEAM_ID
from models.digest import DIGEST_EMPTY, DIGEST_POSTED, EarlierItem, load_digest_data
from models.expert import Expertise
from models.lesson import Lesson
from models.question import RESOLUTION_SIMILAR, STATUS_POSTING, STATUS_RESOLVED, STATUS_UNPOSTED
from tests.digest.helpers import (
    GENERAL,
    SECRET,
    SLOT,
    add_answer,
    add_question,
    digest_posts,
    plain,
    runs,
    subscribe_directly,
    tick_at,
)
from tests.slack.fixtures import START


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


def resolved_by(question, ref: str, at) -> None:
    """As "This answers it" leaves a question (bot.routing.buttons.resolve_with_earlier)."""
    question.status, question.resolved_at, question.resolution, question.resolution_ref = (
        STATUS_RESOLVED,
        at,
        RESOLUTION_SIMILAR,
        ref,
    )


def test_questions_the_knowledge_base_answered_count_as_answered_with_what_answered_them(runtime):
    week_start = START - timedelta(days=6)
    with runtime.store.session() as s:
        public = add_question(s, "C_OPS", "earlier, public", at=START - timedelta(days=60))
        public_answer = add_answer(s, public, "U_OLDHAND", at=START - timedelta(days=59), accepted_by="U_ASKER")
        secret = add_question(s, SECRET, "earlier, private", at=START - timedelta(days=60))
        add_answer(s, secret, "U_INSIDER", at=START - timedelta(days=59), accepted_by="U_ASKER")
        lesson = Lesson(
            team_id=TEAM_ID,
            channel_id=GENERAL,
            channel_private=False,
            author_id="U_TEACHER",
            text="Use pg_repack",
            message_ts="900.000001",
            request_key="lesson",
            created_at=START - timedelta(days=30),
        )
        s.add(lesson)
        s.flush()
        by_public = add_question(s, GENERAL, "by the public question", at=week_start)
        resolved_by(by_public, f"question:{public.id}", week_start + timedelta(minutes=5))
        by_lesson = add_question(s, GENERAL, "by the lesson", at=week_start + timedelta(hours=1))
        resolved_by(by_lesson, f"lesson:{lesson.id}", week_start + timedelta(hours=1, minutes=5))
        by_secret = add_question(s, GENERAL, "by the private question", at=week_start + timedelta(hours=2))
        resolved_by(by_secret, f"question:{secret.id}", week_start + timedelta(hours=2, minutes=5))
        then_accepted = add_question(s, GENERAL, "then an answer was accepted", at=week_start + timedelta(hours=3))
        resolved_by(then_accepted, f"lesson:{lesson.id}", week_start + timedelta(hours=3, minutes=5))
        add_answer(s, then_accepted, "U_EXPERT", at=week_start + timedelta(hours=4), accepted_by="U_ASKER")
        last_month = add_question(s, GENERAL, "last month", at=START - timedelta(days=40))
        resolved_by(last_month, f"lesson:{lesson.id}", START - timedelta(days=40))
        elsewhere = add_question(s, "C_OPS", "in another channel", at=week_start)
        resolved_by(elsewhere, f"lesson:{lesson.id}", week_start)
    with runtime.store.session() as s:
        data = load_digest_data(s, TEAM_ID, GENERAL, START - timedelta(days=7), START + timedelta(hours=1), limit=3)

    assert data.asked == 4 and data.open.total == 0
    assert (data.answered.total, data.answered_by_earlier) == (4, 3)  # all four answered, three by themselves
    assert [(q.text, q.answerer_id, q.earlier) for q in data.answered.items] == [
        (
            "by the public question",
            None,
            EarlierItem("question", "C_OPS", public.message_ts, "U_OLDHAND", public_answer.ts),
        ),
        ("by the lesson", None, EarlierItem("lesson", GENERAL, "900.000001", "U_TEACHER")),
        ("by the private question", None, EarlierItem("question")),  # another channel's private item: unnamed
    ]
    with runtime.store.session() as s:
        data = load_digest_data(s, TEAM_ID, GENERAL, START - timedelta(days=7), START + timedelta(hours=1))
    assert [(q.text, q.answerer_id, q.earlier) for q in data.answered.items][-1] == (
        "then an answer was accepted",
        "U_EXPERT",
        None,
    )
    # The answers that helped were credited when they were accepted: "This answers it" credits nobody again.
    assert [(h.user_id, h.accepted) for h in data.helpers.items] == [("U_EXPERT", 1)]


def test_an_empty_week_posts_a_note_or_nothing_as_each_channel_chose(runtime, fake_slack):
    for channel in ("C_NOTE", "C_SKIP"):
        fake_slack.add_channel(channel)
        subscribe_directly(runtime.store, channel, START)
    with runtime.store.session() as s:
        schedule.set_empty_weeks(s, team_id=TEAM_ID, channel_id="C_SKIP", user_id="U1", now=START, post=False)
    outcomes = tick_at(runtime, SLOT)
    assert sorted((o.channel_id, o.status) for o in outcomes) == [("C_NOTE", DIGEST_POSTED), ("C_SKIP", DIGEST_EMPTY)]
    [note] = digest_posts(fake_slack)
    assert note.args["channel"] == "C_NOTE" and "A quiet week in <#C_NOTE>" in plain(note)
    assert runs(runtime.store)["C_SKIP"].status == DIGEST_EMPTY
    assert tick_at(runtime, SLOT + timedelta(hours=1)) == []
