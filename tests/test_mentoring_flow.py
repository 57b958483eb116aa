"""Mentoring end to end (SQLite and PostgreSQL): `/teach mentor` offers, `/ask mentor` asks, PeerLearn picks the
mentor and introduces the pair in a group DM; the check-in after two weeks; pause, end, the end of the period;
a request that waits until an offer arrives; a redelivered command; the App Home's Mentoring section."""

from __future__ import annotations

import json
from datetime import timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from bot import export, mentoring, stats, stats_render
from bot.digest.content import build_digest
from models.digest import load_digest_data
from models.mentoring import MentorPairing, MentorRequest, waiting_demand

GENERAL = "C_GENERAL"


@pytest.fixture
def world(slack):
    slack.add_user("U_MAYA", name="maya", tz="Europe/Berlin")  # knows #postgres
    slack.add_user("U_KENJI", name="kenji", tz="Asia/Tokyo")  # offers too, knows less
    slack.add_user("U_ANA", name="ana", tz="Europe/London")  # wants a mentor
    slack.add_user("U_NICO", name="nico", tz="Europe/Madrid")
    slack.add_channel(GENERAL, name="general", members=["U_MAYA", "U_KENJI", "U_ANA", "U_NICO"])
    return slack


def said(response) -> str:
    payload = response.json() or {}
    return payload.get("text", "") + json.dumps(payload.get("blocks", []))


def told(world, user: str, words: str) -> bool:
    return any(words in e.get("text", "") for e in world.ephemerals(user))


def text_of(message) -> str:
    return message["text"] + json.dumps(message.get("blocks", []))


def group_dms(world, since=0):
    """The bot's posts into group DMs (mpims: ids G…), as Slack holds them."""
    calls = world.fake.calls_to(
        "chat.postMessage", since=since, where=lambda c: c.ok and str(c.response.get("channel", "")).startswith("G")
    )
    return [
        {**world.fake.message(c.response["channel"], c.response["ts"]), "channel": c.response["channel"]} for c in calls
    ]


def pairings(world):
    with world.runtime.store.session() as s:
        return [
            (p.mentor_id, p.mentee_id, p.tag, p.status)
            for p in s.scalars(select(MentorPairing).order_by(MentorPairing.id))
        ]


def tick(world, delta=timedelta()):
    world.clock.advance(delta)
    return mentoring.tick(world.runtime.services, world.runtime.bolt_app.client, world.clock.now())


def offer_and_match(world):
    world.command("U_MAYA", "/teach", "#postgres", GENERAL)
    world.command("U_MAYA", "/teach", "mentor #postgres up to 2 people", GENERAL)
    world.command("U_KENJI", "/teach", "mentor #postgres", GENERAL)
    world.command("U_ANA", "/ask", "mentor #postgres", GENERAL)
    world.settle()
    return group_dms(world)


def test_an_offer_a_request_and_the_introduction_in_a_group_dm(world):
    offered = world.command("U_MAYA", "/teach", "mentor #Postgres up to 2 people", GENERAL)
    assert "mentor on `#postgres`, up to 2 people at once" in said(offered)
    world.command("U_MAYA", "/teach", "#postgres", GENERAL)  # a declared go-to person: expertise
    world.command("U_KENJI", "/teach", "mentor #postgres", GENERAL)

    asked = world.command("U_ANA", "/ask", "mentor #postgres", GENERAL)
    assert asked.status == 200 and not asked.body.strip()  # acked at once; the answer follows
    world.settle()

    opened = world.fake.calls_to("conversations.open", where=lambda c: "," in str(c.args.get("users", "")))
    assert [c.args["users"] for c in opened] == ["U_MAYA,U_ANA"]
    [intro] = group_dms(world)
    words = text_of(intro)
    assert "<@U_ANA>, meet <@U_MAYA>: your mentor on `#postgres`" in words
    assert "offered to mentor on #postgres; declared #postgres" in words  # why: the ranker's own reasons
    assert "of working time a week in common" in words  # Berlin and London overlap
    assert "free to mentor up to 2" in words
    assert "A first step" in words and "check in after 14 days" in words
    channel = world.fake.channels[opened[0].response["channel"]["id"]]
    assert channel.is_mpim and channel.members == {"U_MAYA", "U_ANA", "UBOT"}
    assert told(world, "U_ANA", "I introduced you to <@U_MAYA>, your mentor on `#postgres`")
    assert pairings(world) == [("U_MAYA", "U_ANA", "postgres", "active")]


