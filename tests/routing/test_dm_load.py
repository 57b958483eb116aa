"""Recent DM load (bot.routing.evidence.load_dm_load) on random DMs, SQLite and PostgreSQL: its index-friendly
windows (sent since x, or not sent and due since x) count what `coalesce(sent_at, send_at) >= x` counted."""

from __future__ import annotations

import random
from collections import defaultdict
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from bot.playground.emulator.fake_api import TEAM_ID
from bot.routing.evidence import RECENT_LOAD, load_dm_load
from models.expert import ROUTE_CANCELLED, ROUTE_DECLINED, ROUTE_SCHEDULED, ROUTE_SENT, ROUTE_TAKEN, RouteRequest
from models.question import Question
from models.session import Store
from models.workspace import ensure_workspace
from tests.route_helpers import GENERAL

NOW = datetime(2026, 12, 8, 12, 0, tzinfo=UTC)
EXPERTS = [f"U_E{i}" for i in range(6)]


def seed_dms(store: Store, rng: random.Random) -> None:
    """Questions, each DMed to some experts over the last 20 days: sent (sent_at set) or never sent
    (scheduled, in the future or overdue; taken or declined before it went out; cancelled), in another
    workspace too."""
    with store.session() as s:
        for team in (TEAM_ID, "T_OTHER"):
            ensure_workspace(s, team, NOW)
            for n in range(40):
                asked = NOW - timedelta(hours=rng.uniform(0, 20 * 24))
                question = Question(
                    team_id=team,
                    channel_id=GENERAL,
                    asker_id="U_ASKER",
                    text=f"question {n}",
                    status="open",
                    message_ts=f"1700000000.{n:06d}",
                    request_key=f"{team}:{n}",
                    created_at=asked,
                )
                s.add(question)
                s.flush()
                for expert in rng.sample(EXPERTS, rng.randint(1, 4)):
                    send_at = asked + timedelta(hours=rng.choice([0, 0, 3, 14]))
                    if rng.random() < 0.6:
                        status, sent_at = rng.choice([ROUTE_SENT, ROUTE_TAKEN, ROUTE_DECLINED]), send_at
                    else:
                        status = rng.choice([ROUTE_SCHEDULED, ROUTE_TAKEN, ROUTE_DECLINED, ROUTE_CANCELLED])
                        sent_at = None
                    s.add(
                        RouteRequest(
                            team_id=team,
                            question_id=question.id,
                            expert_id=expert,
                            status=status,
                            send_at=send_at,
                            sent_at=sent_at,
                        )
                    )


def reference(store: Store, user_ids: list[str]):
    """The load as it was computed with coalesce (every DM of the candidates read)."""
    with store.session() as s:
        mine = (RouteRequest.team_id == TEAM_ID) & RouteRequest.expert_id.in_(user_ids)
        sent = defaultdict(list)
        for user_id, sent_at in s.execute(
            select(RouteRequest.expert_id, RouteRequest.sent_at).where(
                mine, RouteRequest.sent_at >= NOW - timedelta(hours=25)
            )
        ):
            sent[user_id].append(sent_at)
        pending = dict(
            s.execute(
                select(RouteRequest.expert_id, func.count())
                .where(mine, RouteRequest.status == ROUTE_SCHEDULED)
                .group_by(RouteRequest.expert_id)
            ).all()
        )
        when = func.coalesce(RouteRequest.sent_at, RouteRequest.send_at)
        recent = {
            user_id: (count, last)
            for user_id, count, last in s.execute(
                select(RouteRequest.expert_id, func.count(), func.max(when))
                .where(mine, when >= NOW - RECENT_LOAD)
                .group_by(RouteRequest.expert_id)
            )
        }
    return dict(sent), pending, recent


def naive(moment):
    return None if moment is None else moment.replace(tzinfo=None)


@pytest.mark.parametrize("seed", range(3))
def test_the_recent_load_counts_what_coalesce_counted(database_url, seed):
    store = Store.from_url(database_url)
    try:
        seed_dms(store, random.Random(seed))
        people = [*EXPERTS[:5], "U_NOBODY"]
        with store.session() as s:
            load = load_dm_load(s, TEAM_ID, people, NOW)
        sent, pending, recent = reference(store, people)
        assert {u: sorted(map(naive, v)) for u, v in load.sent_recently.items()} == {
            u: sorted(map(naive, v)) for u, v in sent.items()
        }
        assert load.pending == pending and sum(pending.values()) > 0
        assert {u: (n, naive(last)) for u, (n, last) in load.recent.items()} == {
            u: (n, naive(last)) for u, (n, last) in recent.items()
        }
        assert len(recent) == 5 and "U_E5" not in load.recent  # only the people asked about
        with store.session() as s:  # DMs not sent yet count by when they are due: both windows are tested
            unsent_recent = s.scalar(
                select(func.count()).where(
                    RouteRequest.team_id == TEAM_ID,
                    RouteRequest.expert_id.in_(people),
                    RouteRequest.sent_at.is_(None),
                    RouteRequest.send_at >= NOW - RECENT_LOAD,
                )
            )
        assert unsent_recent
    finally:
        store.dispose()
