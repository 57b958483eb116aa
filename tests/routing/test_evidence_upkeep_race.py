"""Two replicas refreshing one person's evidence at once (PostgreSQL, read committed): the second waits for the
first's lock on the person's row, then reads the first's committed answer, so neither change is lost."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, text

from bot.routing.upkeep import lock_people, refresh_people
from models.evidence import PersonEvidence, TagEvidence
from models.question import Answer, Question, QuestionTag
from models.session import Store
from models.workspace import ensure_workspace

TEAM = "T_RACE"
NOW = datetime(2026, 12, 8, 9, 0, tzinfo=UTC)


def answer(session, n: int, *, refresh: bool = True) -> None:
    """Bruno answers question n (#postgres), and the upkeep refreshes him, as bot/qa.py does."""
    question = Question(
        team_id=TEAM,
        channel_id="C1",
        asker_id="U_ANA",
        text=f"question {n}",
        status="open",
        message_ts=f"{n}.000001",
        request_key=f"race:{n}",
        created_at=NOW,
        tags=[QuestionTag(tag="postgres", team_id=TEAM)],
    )
    session.add(question)
    session.flush()
    session.add(
        Answer(
            team_id=TEAM,
            question_id=question.id,
            channel_id="C1",
            ts=f"{n}.000002",
            user_id="U_BRUNO",
            text="an answer",
            created_at=NOW + timedelta(minutes=n),
        )
    )
    if refresh:
        refresh_people(session, TEAM, ["U_BRUNO"])


def test_two_refreshes_of_one_person_take_turns_and_lose_nothing(database_url):
    if not database_url.startswith("postgresql"):
        pytest.skip("SQLite runs one writing transaction at a time (BEGIN IMMEDIATE): there is no race")
    store = Store.from_url(database_url)
    try:
        with store.session() as s:
            ensure_workspace(s, TEAM, NOW)
            answer(s, 1)  # Bruno's row exists: both transactions below lock it
        done = threading.Event()

        def second_replica() -> None:
            with store.session() as s:
                s.execute(text("SET application_name = 'second refresh'"))
                answer(s, 3)
            done.set()

        with store.session() as first:
            answer(first, 2, refresh=False)
            first.flush()
            lock_people(first, TEAM, ["U_BRUNO"])  # the first refresh has locked Bruno's row, read nothing yet…
            other = threading.Thread(target=second_replica)
            other.start()  # …when another replica records Bruno's next answer
            deadline = time.monotonic() + 5
            while not waiting_for_a_lock(store, "second refresh"):
                assert not done.is_set(), "the second refresh did not wait for the first"
                assert time.monotonic() < deadline, "the second refresh neither waited nor finished"
                time.sleep(0.01)  # between looks
            refresh_people(first, TEAM, ["U_BRUNO"])
        other.join(10)
        assert done.is_set()
        with store.session() as s:
            person = s.scalar(select(PersonEvidence).where(PersonEvidence.team_id == TEAM))
            on_tag = s.scalar(select(TagEvidence).where(TagEvidence.team_id == TEAM))
            assert person is not None and on_tag is not None
            assert (person.answers, on_tag.answers) == (3, 3), "the second refresh saw the first's answer"
    finally:
        store.dispose()


def waiting_for_a_lock(store, application_name):
    with store.engine.connect() as conn:
        waits = conn.execute(
            text("SELECT wait_event_type FROM pg_stat_activity WHERE application_name = :name"),
            {"name": application_name},
        ).scalars()
        return "Lock" in list(waits)