def test_bad_input_gets_a_friendly_answer(world):
    assert "name your topics" in said(world.command("U_MAYA", "/teach", "mentor", GENERAL))
    assert "from 1 to 10 people" in said(world.command("U_MAYA", "/teach", "mentor #git up to 50 people", GENERAL))
    assert "name the topic" in said(world.command("U_ANA", "/ask", "mentor please", GENERAL))
    # A question that happens to start with the word is asked as a question, not read as a request.
    long = "mentor programmes: who runs the one for new managers, and how do I join it next quarter? #hr"
    assert "name the topic" not in said(world.command("U_ANA", "/ask", long, GENERAL))
    world.settle()
    assert any("who runs the one for new managers" in m.text for m in world.messages(GENERAL))
    assert pairings(world) == []


def test_nobody_mentors_themselves(world):
    world.command("U_MAYA", "/teach", "mentor #go", GENERAL)
    world.command("U_MAYA", "/ask", "mentor #go", GENERAL)
    world.settle()
    assert told(world, "U_MAYA", "No mentor on `#go` is free right now") and pairings(world) == []


def test_a_redelivered_command_pairs_once(world):
    world.command("U_MAYA", "/teach", "mentor #postgres", GENERAL)
    first = world.command("U_ANA", "/ask", "mentor #postgres", GENERAL)
    world.settle()
    # Slack retries the same command (same trigger id): the stored request is found, nothing is paired twice.
    fields = world.fake.command_fields("U_ANA", "mentor #postgres", GENERAL, channel_name="general", command="/ask")
    fields["trigger_id"] = first.meta["trigger_id"]
    world.sender.slash_command(fields)
    world.settle()
    assert pairings(world) == [("U_MAYA", "U_ANA", "postgres", "active")]
    assert len(group_dms(world)) == 1
    with world.runtime.store.session() as s:
        assert len(s.scalars(select(MentorRequest)).all()) == 1
    world.command("U_ANA", "/ask", "mentor #postgres", GENERAL)  # a new command: she has one already
    world.settle()
    assert told(world, "U_ANA", "You already have a mentor on `#postgres`: <@U_MAYA>")
    assert len(pairings(world)) == 1


def test_no_mentor_then_waiting_then_an_offer_arrives(world):
    world.command("U_ANA", "/ask", "mentor #rust", GENERAL)
    world.settle()
    assert told(world, "U_ANA", "No mentor on `#rust` is free right now")
    world.command("U_ANA", "/ask", "mentor #rust", GENERAL)
    world.settle()
    assert told(world, "U_ANA", "You already asked for a mentor on `#rust`")
    with world.runtime.store.session() as s:
        assert waiting_demand(s, "T0001") == [("rust", 1)]
    assert tick(world)["matched"] == 0

    world.command("U_NICO", "/teach", "mentor #rust up to 1 person", GENERAL)
    world.settle()
    [intro] = group_dms(world)
    assert "<@U_ANA>, meet <@U_NICO>" in text_of(intro)
    with world.runtime.store.session() as s:
        assert waiting_demand(s, "T0001") == []
    assert tick(world) == {"ended": 0, "check_ins": 0, "introduced": 0, "matched": 0}


