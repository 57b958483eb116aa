"""Lunch-and-learn sessions: announce, sign up, remind, ask the host for notes (saved as a lesson), cancel, and
propose sessions where knowledge gaps are (an admin's "Invite" DMs the tag's top experts).

The command stores the session and the announcements it owes before the ack (`create_session`); the listener
after the ack posts them (`post_announcements`), and so does the scheduler's `tick` for any a stopped process
left owed. Where: the channel the command ran in, and the public channels where questions with the tag were
asked; a private channel is only ever named to its own members (the host who ran the command there).

Exactly once, across replicas and restarts: every send is claimed in the database by a conditional UPDATE
before it is made (an announcement owed -> posting; a reminder `reminded_at`, a cancellation DM
`told_cancelled_at` per person; the host's notes DM `notes_asked_at`; an invitation is a unique row inserted
first). A process killed between a claim and its Slack call loses that one message rather than sending it twice.
Clicks are idempotent: a person has one answer per session, and the counts are redrawn from the database.
"""

from __future__ import annotations

import logging
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, func, select, update
from sqlalchemy.orm import Session

from bot.experts import create_lesson
from bot.messages.blocks import Message
from bot.messages.sessions import (
    MAX_HOME_SESSIONS,
    MAX_LISTED,
    MAX_PROPOSALS,
    REMINDER_LEAD,
    Proposal,
    SessionShown,
    announcement,
    cancelled_dm,
    invitation,
    lesson_text,
    notes_request,
    reminder,
)
from bot.routing.delivery import dm
from bot.routing.evidence import load_evidence
from bot.routing.ranker import rank_experts
from bot.services import Services
from bot.session_time import Scheduled
from bot.slack_errors import SLACK_FAILURES, error_code, may_have_happened
from bot.stats import Gap
from bot.workspaces import TokenLookup, WorkspaceClient, WorkspaceClients
from models.base import insert_once
from models.expert import FORGOTTEN_USER_ID
from models.lesson import Lesson
from models.question import Question, QuestionTag
from models.sessions import (
    POST_FAILED,
    POST_OWED,
    POST_POSTED,
    POST_POSTING,
    SESSION_CANCELLED,
    SESSION_SCHEDULED,
    LearningSession,
    SessionInvite,
    SessionPost,
    SessionSignup,
    tags_with_sessions,
)
from models.workspace import Workspace

logger = logging.getLogger("peerlearn.sessions")

MAX_CHANNELS = 5  # public channels announced in, besides the command's: those that asked most about the tag
MAX_DUE = 200  # sends per kind per tick; the next tick takes the rest
MAX_INVITED = 3  # top experts DMed by "Invite"
REDRAW_ROUNDS = 3  # redraws of the announcements while clicks keep changing the counts

# What a click changed (handlers/sessions.py says it to the person).
SIGNED_UP, NOT_GOING, UNCHANGED, GONE = "signed_up", "not_going", "unchanged", "gone"


def _updated(session: Session, statement: Any) -> int:
    """Rows a conditional UPDATE changed: 1 when this caller won the claim."""
    return int(session.execute(statement).rowcount or 0)  # type: ignore[attr-defined]


# --- reading -------------------------------------------------------------------------------------------------


def _counts(session: Session, session_ids: Collection[int]) -> dict[int, tuple[int, int]]:
    rows = session.execute(
        select(SessionSignup.session_id, SessionSignup.going, func.count())
        .where(SessionSignup.session_id.in_(list(session_ids)))
        .group_by(SessionSignup.session_id, SessionSignup.going)
    )
    counts: dict[int, list[int]] = {}
    for session_id, going, n in rows:
        counts.setdefault(session_id, [0, 0])[0 if going else 1] += int(n)
    return {key: (value[0], value[1]) for key, value in counts.items()}


def shown(session: Session, row: LearningSession) -> SessionShown:
    going, not_going = _counts(session, [row.id]).get(row.id, (0, 0))
    return _shown(row, going, not_going)


def _shown(row: LearningSession, going: int = 0, not_going: int = 0) -> SessionShown:
    return SessionShown(
        id=row.id,
        host_id=row.host_id,
        tag=row.tag,
        title=row.title,
        starts_at=row.starts_at,
        minutes=row.minutes,
        cancelled=row.status == SESSION_CANCELLED,
        going=going,
        not_going=not_going,
    )


