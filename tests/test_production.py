"""Running PeerLearn in production: health, metrics, structured logs, signatures, duplicates, two replicas.

Every test drives the real HTTP endpoint (waitress) with signed requests; Slack is the emulator.
"""

from __future__ import annotations

import io
import json
import logging
import threading
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator

import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import select
from sqlalchemy import text as sql

from bot import metrics
from bot.playground.emulator.fake_api import BOT_TOKEN, TEAM_ID
from bot.playground.emulator.signing import SlackSender
from bot.runtime import metrics as runtime_metrics
from bot.runtime.logging import LIBRARY_FLOORS, RedactingFilter, build_handler, redact, summarize
from models.question import Answer, Question, Vote
from models.workspace import ProcessedEvent
from tests.production_harness import GENERAL, Replica, populate, running_peerlearn
from tests.slack.fixtures import SIGNING_SECRET


@pytest.fixture
def bot(fake_slack, database_url, slack_clock) -> Iterator[Replica]:
    with running_peerlearn(fake_slack, database_url, slack_clock) as replica:
        populate(replica.world)
        yield replica


def get(url: str) -> tuple[int, str, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as reply:
            return reply.status, reply.headers.get("Content-Type", ""), reply.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.headers.get("Content-Type", ""), error.read().decode()


def metric(replica: Replica, name: str, **labels: str) -> float:
    """The sum of a metric's samples matching `labels`, as GET /metrics shows it."""
    status, _, text = get(replica.url + "/metrics")
    assert status == 200
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items())
    )


def reply_event(replica: Replica, user: str, question_ts: str, text: str) -> dict:
    """A thread reply as Slack delivers it (the message also exists in the fake Slack)."""
    message = replica.world.fake.add_message(GENERAL, user, text, thread_ts=question_ts)
    return {
        "type": "message",
        "user": user,
        "text": text,
        "ts": message["ts"],
        "thread_ts": question_ts,
        "parent_user_id": message.get("parent_user_id"),
        "channel": GENERAL,
        "event_ts": message["ts"],
        "channel_type": "channel",
    }


def reaction_event(user: str, reaction: str, ts: str, item_user: str) -> dict:
    return {
        "type": "reaction_added",
        "user": user,
        "reaction": reaction,
        "item_user": item_user,
        "item": {"type": "message", "channel": GENERAL, "ts": ts},
        "event_ts": ts,
    }


# --- /healthz and /metrics -----------------------------------------------------------------------------


def test_healthz_says_the_database_is_reachable_and_migrated(bot):
    status, content_type, body = get(bot.url + "/healthz")
    assert (status, content_type) == (200, "application/json")
    assert json.loads(body) == {"status": "ok", "database": "ok", "migrations": "at head"}


def test_healthz_fails_when_the_database_loses_a_revision_it_was_migrated_to(bot):
    with bot.runtime.store.engine.begin() as conn:  # as if the schema were restored from an older backup
        conn.execute(sql("DELETE FROM alembic_version WHERE version_num = '0007'"))
    status, _, body = get(bot.url + "/healthz")
    assert status == 503
    assert json.loads(body) == {"status": "starting", "database": "ok", "pending_migrations": ["0007"]}
    with bot.runtime.store.engine.begin() as conn:
        conn.execute(sql("INSERT INTO alembic_version (version_num) VALUES ('0007')"))
    assert get(bot.url + "/healthz")[0] == 200


