"""The question-and-answer loop: what a question, a thread reply, an edit or a reaction changes.

Functions take an open session (the caller's transaction) and return what the Slack side must do
next; they never call Slack themselves.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import Enum

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session, lazyload

from bot.config import Settings
from bot.routing.upkeep import refresh_people
from bot.text import ParsedText
from models.base import insert_if_new, insert_once
from models.lesson import Lesson
from models.question import (
    RESOLUTION_SIMILAR,
    STATUS_OPEN,
    STATUS_POSTING,
    STATUS_RESOLVED,
    STATUS_UNPOSTED,
    VOTE_ACCEPT,
    VOTE_HELPFUL,
    Answer,
    EarlyReply,
    Question,
    QuestionTag,
    Vote,
    fetch_answer,
    fetch_question_by_request,
    fetch_question_by_ts,
    forget_early_replies,
    latest_accept_vote,
    thread_or_posting,
)
from models.stats_rollup import refresh_question_stats
from models.tag_stats import count_question


def create_question(
    session: Session,
    *,
    team_id: str,
    channel_id: str,
    asker_id: str,
    parsed: ParsedText,
    request_key: str,
    now: datetime,
) -> tuple[Question, bool]:
    """Store the question before anything is posted; a repeated request (its unique request key) returns
    the first one."""
    question = Question(
        team_id=team_id,
        channel_id=channel_id,
        asker_id=asker_id,
        text=parsed.text,
        request_key=request_key,
        status=STATUS_POSTING,
        created_at=now,
        tags=[QuestionTag(tag=tag, team_id=team_id, position=i) for i, tag in enumerate(parsed.tags)],
    )
    if not insert_once(session, question):
        again = fetch_question_by_request(session, team_id, request_key)
        assert again is not None
        return again, False
    count_question(session, team_id, parsed.tags)  # routing's tag statistics, in step (models/tag_stats.py)
    return question, True


def record_posted(session: Session, question_id: int, *, message_ts: str, channel_private: bool) -> Question | None:
    """Slack confirmed the post: the question is open at `message_ts`, and the replies that reached its thread
    before this (early replies) are its answers. None when it was not owed any more (recorded already)."""
    recorded = session.execute(
        update(Question)
        .where(Question.id == question_id, Question.status == STATUS_POSTING)
        .values(status=STATUS_OPEN, message_ts=message_ts, channel_private=channel_private, post_claimed_until=None)
        .execution_options(synchronize_session=False)
    )
    if recorded.rowcount != 1:  # type: ignore[attr-defined]
        return None
    # Its tags stay as they are: not loaded.
    question = session.get(Question, question_id, options=[lazyload(Question.tags)], populate_existing=True)
    assert question is not None
    in_channel = (EarlyReply.team_id == question.team_id, EarlyReply.channel_id == question.channel_id)
    early = session.scalars(select(EarlyReply).where(*in_channel)).all()  # almost always none
    for reply in early:
        if reply.thread_ts == message_ts and reply.user_id != question.asker_id:
            insert_if_new(
                session,
                Answer,
                team_id=question.team_id,
                question_id=question.id,
                channel_id=question.channel_id,
                ts=reply.ts,
                user_id=reply.user_id,
                text=reply.text,
                created_at=reply.created_at,
            )
    refresh_people(session, question.team_id, [r.user_id for r in early if r.thread_ts == message_ts])
    if early:
        in_thread = EarlyReply.thread_ts == message_ts
        session.execute(delete(EarlyReply).where(*in_channel, in_thread).execution_options(synchronize_session=False))
        forget_early_replies(session, question.team_id, question.channel_id)
    refresh_question_stats(session, question.id)
    return question


def record_unposted(session: Session, question_id: int) -> bool:
    """Slack refused the post (the asker is told why, once: by whoever this returned True to)."""
    question = session.get(Question, question_id)
    refused = session.execute(
        update(Question)
        .where(Question.id == question_id, Question.status == STATUS_POSTING)
        .values(status=STATUS_UNPOSTED, post_claimed_until=None)
        .execution_options(synchronize_session=False)
    )
    if refused.rowcount != 1 or question is None:  # type: ignore[attr-defined]
        return False
    forget_early_replies(session, question.team_id, question.channel_id)
    return True


# --- thread replies ------------------------------------------------------------------------------


def record_reply(
    session: Session,
    *,
    team_id: str,
    channel_id: str,
    thread_ts: str,
    ts: str,
    user_id: str,
    text: str,
    now: datetime,
) -> Answer | None:
    """A reply in a question's thread by someone other than the asker is an answer. A reply that came before
    its question's ts was stored (while a question of the channel is being posted) is kept as an early reply
    until it is (record_posted)."""
    question = fetch_question_by_ts(session, team_id, channel_id, thread_ts)
    if question is None:
        question, posting = thread_or_posting(session, team_id, channel_id, thread_ts)
        if question is None:
            if posting:
                insert_if_new(
                    session,
                    EarlyReply,
                    team_id=team_id,
                    channel_id=channel_id,
                    ts=ts,
                    thread_ts=thread_ts,
                    user_id=user_id,
                    text=text,
                    created_at=now,
                )
            return None
    if user_id == question.asker_id:
        return None
    answer = Answer(
        team_id=team_id,
        question_id=question.id,
        channel_id=channel_id,
        ts=ts,
        user_id=user_id,
        text=text,
        created_at=now,
    )
    if not insert_once(session, answer):
        return None
    refresh_question_stats(session, question.id)
    refresh_people(session, team_id, [user_id])
    return answer


def edit_reply(session: Session, *, team_id: str, channel_id: str, ts: str, text: str, now: datetime) -> bool:
    answer = fetch_answer(session, team_id, channel_id, ts)
    if answer is None:
        early = session.get(EarlyReply, (team_id, channel_id, ts))
        if early is not None:
            early.text = text
        return False
    if answer.deleted_at is not None or answer.text == text:
        return False
    answer.text = text
    answer.edited_at = now
    return True


def delete_reply(session: Session, *, team_id: str, channel_id: str, ts: str, now: datetime) -> int | None:
    """Forget a deleted answer; returns the question id when its channel message must be redrawn."""
    answer = fetch_answer(session, team_id, channel_id, ts)
    if answer is None:
        session.execute(
            delete(EarlyReply).where(
                EarlyReply.team_id == team_id, EarlyReply.channel_id == channel_id, EarlyReply.ts == ts
            )
        )
        return None
    if answer.deleted_at is not None:
        return None
    answer.deleted_at = now
    question = session.get(Question, answer.question_id)
    if question is None or question.accepted_answer_id != answer.id:
        refresh_question_stats(session, answer.question_id)  # it may have been the first answer
        refresh_people(session, team_id, [answer.user_id])
        return None
    session.flush()
    _reaccept_or_reopen(session, question)
    refresh_question_stats(session, question.id)
    refresh_people(session, team_id, [answer.user_id, _accepted_author(session, question)])
    return question.id


# --- reactions -------------------------------------------------------------------------------


class ReactionEffect(Enum):
    IGNORED = "ignored"
    VOTED = "voted"
    UNVOTED = "unvoted"
    ACCEPTED = "accepted"
    UNACCEPTED = "unaccepted"


@dataclass(frozen=True)
class ReactionOutcome:
    effect: ReactionEffect
    question_id: int | None = None

    @property
    def redraw_question(self) -> bool:
        return self.effect in (ReactionEffect.ACCEPTED, ReactionEffect.UNACCEPTED)


IGNORED = ReactionOutcome(ReactionEffect.IGNORED)


def base_reaction(name: str) -> str:
    """`+1::skin-tone-3` counts as `+1`."""
    return name.split("::", 1)[0].lower()


def apply_reaction(
    session: Session,
    settings: Settings,
    *,
    team_id: str,
    channel_id: str,
    ts: str,
    user_id: str,
    reaction: str,
    added: bool,
    now: datetime,
    bot_user_id: str | None = None,
) -> ReactionOutcome:
    """Turn a reaction on an answer or lesson into an accept or a helpful vote (or undo one)."""
    reaction = base_reaction(reaction)
    if user_id == bot_user_id:
        return IGNORED
    is_accept = reaction == settings.accept_reaction
    is_helpful = reaction in settings.helpful_reactions
    if not (is_accept or is_helpful):
        return IGNORED

    answer = fetch_answer(session, team_id, channel_id, ts)
    lesson = None if answer else _fetch_lesson(session, team_id, channel_id, ts)
    if (answer is None or answer.deleted_at is not None) and lesson is None:
        return IGNORED
    author_id = answer.user_id if answer else lesson.author_id  # type: ignore[union-attr]
    if user_id == author_id:
        return IGNORED  # self-votes do not count

    question = session.get(Question, answer.question_id) if answer else None
    if question is not None and is_accept and user_id == question.asker_id:
        kind = VOTE_ACCEPT
    elif is_helpful:
        kind = VOTE_HELPFUL
    else:
        return IGNORED

    if added:
        vote = Vote(
            team_id=team_id,
            channel_id=channel_id,
            message_ts=ts,
            voter_id=user_id,
            reaction=reaction,
            kind=kind,
            author_id=author_id,
            answer_id=answer.id if answer else None,
            lesson_id=lesson.id if lesson else None,
            created_at=now,
        )
        if not insert_once(session, vote):
            return IGNORED
        if kind == VOTE_ACCEPT and question is not None and answer is not None:
            moved_from = _accepted_author(session, question)
            _accept(question, answer, now)
            refresh_question_stats(session, question.id)
            refresh_people(session, team_id, [author_id, moved_from])
            return ReactionOutcome(ReactionEffect.ACCEPTED, question.id)
        refresh_people(session, team_id, [author_id] if answer else [])
        return ReactionOutcome(ReactionEffect.VOTED, question.id if question else None)

    existing = session.scalar(
        select(Vote).where(
            Vote.team_id == team_id,
            Vote.channel_id == channel_id,
            Vote.message_ts == ts,
            Vote.voter_id == user_id,
            Vote.reaction == reaction,
        )
    )
    if existing is None:
        return IGNORED
    session.delete(existing)
    session.flush()
    was_the_accepted_answer = question is not None and answer is not None and question.accepted_answer_id == answer.id
    if existing.kind == VOTE_ACCEPT and was_the_accepted_answer and question is not None:
        _reaccept_or_reopen(session, question)
        refresh_question_stats(session, question.id)
        refresh_people(session, team_id, [author_id, _accepted_author(session, question)])
        return ReactionOutcome(ReactionEffect.UNACCEPTED, question.id)
    refresh_people(session, team_id, [author_id] if answer else [])
    return ReactionOutcome(ReactionEffect.UNVOTED, question.id if question else None)


def _accept(question: Question, answer: Answer, now: datetime) -> None:
    question.accepted_answer_id = answer.id
    question.status = STATUS_RESOLVED
    question.resolved_at = question.resolved_at or now
    question.next_escalation_at = None


def _accepted_author(session: Session, question: Question) -> str | None:
    """Who wrote the question's accepted answer (None: none): whose routing evidence an accept changes."""
    if question.accepted_answer_id is None:
        return None
    return session.scalar(select(Answer.user_id).where(Answer.id == question.accepted_answer_id))


