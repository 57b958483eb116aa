"""Routing's evidence tables follow every change, end to end on SQLite and PostgreSQL: Ana asks about #postgres,
Bruno and Maya answer, Ana accepts, moves her accept and takes it back, Ken votes and un-votes (once through a
redelivered event), Maya deletes her reply, and people are forgotten. After each step person_evidence and
tag_evidence are what a rebuild computes from the answers, and the ranker reads them back."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select

from bot import export
from bot.playground.emulator.fake_api import TEAM_ID
from bot.routing.evidence import load_evidence
from bot.routing.standing import TextProfile, standing_of
from bot.routing.upkeep import TEXT_RECORDS, answer_records, person_row, tag_rows_of
from bot.runtime import cli, wiring
from models.evidence import PersonEvidence, TagEvidence
from models.expert import FORGOTTEN_USER_ID
from models.question import Answer
from tests.route_helpers import GENERAL, add_people, bot_maker

ACCEPT, HELPFUL = "white_check_mark", "+1"
PERSON_KEYS = [c.name for c in PersonEvidence.__table__.columns if c.name not in ("team_id", "user_id")]
TAG_KEYS = [c.name for c in TagEvidence.__table__.columns if c.name not in ("team_id", "user_id", "tag")]


@pytest.fixture
def make_bot(fake_slack, database_url, slack_clock):
    yield from bot_maker(fake_slack, database_url, slack_clock)


@pytest.fixture
def bot(make_bot):
    bot = make_bot()
    add_people(bot.world, U_ANA="Europe/London", U_BRUNO="Europe/Berlin", U_MAYA="America/New_York", U_KEN="Asia/Tokyo")
    return bot


def kept(store) -> dict[tuple[str, ...], dict[str, Any]]:
    """Every evidence row of the workspace, keyed by (user,) or (user, tag)."""
    with store.session() as s:
        rows: dict[tuple[str, ...], dict[str, Any]] = {}
        for p in s.scalars(select(PersonEvidence).where(PersonEvidence.team_id == TEAM_ID)):
            rows[(p.user_id,)] = {k: getattr(p, k) for k in PERSON_KEYS}
        for t in s.scalars(select(TagEvidence).where(TagEvidence.team_id == TEAM_ID)):
            rows[(t.user_id, t.tag)] = {k: getattr(t, k) for k in TAG_KEYS}
    return rows


def rebuilt(store) -> dict[tuple[str, ...], dict[str, Any]]:
    """What a rebuild computes from the answers now (the same fold and reads as `rebuild`, written nowhere),
    the text profile included."""
    rows: dict[tuple[str, ...], dict[str, Any]] = {}
    with store.session() as s:
        live = (Answer.team_id == TEAM_ID) & Answer.deleted_at.is_(None) & (Answer.user_id != FORGOTTEN_USER_ID)
        for user_id, records in answer_records(s, live, texts_of_latest=TEXT_RECORDS).items():
            standing = standing_of(records)
            rows[(user_id,)] = person_row(standing)
            for row in tag_rows_of(standing):
                rows[(user_id, row.pop("tag"))] = row
    return rows


def same(actual: dict, expected: dict) -> bool:
    if actual.keys() != expected.keys():
        return False
    for key, row in expected.items():
        for name, value in row.items():
            got = actual[key][name]
            if isinstance(value, float):
                if got != pytest.approx(value, rel=1e-9, abs=1e-12):
                    return False
            elif hasattr(value, "tzinfo"):
                if got.replace(tzinfo=None) != value.replace(tzinfo=None):
                    return False
            elif got != value:
                return False
    return True


def check(bot) -> dict[tuple[str, ...], dict[str, Any]]:
    bot.world.settle()
    store = bot.runtime.services.store
    rows = kept(store)
    assert same(rows, rebuilt(store)), (rows, rebuilt(store))
    return rows


def counts(rows, key: tuple[str, ...]) -> tuple[int, int, int] | None:
    row = rows.get(key)
    return None if row is None else (row["answers"], row["accepted"], row["helpful_votes"])


def test_the_evidence_follows_answers_accepts_votes_deletions_and_forgetting(bot):
    world, clock = bot.world, bot.clock
    question = world.ask("U_ANA", "How do I vacuum a big table without locking it? #postgres #ops", GENERAL)
    bruno = world.reply("U_BRUNO", question, "pg_repack rebuilds it online.")
    clock.advance(timedelta(hours=5))
    maya = world.reply("U_MAYA", question, "VACUUM never takes an exclusive lock; VACUUM FULL does.")
    rows = check(bot)
    assert counts(rows, ("U_BRUNO",)) == counts(rows, ("U_BRUNO", "postgres")) == (1, 0, 0)
    assert counts(rows, ("U_MAYA", "ops")) == (1, 0, 0) and ("U_ANA",) not in rows  # askers have no evidence

    clock.advance(timedelta(days=2))
    world.react("U_ANA", ACCEPT, GENERAL, bruno)  # accepted
    rows = check(bot)
    assert counts(rows, ("U_BRUNO", "postgres")) == (1, 1, 0) and counts(rows, ("U_MAYA",)) == (1, 0, 0)

    world.react("U_ANA", ACCEPT, GENERAL, maya)  # the accept moves to Maya
    rows = check(bot)
    assert counts(rows, ("U_BRUNO",)) == (1, 0, 0) and counts(rows, ("U_MAYA", "postgres")) == (1, 1, 0)

    world.unreact("U_ANA", ACCEPT, GENERAL, maya)  # taken back: Bruno's earlier accept holds again
    rows = check(bot)
    assert counts(rows, ("U_BRUNO", "ops")) == (1, 1, 0) and counts(rows, ("U_MAYA",)) == (1, 0, 0)
    world.unreact("U_ANA", ACCEPT, GENERAL, bruno)  # un-accepted
    rows = check(bot)
    assert counts(rows, ("U_BRUNO",)) == (1, 0, 0)

    first = world.react("U_KEN", HELPFUL, GENERAL, bruno)  # a helpful vote, then Slack redelivers it
    rows = check(bot)
    assert counts(rows, ("U_BRUNO", "postgres")) == (1, 0, 1)
    reaction = {"type": "reaction_added", "user": "U_KEN", "reaction": HELPFUL, "item_user": "U_BRUNO"}
    reaction["item"] = {"type": "message", "channel": GENERAL, "ts": bruno}
    assert world.send_event(reaction, event_id=first.meta["event_id"], retry_num=1).status == 200
    rows = check(bot)
    assert counts(rows, ("U_BRUNO",)) == (1, 0, 1)
    world.unreact("U_KEN", HELPFUL, GENERAL, bruno)  # removed
    rows = check(bot)
    assert counts(rows, ("U_BRUNO", "postgres")) == (1, 0, 0)

    world.delete("U_MAYA", GENERAL, maya)  # a deleted reply counts no more
    rows = check(bot)
    assert not any(key[0] == "U_MAYA" for key in rows)

    # The ranker reads the same evidence back: Bruno is a learned candidate on #postgres.
    with bot.runtime.services.store.session() as s:
        evidence = load_evidence(s, TEAM_ID, ["postgres"], "vacuum", clock.now(), {"U_ANA"})
    assert evidence.user_ids == {"U_BRUNO"} and evidence.standing["U_BRUNO"].tags["postgres"].answers == 1
    assert evidence.coverage == {"postgres": {"U_BRUNO"}}
    # ... and his text profile: the words of his answer and of the question it answered, and when he answered.
    profile = evidence.standing["U_BRUNO"].profile
    assert profile is not None and (profile.documents, len(profile.minutes)) == (1, 1)
    assert profile.terms["pg_repack"] == (1, 1) and profile.terms["vacuum"] == (1, 1) and "how" not in profile.terms
    assert rows[("U_BRUNO",)]["text_profile"] == profile.to_json()
    assert TextProfile.from_json(profile.to_json()) == profile

    # Forget-user: Ken's votes go, so Bruno's helpful votes are recomputed; then Bruno himself is forgotten.
    world.react("U_KEN", HELPFUL, GENERAL, bruno)
    rows = check(bot)
    assert counts(rows, ("U_BRUNO",)) == (1, 0, 1)
    store = bot.runtime.services.store
    with store.session() as s:
        assert export.forget_user(s, TEAM_ID, "U_KEN").changed["votes cast (deleted)"] == 1
    rows = check(bot)
    assert counts(rows, ("U_BRUNO", "postgres")) == (1, 0, 0)
    with store.session() as s:
        assert export.forget_user(s, TEAM_ID, "U_BRUNO").changed["routing evidence (deleted)"] == 3
    assert check(bot) == {}


def test_rebuild_evidence_recomputes_what_the_upkeep_keeps(bot, database_url, monkeypatch, capsys):
    world = bot.world
    question = world.ask("U_ANA", "Why is my index not used? #postgres", GENERAL)
    reply = world.reply("U_BRUNO", question, "Run ANALYZE first.")
    world.react("U_ANA", ACCEPT, GENERAL, reply)
    world.react("U_KEN", HELPFUL, GENERAL, reply)
    other = world.ask("U_BRUNO", "How do I tune autovacuum? #postgres #ops", GENERAL)
    world.reply("U_MAYA", other, "Lower the scale factor on big tables.")
    expected = check(bot)
    store = bot.runtime.services.store
    with store.session() as s:  # lose the rows (and leave a stale one) to see the verb put them back
        s.query(TagEvidence).delete()
        s.query(PersonEvidence).filter(PersonEvidence.user_id == "U_BRUNO").delete()
        s.add(PersonEvidence(team_id=TEAM_ID, user_id="U_GONE", answers=1, as_of=bot.clock.now()))
    monkeypatch.setenv("DATABASE_URL", database_url)
    assert cli.main(["rebuild-evidence"]) == 0
    out = capsys.readouterr().out
    assert f"{TEAM_ID}: 2/2 people" in out and f"Rebuilt routing evidence of {TEAM_ID}: 2 people" in out
    assert f"Rebuilt tag statistics of {TEAM_ID} (" in out and "stats rollup (2 questions)" in out
    assert same(kept(store), expected) and counts(kept(store), ("U_BRUNO", "postgres")) == (1, 1, 1)

    assert cli.main(["rebuild-evidence", "--team", "T_NOBODY"]) == 1
    assert "No workspace T_NOBODY" in capsys.readouterr().err


def test_a_start_computes_the_evidence_an_upgrade_or_a_stopped_fill_left_out(bot):
    world = bot.world
    question = world.ask("U_ANA", "Why is my index not used? #postgres", GENERAL)
    reply = world.reply("U_BRUNO", question, "Run ANALYZE first.")
    world.react("U_ANA", ACCEPT, GENERAL, reply)
    other = world.ask("U_BRUNO", "How do I tune autovacuum? #postgres #ops", GENERAL)
    world.reply("U_MAYA", other, "Lower the scale factor on big tables.")
    expected = check(bot)
    store = bot.runtime.services.store
    with store.session() as s:  # as migration 0010 leaves it: answers, and no evidence yet
        s.query(TagEvidence).delete()
        s.query(PersonEvidence).delete()
    wiring.fill_missing_evidence(store)
    assert same(kept(store), expected)

    with store.session() as s:  # a fill stopped after some people: the next start computes the rest
        s.query(TagEvidence).filter(TagEvidence.user_id == "U_MAYA").delete()
        s.query(PersonEvidence).filter(PersonEvidence.user_id == "U_MAYA").delete()
    wiring.fill_missing_evidence(store)
    assert same(kept(store), expected) and counts(kept(store), ("U_MAYA", "ops")) == (1, 0, 0)


def test_forgetting_someone_takes_their_words_out_of_the_text_profiles_of_others(bot):
    world = bot.world
    question = world.ask("U_ANA", "Why does autovacuum stall on my partitions? #postgres", GENERAL)
    world.reply("U_BRUNO", question, "Ask <@U_KEN>, he tuned ours.")
    rows = check(bot)
    profile = TextProfile.from_json(rows[("U_BRUNO",)]["text_profile"])
    assert profile.terms.get("autovacuum") == (1, 1) and profile.terms.get("u_ken") == (1, 1)
    store = bot.runtime.services.store

    with store.session() as s:  # Ana's question is redacted: Bruno's profile no longer holds its words
        export.forget_user(s, TEAM_ID, "U_ANA")
    rows = check(bot)
    profile = TextProfile.from_json(rows[("U_BRUNO",)]["text_profile"])
    assert profile.terms.get("autovacuum") is None and profile.terms.get("tuned") == (1, 1)

    with store.session() as s:  # the mention of Ken is replaced: so is the word it made in Bruno's profile
        assert export.forget_user(s, TEAM_ID, "U_KEN").changed["mentions in text (replaced)"] == 1
    rows = check(bot)
    assert TextProfile.from_json(rows[("U_BRUNO",)]["text_profile"]).terms.get("u_ken") is None