def test_metrics_count_requests_acks_slack_calls_and_errors_by_method(bot):
    world = bot.world
    before = {
        "commands": metric(bot, "peerlearn_requests_total", kind="command", status="200"),
        "acks": metric(bot, "peerlearn_acks_total", kind="event"),
        "ack_latencies": metric(bot, "peerlearn_ack_seconds_count", kind="event"),
        "posts": metric(bot, "peerlearn_slack_api_calls_total", method="chat.postMessage", outcome="ok"),
        "update_errors": metric(bot, "peerlearn_slack_api_errors_total", method="chat.update", error="is_archived"),
        # Unauthenticated, a request is not read to know its kind (bot/acks.Screening).
        "unsigned": metric(bot, "peerlearn_requests_total", kind="other", status="401"),
    }
    question = world.ask("U_ASKER", "How do I vacuum a big table? #postgres", GENERAL)
    world.fake.fail("chat.update", "is_archived")  # the redraw after the accept fails once
    answer_ts = world.reply("U_EXPERT", question, "VACUUM (VERBOSE) it at night.")
    world.react("U_ASKER", "white_check_mark", GENERAL, answer_ts)
    world.fake.wait_for("chat.update", where=lambda call: not call.ok)
    world.settle()
    unsigned = SlackSender(world.sender.url, SIGNING_SECRET).event({"type": "event_callback"}, signing="forged")
    assert unsigned.status == 401

    assert metric(bot, "peerlearn_requests_total", kind="command", status="200") == before["commands"] + 1
    assert metric(bot, "peerlearn_acks_total", kind="event") == before["acks"] + 2
    assert metric(bot, "peerlearn_ack_seconds_count", kind="event") == before["ack_latencies"] + 2
    posts = metric(bot, "peerlearn_slack_api_calls_total", method="chat.postMessage", outcome="ok")
    assert posts == before["posts"] + 1  # made by a lazy listener on Bolt's per-request client
    errors = metric(bot, "peerlearn_slack_api_errors_total", method="chat.update", error="is_archived")
    assert errors == before["update_errors"] + 1
    assert metric(bot, "peerlearn_requests_total", kind="other", status="401") == before["unsigned"] + 1


def test_metrics_show_queue_depth_and_the_digest_counter_others_increment(bot):
    before = metric(bot, "peerlearn_digest_runs_total", status="posted")
    metrics.DIGEST_RUNS.labels("posted").inc()
    assert metric(bot, "peerlearn_digest_runs_total", status="posted") == before + 1
    status, content_type, text = get(bot.url + "/metrics")
    assert status == 200 and content_type.startswith("text/plain")
    names = {family.name for family in text_string_to_metric_families(text)}
    assert {"peerlearn_listener_queue_depth", "peerlearn_listener_tasks_running"} <= names
    assert metric(bot, "peerlearn_listener_queue_depth") >= 0


def test_queue_depth_counts_lazy_work_waiting_for_a_thread():
    executor = runtime_metrics.ObservedExecutor(max_workers=1)
    release = threading.Event()
    try:
        running = executor.submit(release.wait)
        waiting = [executor.submit(lambda: None) for _ in range(3)]
        assert executor.queued + executor.running == 4
        assert executor.running <= 1
        release.set()
        for future in [running, *waiting]:
            future.result(timeout=5)
        assert (executor.queued, executor.running) == (0, 0)
    finally:
        release.set()
        executor.shutdown()


# --- structured logs -----------------------------------------------------------------------------------


@pytest.fixture
def log_lines() -> Iterator[io.StringIO]:
    """Everything logged (DEBUG and up, slack_sdk's request dumps included: the libraries' own levels, which
    configure_logging sets, are lifted) as the JSON lines we emit."""
    stream = io.StringIO()
    handler = build_handler("json", stream)
    root = logging.getLogger()
    previous = root.level
    floors = {name: logging.getLogger(name).level for name in LIBRARY_FLOORS}
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    for name in floors:
        logging.getLogger(name).setLevel(logging.NOTSET)
    try:
        yield stream
    finally:
        root.removeHandler(handler)
        root.setLevel(previous)
        for name, level in floors.items():
            logging.getLogger(name).setLevel(level)


def parsed(stream: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]


def test_log_lines_carry_team_channel_and_event_id_even_from_lazy_listeners(bot, log_lines):
    world = bot.world
    question = world.ask("U_ASKER", "How do I vacuum a big table? #postgres", GENERAL)
    world.settle()
    posted = [line for line in parsed(log_lines) if "posted in" in line["msg"]]
    assert posted, "publishing the question (a lazy listener) logs a line"
    assert posted[0]["team"] == TEAM_ID and posted[0]["channel"] == GENERAL and posted[0]["kind"] == "command"

    answer = reply_event(bot, "U_EXPERT", question.ts, "VACUUM (VERBOSE) it at night.")
    first = world.send_event(answer)
    world.send_event(answer, event_id=first.meta["event_id"], retry_num=1)
    world.settle()
    redelivery = [line for line in parsed(log_lines) if "already handled" in line["msg"]]
    assert len(redelivery) == 1
    assert redelivery[0]["event_id"] == first.meta["event_id"]
    assert (redelivery[0]["team"], redelivery[0]["channel"], redelivery[0]["event_type"]) == (
        TEAM_ID,
        GENERAL,
        "message",
    )


