"""The question/answer/reaction decisions against a real store (SQLite and PostgreSQL)."""

import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, text

from bot import qa
from bot.config import Settings
from bot.text import ParsedText
from models.question import (
    RESOLUTION_SIMILAR,
    STATUS_OPEN,
    STATUS_POSTING,
    STATUS_RESOLVED,
    Answer,
    EarlyReply,
    Question,
    Vote,
    parse_earlier_ref,
)
from models.session import Store
from models.workspace import claim_event

NOW = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
SETTINGS = Settings()


@pytest.fixture
def store(database_url):
    store = Store.from_url(database_url)
    yield store
    store.dispose()


def ask(store, key="k1", asker="U_ASKER"):
    with store.session() as s:
        question, created = qa.create_question(
            s,
            team_id="T1",
            channel_id="C1",
            asker_id=asker,
            parsed=ParsedText("How do I vacuum?", ("postgres",)),
            request_key=key,
            now=NOW,
        )
        assert created
        qa.record_posted(s, question.id, message_ts="100.000001", channel_private=False)
        return question.id


def reply(store, ts, user):
    with store.session() as s:
        return qa.record_reply(
            s, team_id="T1", channel_id="C1", thread_ts="100.000001", ts=ts, user_id=user, text="try X", now=NOW
        )


def react(store, ts, user, reaction="white_check_mark", added=True, at=NOW):
    with store.session() as s:
        return qa.apply_reaction(
            s, SETTINGS, team_id="T1", channel_id="C1", ts=ts, user_id=user, reaction=reaction, added=added, now=at
        )


def question(store, question_id):
    with store.session() as s:
        return s.get(Question, question_id)


def test_the_same_request_stores_one_question(store):
    ask(store, key="same")
    with store.session() as s:
        _, created = qa.create_question(
            s,
            team_id="T1",
            channel_id="C1",
            asker_id="U_ASKER",
            parsed=ParsedText("How do I vacuum?", ()),
            request_key="same",
            now=NOW,
        )
        assert not created
        assert s.query(Question).count() == 1


def test_replies_by_others_are_answers_once(store):
    ask(store)
    assert reply(store, "101.1", "U_EXPERT") is not None
    assert reply(store, "101.1", "U_EXPERT") is None  # redelivered
    assert reply(store, "101.2", "U_ASKER") is None  # the asker's follow-up is not an answer
    with store.session() as s:
        assert s.query(Answer).count() == 1


def test_replies_in_unknown_threads_are_ignored(store):
    ask(store)
    with store.session() as s:
        assert (
            qa.record_reply(
                s, team_id="T1", channel_id="C1", thread_ts="999.1", ts="999.2", user_id="U_X", text="hi", now=NOW
            )
            is None
        )


def test_askers_check_mark_accepts_and_removing_it_reopens(store):
    qid = ask(store)
    reply(store, "101.1", "U_EXPERT")
    outcome = react(store, "101.1", "U_ASKER")
    assert outcome.effect is qa.ReactionEffect.ACCEPTED and outcome.redraw_question
    resolved = question(store, qid)
    assert resolved.status == STATUS_RESOLVED and resolved.resolved_at == NOW
    assert react(store, "101.1", "U_ASKER", added=False).effect is qa.ReactionEffect.UNACCEPTED
    reopened = question(store, qid)
    assert reopened.status == STATUS_OPEN and reopened.accepted_answer_id is None


def test_removing_the_latest_accept_falls_back_to_the_previous_one(store):
    qid = ask(store)
    first, second = reply(store, "101.1", "U_A"), reply(store, "101.2", "U_B")
    react(store, "101.1", "U_ASKER")
    react(store, "101.2", "U_ASKER", at=NOW + timedelta(minutes=5))
    assert question(store, qid).accepted_answer_id == second.id
    react(store, "101.2", "U_ASKER", added=False)
    assert question(store, qid).accepted_answer_id == first.id
    assert question(store, qid).status == STATUS_RESOLVED