def upcoming(
    session: Session, team_id: str, viewer_id: str, now: datetime, limit: int = MAX_LISTED
) -> list[SessionShown]:
    """Scheduled sessions not over yet that the viewer may see: announced in a public channel, or theirs to host
    or signed up for (a session announced only in a private channel stays among those who saw it there)."""
    theirs = select(SessionSignup.session_id).where(
        SessionSignup.team_id == team_id, SessionSignup.user_id == viewer_id
    )
    rows = list(
        session.scalars(
            select(LearningSession)
            .where(
                LearningSession.team_id == team_id,
                LearningSession.status == SESSION_SCHEDULED,
                LearningSession.starts_at > now - timedelta(hours=8),
                (LearningSession.public.is_(True))
                | (LearningSession.host_id == viewer_id)
                | LearningSession.id.in_(theirs),
            )
            .order_by(LearningSession.starts_at, LearningSession.id)
            .limit(limit * 2)
        )
    )
    rows = [row for row in rows if row.starts_at + timedelta(minutes=row.minutes) > now][:limit]
    counts = _counts(session, [row.id for row in rows])
    return [_shown(row, *counts.get(row.id, (0, 0))) for row in rows]


def home_upcoming(session: Session, team_id: str, viewer_id: str, now: datetime) -> list[SessionShown]:
    return upcoming(session, team_id, viewer_id, now, MAX_HOME_SESSIONS)


def proposals(session: Session, team_id: str, gaps: list[Gap]) -> list[Proposal]:
    """The knowledge gaps (bot.stats.find_gaps: the admin's analytics) nobody has run a session on."""
    covered = tags_with_sessions(session, team_id, [gap.tag for gap in gaps])
    return [Proposal(gap.tag, gap.reason) for gap in gaps if gap.tag not in covered][:MAX_PROPOSALS]


# --- announcing --------------------------------------------------------------------------------------------


def channels_that_asked(session: Session, team_id: str, tag: str, limit: int = MAX_CHANNELS) -> list[str]:
    """Public channels where questions with the tag were asked, most questions first."""
    count = func.count()
    rows = session.execute(
        select(Question.channel_id, count)
        .join(QuestionTag, QuestionTag.question_id == Question.id)
        .where(
            Question.team_id == team_id,
            QuestionTag.team_id == team_id,
            QuestionTag.tag == tag,
            Question.channel_private.is_(False),
        )
        .group_by(Question.channel_id)
        .order_by(count.desc(), Question.channel_id)
        .limit(limit)
    )
    return [channel_id for channel_id, _ in rows]


def create_session(
    session: Session,
    *,
    team_id: str,
    host_id: str,
    tag: str,
    scheduled: Scheduled,
    channel_id: str,
    request_key: str,
    now: datetime,
) -> LearningSession:
    """Store the session and the announcements it owes; a repeated command returns the first one."""
    public_channels = channels_that_asked(session, team_id, tag)
    row = LearningSession(
        team_id=team_id,
        host_id=host_id,
        tag=tag,
        title=scheduled.title,
        channel_id=channel_id,
        public=bool(public_channels),
        starts_at=scheduled.starts_at,
        minutes=int(scheduled.length / timedelta(minutes=1)),
        status=SESSION_SCHEDULED,
        request_key=request_key,
        created_at=now,
    )
    if not insert_once(session, row):
        return session.scalars(
            select(LearningSession).where(
                LearningSession.team_id == team_id, LearningSession.request_key == request_key
            )
        ).one()
    # A command from a direct message has no channel to announce in: the public ones that asked do.
    where = ([] if channel_id.startswith("D") else [channel_id]) + [c for c in public_channels if c != channel_id]
    for channel in where:
        session.add(SessionPost(session_id=row.id, channel_id=channel, team_id=team_id, status=POST_OWED))
    session.flush()
    return row


def session_by_request(session: Session, team_id: str, request_key: str) -> LearningSession | None:
    return session.scalars(
        select(LearningSession).where(LearningSession.team_id == team_id, LearningSession.request_key == request_key)
    ).one_or_none()


def post_announcements(slack: WorkspaceClient, services: Services, session_id: int) -> list[str]:
    """Post the session's owed announcements, each claimed first; returns the channels it is posted in."""
    with services.store.session() as session:
        owed = list(
            session.scalars(
                select(SessionPost.channel_id).where(
                    SessionPost.session_id == session_id, SessionPost.status == POST_OWED
                )
            )
        )
    for channel_id in owed:
        with services.store.session() as session:
            claimed = _updated(
                session,
                update(SessionPost)
                .where(
                    SessionPost.session_id == session_id,
                    SessionPost.channel_id == channel_id,
                    SessionPost.status == POST_OWED,
                )
                .values(status=POST_POSTING),
            )
            row = session.get(LearningSession, session_id)
            message = announcement(shown(session, row)) if row is not None else None
        if not claimed or message is None:
            continue
        _post_one(slack, services, session_id, channel_id, message)
    with services.store.session() as session:
        return list(
            session.scalars(
                select(SessionPost.channel_id).where(
                    SessionPost.session_id == session_id, SessionPost.status == POST_POSTED
                )
            )
        )


