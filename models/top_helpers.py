"""Top helpers: who helped most in a period, in a workspace or one channel. The one query and the one rule behind
the weekly digest, the App Home and bot/stats.py.

The rule: votes cast in [since, until) on live (not deleted) answers, by someone other than the answer's author;
answers the asker accepted count first, then answers someone voted helpful. A person whose data was erased
(forget-user: FORGOTTEN_USER_ID) is not listed.

A question the knowledge base answered ("This answers it": an earlier question or lesson) adds no answer and no
vote, so it credits nobody here: the earlier answer was counted when it was accepted or voted for, and counting
it again would rank the same help twice. The digest names whose earlier answer or lesson it was on the
question's own line instead (bot/digest/content.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from models.expert import FORGOTTEN_USER_ID
from models.question import VOTE_ACCEPT, VOTE_HELPFUL, Answer, Vote


@dataclass(frozen=True)
class Helper:
    user_id: str
    accepted: int  # answers the asker accepted
    helpful: int  # answers someone else voted helpful


def top_helpers(
    session: Session,
    team_id: str,
    since: datetime,
    until: datetime,
    *,
    limit: int,
    channel_id: str | None = None,
) -> tuple[list[Helper], int]:
    """The first `limit` helpers, best first, and how many there are in all."""
    accepted = func.count(func.distinct(case((Vote.kind == VOTE_ACCEPT, Vote.answer_id))))
    helpful = func.count(func.distinct(case((Vote.kind == VOTE_HELPFUL, Vote.answer_id))))
    query = (
        select(Vote.author_id, accepted, helpful, func.count().over())
        .join(Answer, Answer.id == Vote.answer_id)
        .where(
            Vote.team_id == team_id,
            Vote.created_at >= since,
            Vote.created_at < until,
            Vote.voter_id != Vote.author_id,  # never stored, and never counted either
            Vote.author_id != FORGOTTEN_USER_ID,
            Answer.deleted_at.is_(None),
        )
        .group_by(Vote.author_id)
        .order_by(accepted.desc(), helpful.desc(), Vote.author_id)
        .limit(limit)
    )
    if channel_id is not None:
        query = query.where(Vote.channel_id == channel_id)
    rows = session.execute(query).all()
    return [Helper(user, int(a), int(h)) for user, a, h, _ in rows], int(rows[0][3]) if rows else 0
