"""Lunch-and-learn messages within Block Kit's limits, user text escaped once (bot/messages/sessions.py, pure)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from bot.messages.sessions import (
    MAX_PROPOSALS,
    Proposal,
    SessionShown,
    announcement,
    home_proposals,
    home_sessions,
    sessions_list,
    slack_date,
)

STARTS = datetime(2026, 12, 10, 11, 0, tzinfo=UTC)


def shown(title: str = "Rebasing without fear", **extra) -> SessionShown:
    return SessionShown(id=7, host_id="U_HANA", tag="git", title=title, starts_at=STARTS, minutes=60, **extra)


def texts(blocks) -> list[str]:
    found = []
    for block in blocks:
        for part in [block.get("text"), *(block.get("elements") or [])]:
            if isinstance(part, dict) and isinstance(part.get("text"), str):
                found.append(part["text"])
            elif isinstance(part, dict) and isinstance(part.get("text"), dict):
                found.append(part["text"]["text"])
    return found


def test_the_time_is_a_slack_date_token_with_a_utc_fallback():
    assert (
        slack_date(STARTS)
        == f"<!date^{int(STARTS.timestamp())}^{{date_short_pretty}} at {{time}}|Thu 10 Dec 2026 11:00 UTC>"
    )


def test_a_long_title_is_cut_with_an_ellipsis_and_stays_within_limits():
    message = announcement(shown("x" * 5000))
    assert len(message.blocks) <= 50 and all(len(t) <= 3000 for t in texts(message.blocks))
    assert "…" in json.dumps(message.blocks, ensure_ascii=False) and len(message.text) < 300


def test_a_title_never_pings_or_links():
    text = json.dumps(announcement(shown("Bring snacks <!here> @channel <https://evil|innocent>")).blocks)
    assert "<!here>" not in text and "<https://evil|innocent>" not in text and "@channel" not in text


def test_lists_stay_within_the_block_budgets():
    many = [shown(f"Talk {i}") for i in range(40)]
    assert len(sessions_list(many, "U_HANA").blocks) <= 50
    assert len(home_sessions(many)) == 1 and home_sessions([]) == []
    proposals = home_proposals([Proposal(f"tag{i}", "no available go-to person") for i in range(10)])
    assert len(proposals) == 1 + MAX_PROPOSALS  # the Home tab's budget for sessions: 1 + 4 <= 6 blocks
    assert home_proposals([]) == []


def test_a_cancelled_session_has_no_buttons():
    message = announcement(shown(cancelled=True))
    assert "actions" not in [block["type"] for block in message.blocks] and "Cancelled" in message.text
