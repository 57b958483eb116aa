"""Shared by the digest scenarios: the channels and moments they use, rows added straight to the store, and
readers for what the bot posted."""

from __future__ import annotations

from datetime import UTC, datetime

from prometheus_client import REGISTRY
from sqlalchemy import select

from bot.digest import posting, schedule
from bot.playground.emulator.fake_api import TEAM_ID
from models.digest import DigestRun, DigestSubscription
from models.question import STATUS_OPEN, STATUS_RESOLVED, VOTE_ACCEPT, VOTE_HELPFUL, Answer, Question, QuestionTag, Vote
from models.workspace import ensure_workspace
from tests import route_helpers
from tests.slack.fixtures import START

GENERAL = "C_GENERAL"
SECRET = "G_SECRET"
PEOPLE = ("U_ASKER", "U_EXPERT", "U_FAN")
# START is Monday 2026-11-23 10:00 UTC (11:00 in Berlin): this Monday's 09:00 has passed, so a channel
# subscribing now gets its first digest next Monday, 09:00 in Berlin.
NEXT_MONDAY_9_BERLIN = datetime(2026, 11, 30, 8, 0, tzinfo=UTC)
SLOT = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)  # Monday 09:00 UTC, the default slot in a UTC workspace


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
    return route_helpers.plain(call.args)


def digest_runs_metric(status: str) -> float:
    return REGISTRY.get_sample_value("peerlearn_digest_runs_total", {"status": status}) or 0.0


def tick_at(runtime, moment: datetime):
    runtime.clock.set(moment)
    return posting.tick(runtime.services, runtime.bolt_app.client, moment)


def runs(store) -> dict[str, DigestRun]:
    with store.session() as s:
        return {run.channel_id: run for run in s.scalars(select(DigestRun))}


def subscription(store, channel: str) -> DigestSubscription | None:
    with store.session() as s:
        return s.get(DigestSubscription, (TEAM_ID, channel))


def subscribe_directly(store, channel: str, at: datetime, **change) -> None:
    with store.session() as s:
        ensure_workspace(s, TEAM_ID, at)
        schedule.subscribe(
            s, team_id=TEAM_ID, channel_id=channel, user_id="U_ADMIN", now=at, change=schedule.ScheduleChange(**change)
        )


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