def test_logs_never_hold_a_token_a_secret_or_a_whole_payload(bot, log_lines):
    world = bot.world
    question = world.ask("U_ASKER", "How do I vacuum a big table? #postgres", GENERAL)
    answer_ts = world.reply("U_EXPERT", question, "VACUUM (VERBOSE) it at night.")
    world.react("U_ASKER", "white_check_mark", GENERAL, answer_ts)
    world.settle()
    logging.getLogger("peerlearn.test").info("payload %s", {"event": {"type": "message"}, "token": BOT_TOKEN})
    output = log_lines.getvalue()
    assert len(parsed(log_lines)) > 20  # DEBUG: Bolt and slack_sdk talked a lot
    assert BOT_TOKEN not in output and SIGNING_SECRET not in output
    assert "authorizations" not in output and "event_context" not in output  # no Events API envelope
    assert all(len(line["msg"]) <= 2100 for line in parsed(log_lines))


def test_the_redaction_filter_masks_tokens_and_summarizes_payloads():
    def render(msg: str, *args: object) -> str:
        record = logging.LogRecord("x", logging.INFO, __file__, 1, msg, args, None)
        RedactingFilter().filter(record)
        return record.getMessage()

    assert render("token is %s", "xoxb-1234-5678-abcdefABCDEF") == "token is [redacted-token]"
    assert "xoxe.xoxp-1-Mi0y" not in render("rotated xoxe.xoxp-1-Mi0yLTM and xapp-1-A1-22-aa")
    assert render("headers {'Authorization': 'Bearer xyz.123'}") == "headers {'Authorization': 'Bearer [redacted]'}"
    assert render("client_secret=s3cr3t&code=1") == "client_secret=[redacted]&code=1"
    assert render('{"signing_secret": "abc"}') == '{"signing_secret": "[redacted]"}'
    envelope = {
        "type": "event_callback",
        "event_id": "Ev1",
        "team_id": "T1",
        "event": {"type": "message", "text": "a person's words"},
    }
    assert render("got %s", envelope) == (
        "got <4-key payload: type=event_callback event_id=Ev1 team_id=T1 event.type=message>"
    )
    assert render("blocks %s", [{"type": "section"}] * 3) == "blocks <list of 3 items>"
    assert render("%(who)s said %(what)s", {"who": "U1", "what": {"text": "hi"}}) == "U1 said <1-key payload>"
    assert len(render("x" * 10_000)) < 2100
    assert summarize("plain") == "plain"
    assert redact("error: token_revoked") == "error: token_revoked"


# --- signatures ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("signing", ["missing", "forged", "stale"])
def test_badly_signed_requests_get_401_and_change_nothing(bot, signing):
    world = bot.world
    question = world.ask("U_ASKER", "How do I vacuum a big table? #postgres", GENERAL)
    world.settle()
    since = world.fake.mark()
    sender = world.sender

    command = {"command": "/ask", "text": "Forged question? #x", "team_id": TEAM_ID, "channel_id": GENERAL}
    command |= {"user_id": "U_FAN", "trigger_id": "1.2.forged", "response_url": world.fake.url + "/response/x"}
    assert sender.slash_command(command, signing=signing).status == 401
    envelope = {
        "type": "event_callback",
        "team_id": TEAM_ID,
        "event_id": "EvForged",
        "event": reply_event(bot, "U_EXPERT", question.ts, "a forged answer"),
    }
    assert sender.event(envelope, signing=signing).status == 401
    action = {"type": "block_actions", "team": {"id": TEAM_ID}, "user": {"id": "U_FAN"}, "actions": []}
    assert sender.interactivity(action, signing=signing).status == 401

    world.settle()
    assert (bot.count(Question), bot.count(Answer), bot.count(ProcessedEvent)) == (1, 0, 0)
    assert world.fake.mark() == since, "a badly signed request made the bot call Slack"


# --- duplicates ------------------------------------------------------------------------------------------