def test_a_full_mentor_frees_a_place_by_ending(world):
    world.command("U_NICO", "/teach", "mentor #rust up to 1 person", GENERAL)
    world.command("U_ANA", "/ask", "mentor #rust", GENERAL)
    world.settle()
    world.command("U_KENJI", "/ask", "mentor #rust", GENERAL)  # Nico is full: Kenji waits
    world.settle()
    assert [p[:2] for p in pairings(world)] == [("U_NICO", "U_ANA")]

    world.open_home("U_NICO")
    world.settle()
    [pairing_id] = [p.id for p in all_pairings(world)]
    world.click("U_NICO", mentoring.ACTION_END, str(pairing_id))
    world.settle()
    thanks = [m for m in group_dms(world) if "is over" in text_of(m)]
    assert len(thanks) == 1 and "<@U_NICO> ended it" in text_of(thanks[0])
    assert [p[:2] + p[3:] for p in pairings(world)] == [("U_NICO", "U_ANA", "ended"), ("U_NICO", "U_KENJI", "active")]


def all_pairings(world):
    with world.runtime.store.session() as s:
        return list(s.scalars(select(MentorPairing).order_by(MentorPairing.id)))


def test_check_in_after_two_weeks_exactly_once_and_its_buttons(world):
    offer_and_match(world)
    assert tick(world, timedelta(days=13))["check_ins"] == 0
    since = world.fake.mark()
    assert tick(world, timedelta(days=1))["check_ins"] == 1
    assert tick(world)["check_ins"] == 0  # the second run (or another replica) finds it claimed
    [check_in] = group_dms(world, since)
    assert "Are you still meeting?" in text_of(check_in)

    world.click("U_ANA", mentoring.ACTION_STILL_MEETING, channel=check_in["channel"])
    world.click("U_ANA", mentoring.ACTION_STILL_MEETING, channel=check_in["channel"])  # a double click
    world.settle()
    assert sum("still meeting on `#postgres`" in text_of(m) for m in group_dms(world, since)) == 1

    world.click("U_MAYA", mentoring.ACTION_PAUSE, channel=check_in["channel"])
    world.settle()
    assert any("paused this mentoring" in text_of(m) for m in group_dms(world, since))
    assert pairings(world)[0][3] == "paused"

    world.click("U_ANA", mentoring.ACTION_END, channel=check_in["channel"])  # "We're done", clicked twice
    world.click("U_ANA", mentoring.ACTION_END, channel=check_in["channel"])
    world.settle()
    assert sum("is over (<@U_ANA> ended it)" in text_of(m) for m in group_dms(world, since)) == 1
    assert pairings(world)[0][3] == "ended"


def test_the_pairing_ends_after_its_period_with_a_thank_you(world):
    offer_and_match(world)
    assert tick(world, mentoring.MENTORING_PERIOD - timedelta(minutes=1))["ended"] == 0
    since = world.fake.mark()
    assert tick(world, timedelta(minutes=1))["ended"] == 1
    assert tick(world)["ended"] == 0
    [thanks] = [m for m in group_dms(world, since) if "is over" in text_of(m)]
    assert "its time is up" in text_of(thanks) and "Thank you <@U_MAYA>" in text_of(thanks)
    assert pairings(world)[0][3] == "ended"