def _reaccept_or_reopen(session: Session, question: Question) -> None:
    """After an accepted answer lost its ✅ (or was deleted), fall back to the asker's previous accept, else to
    the earlier question or lesson they said answers it ("This answers it"); with neither, it is open again."""
    previous = latest_accept_vote(session, question, question.asker_id)
    if previous is not None and previous.answer_id is not None:
        question.accepted_answer_id = previous.answer_id
        return
    question.accepted_answer_id = None
    if question.resolution == RESOLUTION_SIMILAR:
        return  # still resolved: answered by the earlier item again (Question.answered_by_earlier)
    question.status = STATUS_OPEN
    question.resolved_at = None


def _fetch_lesson(session: Session, team_id: str, channel_id: str, ts: str) -> Lesson | None:
    return session.scalar(
        select(Lesson).where(Lesson.team_id == team_id, Lesson.channel_id == channel_id, Lesson.message_ts == ts)
    )


@dataclass(frozen=True)
class QuestionView:
    """What the channel message of a question shows, loaded in one go (how it was resolved: route.load_resolved)."""

    channel_id: str
    message_ts: str
    asker_id: str
    text: str
    tags: list[str]


def question_view(session: Session, question_id: int) -> QuestionView | None:
    question = session.get(Question, question_id)
    if question is None or question.message_ts is None:
        return None
    return QuestionView(
        channel_id=question.channel_id,
        message_ts=question.message_ts,
        asker_id=question.asker_id,
        text=question.text,
        tags=question.tag_names,
    )