def _post_one(slack: WorkspaceClient, services: Services, session_id: int, channel_id: str, message: Message) -> None:
    try:
        info = slack.client.conversations_info(channel=channel_id, **slack.auth)["channel"]
        private = bool(info.get("is_private") or info.get("is_im") or info.get("is_mpim"))
        posted = slack.client.chat_postMessage(
            channel=channel_id, unfurl_links=False, **message.as_kwargs(), **slack.auth
        )
    except SLACK_FAILURES as exc:
        # No answer: it may be posted; leave it claimed rather than post twice. A refusal: not tried again.
        status = POST_POSTING if may_have_happened(exc) else POST_FAILED
        logger.warning("session %s not announced in %s: %s", session_id, channel_id, error_code(exc))
        with services.store.session() as session:
            _updated(
                session,
                update(SessionPost)
                .where(SessionPost.session_id == session_id, SessionPost.channel_id == channel_id)
                .values(status=status),
            )
        return
    with services.store.session() as session:
        _updated(
            session,
            update(SessionPost)
            .where(SessionPost.session_id == session_id, SessionPost.channel_id == channel_id)
            .values(status=POST_POSTED, message_ts=str(posted["ts"])),
        )
        if not private:
            session.execute(update(LearningSession).where(LearningSession.id == session_id).values(public=True))


def redraw_announcements(slack: WorkspaceClient, services: Services, session_id: int) -> None:
    """Bring every posted announcement in line with the database (counts, cancelled).

    Two clicks at once redraw concurrently, and the one that read the older counts may update last; so after
    updating, the counts are read again and, if they changed meanwhile, drawn again (the last writer checks)."""
    drawn = None
    for _ in range(REDRAW_ROUNDS):
        with services.store.session() as session:
            row = session.get(LearningSession, session_id)
            if row is None:
                return
            message = announcement(shown(session, row))
            posts = session.execute(
                select(SessionPost.channel_id, SessionPost.message_ts).where(
                    SessionPost.session_id == session_id, SessionPost.status == POST_POSTED
                )
            ).all()
        if message == drawn:
            return
        _update_posts(slack, session_id, posts, message)
        drawn = message


def _update_posts(slack: WorkspaceClient, session_id: int, posts: Any, message: Message) -> None:
    for channel_id, ts in posts:
        if ts is None:
            continue
        try:
            slack.client.chat_update(channel=channel_id, ts=ts, **message.as_kwargs(), **slack.auth)
        except SLACK_FAILURES as exc:
            logger.warning("session %s: could not update %s in %s: %s", session_id, ts, channel_id, error_code(exc))


# --- answers, cancellation, notes ------------------------------------------------------------------------------


def record_answer(session: Session, session_id: int, user_id: str, going: bool, now: datetime) -> str:
    """The person's answer to a session: SIGNED_UP, NOT_GOING, UNCHANGED (a repeated click) or GONE (cancelled
    or started)."""
    row = session.get(LearningSession, session_id)
    if row is None or row.status != SESSION_SCHEDULED or row.starts_at <= now:
        return GONE
    signup = SessionSignup(session_id=session_id, user_id=user_id, team_id=row.team_id, going=going, changed_at=now)
    if not insert_once(session, signup):
        existing = session.get(SessionSignup, (session_id, user_id))
        assert existing is not None
        if existing.going == going:
            return UNCHANGED
        existing.going, existing.changed_at = going, now
    return SIGNED_UP if going else NOT_GOING


def cancel(session: Session, session_id: int, user_id: str, now: datetime) -> str:
    """ "cancelled", "not_host", "already" (or "gone": no such session)."""
    row = session.get(LearningSession, session_id)
    if row is None:
        return "gone"
    if row.host_id != user_id:
        return "not_host"
    done = _updated(
        session,
        update(LearningSession)
        .where(LearningSession.id == session_id, LearningSession.status == SESSION_SCHEDULED)
        .values(status=SESSION_CANCELLED, cancelled_at=now),
    )
    return "cancelled" if done else "already"