def test_app_home_lists_mentors_and_mentees_with_end_and_pause(world):
    offer_and_match(world)
    world.open_home("U_MAYA")
    world.settle()
    home = json.dumps(world.fake.home_view("U_MAYA")["blocks"])
    assert "You mentor <@U_ANA> on `#postgres`" in home
    assert "You offer to mentor on `#postgres`, up to 2 at once" in home
    world.open_home("U_ANA")
    world.settle()
    view = world.fake.home_view("U_ANA")
    assert "Your mentor is <@U_MAYA>" in json.dumps(view["blocks"])
    assert len(view["blocks"]) <= 100

    since = world.fake.mark()
    world.click("U_ANA", mentoring.ACTION_PAUSE, view_id=view["id"])
    world.settle()
    assert pairings(world)[0][3] == "paused"
    assert "Resume" in json.dumps(world.fake.home_view("U_ANA")["blocks"])  # the tab was published again
    world.click("U_ANA", mentoring.ACTION_RESUME, view_id=world.fake.home_view("U_ANA")["id"])
    world.settle()
    assert pairings(world)[0][3] == "active"
    world.click("U_ANA", mentoring.ACTION_END, view_id=world.fake.home_view("U_ANA")["id"])
    world.settle()
    assert pairings(world)[0][3] == "ended"
    notes = [text_of(m) for m in group_dms(world, since)]
    assert [("paused" in n, "resumed" in n, "is over" in n) for n in notes] == [
        (True, False, False),
        (False, True, False),
        (False, False, True),
    ]
    world.open_home("U_MAYA")
    world.settle()
    assert "You mentor" not in json.dumps(world.fake.home_view("U_MAYA")["blocks"])  # ended: not listed


def test_digest_gaps_stats_export_and_forget_user(world):
    offer_and_match(world)  # Maya mentors Ana on #postgres
    world.ask("U_ANA", "How do I read an EXPLAIN plan? #postgres", GENERAL)
    world.command("U_NICO", "/ask", "mentor #rust", GENERAL)  # nobody offers #rust: Nico waits
    world.settle()
    now = world.clock.now()
    with world.runtime.store.session() as s:
        data = load_digest_data(s, "T0001", GENERAL, now - timedelta(days=7), now + timedelta(minutes=1))
        report = stats.build_report(s, "T0001", now - timedelta(days=30), now + timedelta(minutes=1), now)
    digest = json.dumps(build_digest(data, tz=ZoneInfo("UTC")).blocks, ensure_ascii=False)
    assert "Mentoring on these topics*: <@U_MAYA> (`#postgres`). Thank you for mentoring!" in digest
    assert "`#rust` — 1 person waiting for a mentor" in digest and "`/teach mentor #rust`" in digest
    assert report.mentor_demand == [("rust", 1)]
    assert "Waiting for a mentor: #rust (1)" in stats_render.render_table([report])  # make stats
    assert "mentor_demand,rust,waiting,1" in stats_render.render_csv([report])
    world.add_user("U_BOSS", name="boss", is_admin=True)  # an admin's App Home lists it among knowledge gaps
    world.open_home("U_BOSS")
    world.settle()
    assert "*Waiting for a mentor*: `#rust` (1)" in json.dumps(world.fake.home_view("U_BOSS")["blocks"])
    with world.runtime.store.session() as s:  # another channel's digest does not show #general's demand
        elsewhere = load_digest_data(s, "T0001", "C_OTHER", now - timedelta(days=7), now + timedelta(minutes=1))
    assert elsewhere.mentor_demand == ()

    with world.runtime.store.session() as s:
        exported = {kind.name: list(export.export_rows(s, "T0001", kind)) for kind in export.KINDS}
    assert [(r["user_id"], r["tag"]) for r in exported["mentor_offers"]] == [
        ("U_KENJI", "postgres"),
        ("U_MAYA", "postgres"),
    ]
    assert sorted(r["mentee_id"] for r in exported["mentor_requests"]) == ["U_ANA", "U_NICO"]
    assert [(r["mentor_id"], r["mentee_id"]) for r in exported["mentor_pairings"]] == [("U_MAYA", "U_ANA")]

    since = world.fake.mark()
    with world.runtime.store.session() as s:
        report = export.forget_user(s, "T0001", "U_MAYA")
    assert report.changed["mentoring pairings (deleted)"] == 1 and report.changed["mentoring offers (deleted)"] == 1
    with world.runtime.store.session() as s:
        assert export.find_user_id(s, "T0001", "U_MAYA") == []
        assert [r.mentee_id for r in s.scalars(select(MentorRequest).order_by(MentorRequest.id))] == ["U_ANA", "U_NICO"]
    assert world.fake.calls_to("chat.postMessage", since=since) == []  # Ana is told nothing