def test_redelivered_events_and_repeated_reactions_count_once(bot):
    world = bot.world
    question = world.ask("U_ASKER", "How do I vacuum a big table? #postgres", GENERAL)
    answer = reply_event(bot, "U_EXPERT", question.ts, "VACUUM (VERBOSE) it at night.")
    first = world.send_event(answer)
    for retry in (1, 2, 3):
        assert world.send_event(answer, event_id=first.meta["event_id"], retry_num=retry).status == 200
    helpful = reaction_event("U_FAN", "+1", answer["ts"], "U_EXPERT")
    vote = world.send_event(helpful)
    world.send_event(helpful, event_id=vote.meta["event_id"], retry_num=1, retry_reason="http_error")
    world.send_event(helpful)  # the same reaction reported again under a new event id
    accept = reaction_event("U_ASKER", "white_check_mark", answer["ts"], "U_EXPERT")
    world.send_event(accept)
    world.send_event(accept)
    world.settle()

    assert bot.count(Answer) == 1
    with bot.runtime.store.session() as session:
        votes = sorted((v.voter_id, v.kind) for v in session.scalars(select(Vote)))
        assert votes == [("U_ASKER", "accept"), ("U_FAN", "helpful")]
        assert session.scalars(select(Question)).one().status == "resolved"
    redrawn = world.fake.calls_to("chat.update", channel=GENERAL, ts=question.ts)  # not the routing DMs
    assert len(redrawn) == 1, "the resolved question is redrawn once"


# --- several replicas on one database -------------------------------------------------------------------


def deliver_to_all(replicas: list[Replica], event: dict, event_id: str) -> list[int]:
    """The same delivery reaching every replica at once, as Slack's retries behind a load balancer can."""
    start = threading.Barrier(len(replicas))
    statuses: list[int] = [0] * len(replicas)

    def send(index: int) -> None:
        start.wait(timeout=10)
        retry = index or None  # the copies after the first look like Slack's retries
        statuses[index] = replicas[index].world.send_event(event, event_id=event_id, retry_num=retry).status

    threads = [threading.Thread(target=send, args=(i,)) for i in range(len(replicas))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    return statuses


def test_two_replicas_on_one_database_store_each_delivery_once(fake_slack, database_url, slack_clock):
    with (
        running_peerlearn(fake_slack, database_url, slack_clock) as one,
        running_peerlearn(fake_slack, database_url, slack_clock) as two,
    ):
        populate(one.world)
        question = one.world.ask("U_ASKER", "How do I vacuum a big table? #postgres", GENERAL)
        one.world.settle()
        replicas = [one, two]
        answers = []
        for number in range(8):
            answer = reply_event(one, "U_EXPERT", question.ts, f"Answer number {number}")
            assert deliver_to_all(replicas, answer, f"EvAnswer{number}") == [200, 200]
            answers.append(answer["ts"])
        for number, answer_ts in enumerate(answers):
            voter = ("U_FAN", "U_BYSTANDER")[number % 2]
            event = reaction_event(voter, "+1", answer_ts, "U_EXPERT")
            assert deliver_to_all(replicas, event, f"EvVote{number}") == [200, 200]
        accept = reaction_event("U_ASKER", "white_check_mark", answers[0], "U_EXPERT")
        assert deliver_to_all(replicas, accept, "EvAccept") == [200, 200]
        one.world.settle()
        two.world.settle()

        assert one.count(Answer) == 8
        assert one.count(Vote) == 9
        assert one.count(ProcessedEvent) == 17
        with one.runtime.store.session() as session:
            assert session.scalars(select(Question)).one().status == "resolved"
        # The question's message (routing DMs sent about it are redrawn too, each once: issue 18 item 8).
        redrawn = fake_slack.calls_to("chat.update", channel=GENERAL, ts=question.ts)
        assert len(redrawn) == 1, "only the replica that stored the accept redraws"


def test_a_replica_serves_another_replicas_questions(fake_slack, database_url, slack_clock):
    with (
        running_peerlearn(fake_slack, database_url, slack_clock) as one,
        running_peerlearn(fake_slack, database_url, slack_clock) as two,
    ):
        populate(one.world)
        question = one.world.ask("U_ASKER", "Where is the runbook? #ops", GENERAL)
        answer = reply_event(one, "U_EXPERT", question.ts, "In the wiki, under Ops.")
        assert two.world.send_event(answer, event_id=f"Ev{uuid.uuid4().hex[:10]}").status == 200
        two.world.send_event(reaction_event("U_ASKER", "white_check_mark", answer["ts"], "U_EXPERT"))
        two.world.settle()
        with one.runtime.store.session() as session:
            assert session.scalars(select(Question)).one().status == "resolved"