def notes_session(session: Session, session_id: int, user_id: str) -> SessionShown | None:
    """The session whose notes this person may share (they host it), else None."""
    row = session.get(LearningSession, session_id)
    if row is None or row.host_id != user_id:
        return None
    return shown(session, row)


def save_notes(session: Session, session_id: int, user_id: str, notes: str, now: datetime) -> str | None:
    """Store the host's notes as a lesson on the tag, credited to them (once); returns the lesson's request key,
    or None when the notes are saved already or the person is not the host."""
    row = session.get(LearningSession, session_id)
    if row is None or row.host_id != user_id or row.lesson_id is not None:
        return None
    key = f"session:{row.id}"
    channel_id = row.channel_id
    if channel_id.startswith("D"):  # announced from a direct message: the lesson goes where it was announced
        posted = session.scalars(
            select(SessionPost.channel_id).where(SessionPost.session_id == row.id, SessionPost.status == POST_POSTED)
        ).first()
        channel_id = posted or channel_id
    lesson = create_lesson(
        session,
        team_id=row.team_id,
        channel_id=channel_id,
        author_id=row.host_id,
        text=lesson_text(row.title, notes),
        tags=(row.tag,),
        request_key=key,
        now=now,
    )
    row.lesson_id = lesson.id
    return key


# --- the scheduler's tick -----------------------------------------------------------------------------------


@dataclass
class TickReport:
    announced: int = 0
    reminded: int = 0
    notes_asked: int = 0
    told_cancelled: int = 0


def tick(services: Services, client: object, now: datetime, token_for: TokenLookup | None = None) -> TickReport:
    """Announcements still owed, reminders due, notes requests for sessions over, cancellations to tell."""
    workspace_slack = WorkspaceClients(client, token_for)  # type: ignore[arg-type]
    report = TickReport()
    active = and_(Workspace.team_id == LearningSession.team_id, Workspace.active.is_(True))
    with services.store.session() as session:
        owed = session.execute(
            select(SessionPost.session_id, SessionPost.team_id)
            .join(LearningSession, LearningSession.id == SessionPost.session_id)
            .join(Workspace, active)
            .where(SessionPost.status == POST_OWED, LearningSession.status == SESSION_SCHEDULED)
            .distinct()
            .limit(MAX_DUE)
        ).all()
        due = session.execute(
            select(SessionSignup.session_id, SessionSignup.user_id, LearningSession.team_id)
            .join(LearningSession, LearningSession.id == SessionSignup.session_id)
            .join(Workspace, active)
            .where(
                SessionSignup.going.is_(True),
                SessionSignup.reminded_at.is_(None),
                LearningSession.status == SESSION_SCHEDULED,
                LearningSession.starts_at > now,
                LearningSession.starts_at <= now + REMINDER_LEAD,
            )
            .limit(MAX_DUE)
        ).all()
        started = session.execute(
            select(LearningSession.id, LearningSession.team_id, LearningSession.starts_at, LearningSession.minutes)
            .join(Workspace, active)
            .where(
                LearningSession.status == SESSION_SCHEDULED,
                LearningSession.notes_asked_at.is_(None),
                LearningSession.starts_at <= now,
            )
            .order_by(LearningSession.starts_at)
            .limit(MAX_DUE)
        ).all()
        cancelled = session.execute(
            select(SessionSignup.session_id, SessionSignup.user_id, LearningSession.team_id)
            .join(LearningSession, LearningSession.id == SessionSignup.session_id)
            .join(Workspace, active)
            .where(
                SessionSignup.going.is_(True),
                SessionSignup.told_cancelled_at.is_(None),
                LearningSession.status == SESSION_CANCELLED,
            )
            .limit(MAX_DUE)
        ).all()
    for session_id, team_id in owed:
        if post_announcements(workspace_slack(team_id), services, session_id):
            report.announced += 1
    for session_id, user_id, team_id in due:
        report.reminded += _send_once(workspace_slack(team_id), services, session_id, user_id, now, remind=True)
    for session_id, team_id, starts_at, minutes in started:
        if starts_at + timedelta(minutes=minutes) <= now:
            report.notes_asked += _ask_for_notes(workspace_slack(team_id), services, session_id, now)
    for session_id, user_id, team_id in cancelled:
        report.told_cancelled += _send_once(workspace_slack(team_id), services, session_id, user_id, now, remind=False)
    return report