def test_what_was_acked_is_owed_after_a_crash(world):
    """A request stored but never matched, and a pairing made but never introduced (the process stopped after
    the ack): the tick finishes both, once."""
    from bot.config import Settings
    from models.mentoring import MentorOffer
    from models.workspace import ensure_workspace

    now = world.clock.now()
    with world.runtime.store.session() as s:  # what the ack steps stored before the process stopped
        ensure_workspace(s, "T0001", now)
        s.add(MentorOffer(team_id="T0001", user_id="U_MAYA", tag="postgres", capacity=2, offered_at=now))
        s.add(MentorOffer(team_id="T0001", user_id="U_MAYA", tag="rust", capacity=2, offered_at=now))
        s.add_all(
            [
                MentorRequest(
                    team_id="T0001",
                    mentee_id=mentee,
                    tag=tag,
                    request_key=f"cmd:{mentee}",
                    channel_id=GENERAL,
                    created_at=now,
                )
                for mentee, tag in (("U_ANA", "postgres"), ("U_NICO", "rust"))
            ]
        )
    with world.runtime.store.session() as s:
        ana = s.scalars(select(MentorRequest.id).where(MentorRequest.mentee_id == "U_ANA")).one()
        assert mentoring.match_request(s, Settings(), ana, now) is not None  # matched, not introduced
    assert group_dms(world) == []
    assert tick(world) == {"ended": 0, "check_ins": 0, "introduced": 1, "matched": 1}
    assert tick(world, timedelta(minutes=10)) == {"ended": 0, "check_ins": 0, "introduced": 0, "matched": 0}
    intros = sorted(text_of(m).split(":")[0] for m in group_dms(world))
    assert intros == ["<@U_ANA>, meet <@U_MAYA>", "<@U_NICO>, meet <@U_MAYA>"]


def test_the_playground_shows_a_pairing(tmp_path):
    from bot.clock import FrozenClock
    from bot.config import Settings
    from bot.playground.server import Playground
    from tests.slack.fixtures import START

    playground = Playground(Settings(), clock=FrozenClock(START), scheduler=False).start()
    try:
        playground.world.settle()
        state = playground.state("U_NEWCOMER")
        [group] = [c for c in state["channels"] if c["name"].startswith("mpdm-")]
        intro = playground.state("U_NEWCOMER", group["id"])["view"]["messages"][0]
        assert "<@U_NEWCOMER>, meet <@U_BERLIN>: your mentor on `#kubernetes`" in json.dumps(intro["blocks"])
        assert "5 hours of working time a week in common" in json.dumps(intro["blocks"])  # Berlin and Tokyo
    finally:
        playground.stop()


def test_replicas_ticking_at_once_send_one_check_in_and_one_thank_you(world):
    import threading

    from bot.workspaces import WorkspaceClients

    offer_and_match(world)
    client = world.runtime.bolt_app.client
    services = world.runtime.services

    def all_at_once(job) -> list:
        start, results = threading.Barrier(4), []

        def replica() -> None:
            start.wait()
            results.append(job(WorkspaceClients(client), services, world.clock.now()))

        threads = [threading.Thread(target=replica) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return results

    world.clock.advance(mentoring.CHECK_IN_AFTER)
    since = world.fake.mark()
    assert sorted(all_at_once(mentoring.send_check_ins)) == [0, 0, 0, 1]
    assert sum("Are you still meeting?" in text_of(m) for m in group_dms(world, since)) == 1
    world.clock.advance(mentoring.MENTORING_PERIOD)
    assert sorted(len(ended) for ended in all_at_once(mentoring.end_due)) == [0, 0, 0, 1]
    assert sum("is over" in text_of(m) for m in group_dms(world, since)) == 1