def test_the_knowledge_base_answered_it_is_one_rule_in_python_and_in_sql(store):
    qid = ask(store)
    answer = reply(store, "101.1", "U_EXPERT")
    cases = {  # (status, accepted answer, resolution) -> answered by the earlier item?
        (STATUS_RESOLVED, None, RESOLUTION_SIMILAR): True,
        (STATUS_RESOLVED, answer.id, RESOLUTION_SIMILAR): False,  # an accept took over
        (STATUS_RESOLVED, answer.id, None): False,
        (STATUS_OPEN, None, RESOLUTION_SIMILAR): False,
        (STATUS_OPEN, None, None): False,
        (STATUS_POSTING, None, None): False,
    }
    for (status, accepted, resolution), expected in cases.items():
        with store.session() as s:
            row = s.get(Question, qid)
            row.status, row.accepted_answer_id, row.resolution = status, accepted, resolution
            row.resolution_ref = "lesson:7" if resolution else None
        with store.session() as s:
            row = s.get(Question, qid)
            in_sql = s.scalar(select(Question.answered_by_earlier).where(Question.id == qid))
            assert (row.answered_by_earlier, bool(in_sql)) == (expected, expected), (status, accepted, resolution)
            assert row.earlier_ref == (("lesson", 7) if expected else None)


def test_an_earlier_items_reference_reads_as_its_kind_and_id():
    assert parse_earlier_ref("question:12") == ("question", 12)
    assert parse_earlier_ref("lesson:3") == ("lesson", 3)
    for wrong in (None, "", "question", "question:", "question:x", "answer:3", "lesson:-3", ":3"):
        assert parse_earlier_ref(wrong) is None, wrong


def test_check_mark_by_someone_else_does_not_accept(store):
    qid = ask(store)
    reply(store, "101.1", "U_EXPERT")
    assert react(store, "101.1", "U_BYSTANDER").effect is qa.ReactionEffect.IGNORED
    assert question(store, qid).status == STATUS_OPEN


def test_helpful_votes_count_once_and_not_for_oneself(store):
    ask(store)
    reply(store, "101.1", "U_EXPERT")
    assert react(store, "101.1", "U_FAN", "+1").effect is qa.ReactionEffect.VOTED
    assert react(store, "101.1", "U_FAN", "+1").effect is qa.ReactionEffect.IGNORED
    assert react(store, "101.1", "U_FAN", "+1::skin-tone-3").effect is qa.ReactionEffect.IGNORED
    assert react(store, "101.1", "U_EXPERT", "bulb").effect is qa.ReactionEffect.IGNORED
    assert react(store, "101.1", "U_FAN", "tada").effect is qa.ReactionEffect.IGNORED
    with store.session() as s:
        assert s.query(Vote).count() == 1
    assert react(store, "101.1", "U_FAN", "+1", added=False).effect is qa.ReactionEffect.UNVOTED
    with store.session() as s:
        assert s.query(Vote).count() == 0


def test_deleting_the_accepted_answer_reopens_the_question(store):
    qid = ask(store)
    reply(store, "101.1", "U_EXPERT")
    react(store, "101.1", "U_ASKER")
    with store.session() as s:
        assert qa.delete_reply(s, team_id="T1", channel_id="C1", ts="101.1", now=NOW) == qid
    assert question(store, qid).status == STATUS_OPEN
    assert react(store, "101.1", "U_ASKER").effect is qa.ReactionEffect.IGNORED


def resolved_by_a_lesson(store, qid):
    """As "This answers it" leaves it (bot.routing.buttons.resolve_with_earlier)."""
    with store.session() as s:
        row = s.get(Question, qid)
        row.status, row.resolved_at, row.resolution, row.resolution_ref = (
            STATUS_RESOLVED,
            NOW,
            RESOLUTION_SIMILAR,
            "lesson:7",
        )


def test_an_accept_after_this_answers_it_takes_over_and_taking_it_back_falls_back_to_the_earlier_item(store):
    qid = ask(store)
    resolved_by_a_lesson(store, qid)
    answer = reply(store, "101.1", "U_EXPERT")
    assert react(store, "101.1", "U_ASKER", at=NOW + timedelta(hours=1)).effect is qa.ReactionEffect.ACCEPTED
    accepted = question(store, qid)
    assert (accepted.accepted_answer_id, accepted.answered_by_earlier, accepted.resolved_at) == (answer.id, False, NOW)

    assert react(store, "101.1", "U_ASKER", added=False).effect is qa.ReactionEffect.UNACCEPTED
    back = question(store, qid)
    assert (back.status, back.accepted_answer_id, back.resolved_at) == (STATUS_RESOLVED, None, NOW)
    assert back.answered_by_earlier and back.earlier_ref == ("lesson", 7)

    react(store, "101.1", "U_ASKER")  # accepted again, then the answer is deleted: the lesson again
    with store.session() as s:
        assert qa.delete_reply(s, team_id="T1", channel_id="C1", ts="101.1", now=NOW) == qid
    assert question(store, qid).answered_by_earlier