def tell_cancelled(slack: WorkspaceClient, services: Services, session_id: int, now: datetime) -> int:
    """Right after the host cancels: DM everyone who signed up (each claimed; the tick finishes what is left)."""
    with services.store.session() as session:
        users = list(
            session.scalars(
                select(SessionSignup.user_id).where(
                    SessionSignup.session_id == session_id,
                    SessionSignup.going.is_(True),
                    SessionSignup.told_cancelled_at.is_(None),
                )
            )
        )
    return sum(_send_once(slack, services, session_id, user_id, now, remind=False) for user_id in users)


def _send_once(
    slack: WorkspaceClient, services: Services, session_id: int, user_id: str, now: datetime, *, remind: bool
) -> int:
    """The reminder (or the cancellation) DM to one person, claimed first: 1 when this call sent it."""
    column = SessionSignup.reminded_at if remind else SessionSignup.told_cancelled_at
    status = SESSION_SCHEDULED if remind else SESSION_CANCELLED
    with services.store.session() as session:
        row = session.get(LearningSession, session_id)
        if row is None or row.status != status or user_id == FORGOTTEN_USER_ID:
            return 0
        claimed = _updated(
            session,
            update(SessionSignup)
            .where(
                SessionSignup.session_id == session_id,
                SessionSignup.user_id == user_id,
                SessionSignup.going.is_(True),
                column.is_(None),
            )
            .values({column.key: now}),
        )
        message = (reminder if remind else cancelled_dm)(shown(session, row))
    if not claimed:
        return 0
    return 1 if dm(slack, user_id, message) else 0


def _ask_for_notes(slack: WorkspaceClient, services: Services, session_id: int, now: datetime) -> int:
    with services.store.session() as session:
        claimed = _updated(
            session,
            update(LearningSession)
            .where(
                LearningSession.id == session_id,
                LearningSession.status == SESSION_SCHEDULED,
                LearningSession.notes_asked_at.is_(None),
            )
            .values(notes_asked_at=now),
        )
        row = session.get(LearningSession, session_id)
        if not claimed or row is None or row.host_id == FORGOTTEN_USER_ID:
            return 0
        host_id, message = row.host_id, notes_request(shown(session, row))
    return 1 if dm(slack, host_id, message) else 0


# --- proposals: inviting the top experts ------------------------------------------------------------------


def top_experts(session: Session, team_id: str, tag: str, now: datetime, exclude: Collection[str] = ()) -> list[str]:
    """The people routing would ask first about the tag (bot.routing.ranker over bot.routing.evidence), best first:
    declared or shown expertise, not a bot, deactivated or paused."""
    excluded = {*exclude, FORGOTTEN_USER_ID}
    evidence = load_evidence(session, team_id, [tag], "", now, excluded)
    candidates = []
    for user_id in sorted(evidence.user_ids - excluded):
        person = evidence.people.get(user_id)
        candidates.append(
            evidence.candidate(
                user_id,
                is_bot=bool(person and person.is_bot),
                is_paused=bool(person and person.paused_until and person.paused_until > now),
                is_deactivated=bool(person and person.deleted),
            )
        )
    ranked = rank_experts([tag], candidates, now, exclude=excluded, tag_stats=evidence.tag_stats)
    return [expert.user_id for expert in ranked if expert.expertise > 0][:MAX_INVITED]


def invite(
    slack: WorkspaceClient, services: Services, team_id: str, tag: str, admin_id: str, reason: str, now: datetime
) -> tuple[list[str], list[str]]:
    """DM the tag's top experts, each once per tag (the invitation row is inserted first); returns (invited now,
    invited before)."""
    with services.store.session() as session:
        experts = top_experts(session, team_id, tag, now, exclude=[admin_id])
        fresh = [
            expert_id
            for expert_id in experts
            if insert_once(
                session,
                SessionInvite(team_id=team_id, tag=tag, expert_id=expert_id, invited_by=admin_id, created_at=now),
            )
        ]
    message = invitation(tag, admin_id, reason)
    invited = [expert_id for expert_id in fresh if dm(slack, expert_id, message)]
    return invited, [expert_id for expert_id in experts if expert_id not in fresh]


def lesson_of(session: Session, session_id: int) -> Lesson | None:
    row = session.get(LearningSession, session_id)
    return session.get(Lesson, row.lesson_id) if row is not None and row.lesson_id is not None else None


def lesson_tag(session: Session, session_id: int) -> str | None:
    row = session.get(LearningSession, session_id)
    return row.tag if row is not None else None