def test_edits_are_followed(store):
    ask(store)
    reply(store, "101.1", "U_EXPERT")
    with store.session() as s:
        assert qa.edit_reply(s, team_id="T1", channel_id="C1", ts="101.1", text="try Y", now=NOW)
    with store.session() as s:
        answer = s.query(Answer).one()
        assert answer.text == "try Y" and answer.edited_at == NOW


def test_an_event_is_claimed_once(store):
    with store.session() as s:
        assert claim_event(s, "T1", "Ev1", NOW)
    with store.session() as s:
        assert not claim_event(s, "T1", "Ev1", NOW)
        assert claim_event(s, "T2", "Ev1", NOW)


# --- a reply that comes before the question's ts is stored (its post's answer is on the way) ----------------


def stored_unposted(store, key="k-early"):
    with store.session() as s:
        question, _ = qa.create_question(
            s,
            team_id="T1",
            channel_id="C1",
            asker_id="U_ASKER",
            parsed=ParsedText("How do I vacuum?", ("postgres",)),
            request_key=key,
            now=NOW,
        )
        return question.id


def early_reply(session, ts, user="U_EXPERT", thread_ts="100.000001"):
    return qa.record_reply(
        session, team_id="T1", channel_id="C1", thread_ts=thread_ts, ts=ts, user_id=user, text="try X", now=NOW
    )


def answer_users(store):
    with store.session() as s:
        return sorted(a.user_id for a in s.query(Answer))


def test_a_reply_before_the_ts_is_stored_becomes_an_answer_when_it_is(store):
    question_id = stored_unposted(store)
    with store.session() as s:
        assert early_reply(s, "100.000002") is None  # kept, not an answer yet: the ts is not known
        assert early_reply(s, "100.000003", user="U_ASKER") is None
        assert early_reply(s, "200.000002", thread_ts="200.000001") is None  # another thread, maybe ours
    with store.session() as s:
        assert qa.record_posted(s, question_id, message_ts="100.000001", channel_private=False) is not None
    assert answer_users(store) == ["U_EXPERT"], "the asker's own reply and other threads are not answers"
    with store.session() as s:
        assert s.query(EarlyReply).count() == 0, "none kept once no question of the channel is being posted"
        assert qa.record_posted(s, question_id, message_ts="300.000001", channel_private=False) is None


def test_replies_in_a_channel_with_nothing_being_posted_are_not_kept(store):
    ask(store)  # posted: its ts is known
    with store.session() as s:
        assert early_reply(s, "200.000002", thread_ts="200.000001") is None
        assert s.query(EarlyReply).count() == 0


def test_a_reply_and_the_record_of_the_post_racing_never_lose_the_answer(store, database_url):
    """PostgreSQL, read committed: the reply's transaction finds no question at its thread and keeps an early
    reply; the transaction recording the ts must not miss it, whichever commits first."""
    if not database_url.startswith("postgresql"):
        pytest.skip("SQLite runs one writing transaction at a time (BEGIN IMMEDIATE): there is no race")
    question_id = stored_unposted(store)
    recorded = threading.Event()

    def record_the_post() -> None:
        with store.session() as s:
            s.execute(text("SET application_name = 'recording the post'"))
            qa.record_posted(s, question_id, message_ts="100.000001", channel_private=False)
        recorded.set()

    with store.session() as reply:
        assert early_reply(reply, "100.000002") is None  # kept, not committed yet…
        recorder = threading.Thread(target=record_the_post)
        recorder.start()  # …when the ts is recorded by another transaction
        deadline = time.monotonic() + 5
        while not recorded.is_set() and not waiting_for_a_lock(store, "recording the post"):
            assert time.monotonic() < deadline, "the recording transaction neither waited nor finished"
            time.sleep(0.01)  # between looks
    recorder.join(10)
    assert recorded.is_set()
    assert answer_users(store) == ["U_EXPERT"]


def waiting_for_a_lock(store, application_name):
    with store.engine.connect() as conn:
        waits = conn.execute(
            text("SELECT wait_event_type FROM pg_stat_activity WHERE application_name = :name"),
            {"name": application_name},
        ).scalars()
        return "Lock" in list(waits)
