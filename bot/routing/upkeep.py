"""Keeping routing's evidence (person_evidence, tag_evidence) equal to what the answers say.

Whatever changes a person's evidence (an answer recorded or deleted, an accept given, moved or taken back, a
helpful vote added or removed, forget-user) calls `refresh_people` for the people it touched, in the same
transaction as the change. A refresh recomputes those people's rows from all their live answers with the
one fold (bot.routing.standing.standing_of): it costs that person's answers, it is idempotent (a redelivered
event changes nothing), and it is what `rebuild` (`python app.py rebuild-evidence`) computes, person by person.

Several replicas (PostgreSQL, READ COMMITTED): the person's person_evidence row is created if missing (INSERT
… ON CONFLICT DO NOTHING) and locked (SELECT … FOR UPDATE) before their answers are read, so two refreshes
of one person take turns and the second reads what the first committed. SQLite serializes writers.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Collection, Iterable, Sequence
from typing import Any

from sqlalchemy import ColumnElement, Integer, and_, any_, bindparam, delete, func, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from bot.routing.standing import DEFAULT_EVIDENCE, RANK_EPOCH, AnswerRecord, PackedTerms, Standing, standing_of
from models.evidence import PersonEvidence, TagEvidence
from models.expert import FORGOTTEN_USER_ID
from models.question import VOTE_HELPFUL, Answer, Question, QuestionTag, Vote

TEXT_RECORDS = DEFAULT_EVIDENCE.text_records  # each person's latest answers read with their texts (the profile)
REBUILD_BATCH = 500  # people per batch (and per commit) of a rebuild
LOOKUP_CHUNK = 5_000  # ids per IN list (SQLite allows 32,766 bound parameters)


def refresh_people(session: Session, team_id: str, user_ids: Iterable[str | None]) -> None:
    """Recompute these people's evidence from their live answers (in the caller's transaction): the sums from
    all of them, the text profile from the TEXT_RECORDS latest, read with their texts."""
    people = sorted({u for u in user_ids if u and u != FORGOTTEN_USER_ID})  # one lock order for everyone
    if not people:
        return
    session.flush()  # the change being made is part of what is read
    lock_people(session, team_id, people)
    records = answer_records(session, _live(team_id, Answer.user_id.in_(people)), texts_of_latest=TEXT_RECORDS)
    _write(session, team_id, {user_id: standing_of(records.get(user_id, ())) for user_id in people})


def forget_person(session: Session, team_id: str, user_id: str) -> int:
    """Forget-user: drop the person's rows (their answers now belong to nobody). Returns the rows dropped.
    Those whose evidence their deletions change (the authors of answers they voted on) are refreshed by the
    caller with `refresh_people`."""
    dropped = 0
    for model in (TagEvidence, PersonEvidence):
        result = session.execute(
            delete(model)
            .where(model.team_id == team_id, model.user_id == user_id)
            .execution_options(synchronize_session=False)
        )
        dropped += int(result.rowcount or 0)  # type: ignore[attr-defined]
    return dropped


def helpful_voted_authors(session: Session, team_id: str, voter_id: str) -> set[str]:
    """Authors of the answers this person voted helpful: whose evidence their votes' deletion changes."""
    return set(
        session.scalars(
            select(Answer.user_id)
            .join(Vote, Vote.answer_id == Answer.id)
            .where(Vote.team_id == team_id, Vote.voter_id == voter_id, Vote.kind == VOTE_HELPFUL)
            .distinct()
        )
    )


def answerers_of(session: Session, team_id: str, asker_id: str) -> set[str]:
    """Authors of answers to this person's questions: their text profiles hold those questions' words."""
    return set(
        session.scalars(
            select(Answer.user_id)
            .join(Question, Question.id == Answer.question_id)
            .where(Question.team_id == team_id, Question.asker_id == asker_id)
            .distinct()
        )
    )


def profiles_naming(session: Session, team_id: str, user_id: str) -> set[str]:
    """People whose text profile holds this user's id as a word (a mention, <@U123>, is the word "u123")."""
    word = PackedTerms.entry_start(user_id.casefold())
    return set(
        session.scalars(
            select(PersonEvidence.user_id).where(
                PersonEvidence.team_id == team_id, PersonEvidence.text_profile.contains(word, autoescape=True)
            )
        )
    )


def rebuild(session: Session, team_id: str, progress: Callable[[int, int], None] | None = None) -> int:
    """Recompute every person's evidence in one workspace, in batches of REBUILD_BATCH people, committing after
    each batch (live upkeep waits for a batch, never for the whole rebuild; memory holds one batch's answers).
    `progress(done, total)` after each batch. Returns the number of people with evidence."""
    authors = sorted(
        set(session.scalars(select(Answer.user_id).where(_live(team_id)).distinct())) - {FORGOTTEN_USER_ID}
    )
    for start in range(0, len(authors), REBUILD_BATCH):
        refresh_people(session, team_id, authors[start : start + REBUILD_BATCH])
        session.commit()
        if progress is not None:
            progress(min(start + REBUILD_BATCH, len(authors)), len(authors))
    # People who have rows but no live answer any more (rows written before a change that skipped upkeep).
    known = set(authors)
    stale = sorted(set(session.scalars(select(PersonEvidence.user_id).where(PersonEvidence.team_id == team_id))))
    stale = [user_id for user_id in stale if user_id not in known]
    for start in range(0, len(stale), REBUILD_BATCH):
        refresh_people(session, team_id, stale[start : start + REBUILD_BATCH])
    for model in (TagEvidence, PersonEvidence):  # and the forgotten placeholder never has any
        session.execute(delete(model).where(model.team_id == team_id, model.user_id == FORGOTTEN_USER_ID))
    session.commit()
    return len(authors)


def fill_missing(session: Session) -> int:
    """Compute the evidence of everyone, in every workspace, who has live answers but no person_evidence row:
    after the upgrade to migration 0010 (whose tables start empty) that is everyone; after a fill that was
    stopped half way, the rest. Batches of REBUILD_BATCH people, each committed. Returns the people filled."""
    missing = (
        select(Answer.team_id, Answer.user_id)
        .where(
            Answer.deleted_at.is_(None),
            Answer.user_id != FORGOTTEN_USER_ID,
            ~select(PersonEvidence.user_id)
            .where(PersonEvidence.team_id == Answer.team_id, PersonEvidence.user_id == Answer.user_id)
            .exists(),
        )
        .distinct()
    )
    by_team: dict[str, list[str]] = defaultdict(list)
    for team_id, user_id in session.execute(missing):
        by_team[team_id].append(user_id)
    for team_id, people in sorted(by_team.items()):
        people.sort()
        for start in range(0, len(people), REBUILD_BATCH):
            refresh_people(session, team_id, people[start : start + REBUILD_BATCH])
            session.commit()
    return sum(len(people) for people in by_team.values())


# --- reading answers as the ranker sees them ----------------------------------------------------------------


def _live(team_id: str, *conditions: ColumnElement[bool]) -> ColumnElement[bool]:
    return and_(Answer.team_id == team_id, Answer.deleted_at.is_(None), *conditions)


def answer_records(
    session: Session, where: ColumnElement[bool], *, texts_of_latest: int = 0
) -> dict[str, list[AnswerRecord]]:
    """The answers matching `where` as AnswerRecords (their question's tags, accepted or not, helpful votes),
    per author, oldest first; each author's `texts_of_latest` most recent with their question's text and their
    own (what the text profile reads), the others without.

    The answers, then their questions and the questions' tags by id (in chunks of LOOKUP_CHUNK ids): primary-key
    lookups, where a join let PostgreSQL hash all of the workspace's questions (80 ms at 100k questions)."""
    votes = (
        select(func.count(Vote.id))
        .where(Vote.answer_id == Answer.id, Vote.kind == VOTE_HELPFUL)
        .correlate(Answer)
        .scalar_subquery()
    )
    rows = session.execute(
        select(Answer.id, Answer.user_id, Answer.question_id, Answer.created_at, votes)
        .where(where)
        .order_by(Answer.created_at, Answer.id)
    ).all()
    question_ids = sorted({row[2] for row in rows})
    accepted_ids: set[int] = set()
    tags_of: dict[int, set[str]] = defaultdict(set)
    for start in range(0, len(question_ids), LOOKUP_CHUNK):
        chunk = question_ids[start : start + LOOKUP_CHUNK]
        accepted_ids.update(
            accepted_id
            for accepted_id in session.scalars(
                select(Question.accepted_answer_id).where(ids_in(session, Question.id, chunk))
            )
            if accepted_id is not None
        )
        for question_id, tag in session.execute(
            select(QuestionTag.question_id, QuestionTag.tag).where(ids_in(session, QuestionTag.question_id, chunk))
        ):
            tags_of[question_id].add(tag)
    by_author: dict[str, list[Any]] = defaultdict(list)
    for row in rows:
        by_author[row[1]].append(row)
    latest = [row for theirs in by_author.values() for row in theirs[-texts_of_latest:]] if texts_of_latest > 0 else []
    answer_texts, question_texts = _texts(session, latest)
    records: dict[str, list[AnswerRecord]] = defaultdict(list)
    for row in rows:
        answer_id, user_id, question_id, created_at, helpful = row
        records[user_id].append(
            AnswerRecord(
                tags=frozenset(tags_of.get(question_id, ())),
                answered_at=created_at,
                accepted=answer_id in accepted_ids,
                helpful_votes=int(helpful or 0),
                question_text=question_texts.get(question_id, "") if answer_id in answer_texts else "",
                answer_text=answer_texts.get(answer_id, ""),
            )
        )
    return records


def _texts(session: Session, rows: Sequence[Any]) -> tuple[dict[int, str], dict[int, str]]:
    """The texts of these answers (id, user, question id, …) and of their questions, by id."""
    answer_texts: dict[int, str] = {}
    question_texts: dict[int, str] = {}
    answer_ids = sorted(row[0] for row in rows)
    question_ids = sorted({row[2] for row in rows})
    for start in range(0, len(answer_ids), LOOKUP_CHUNK):
        chunk = answer_ids[start : start + LOOKUP_CHUNK]
        for answer_id, text in session.execute(select(Answer.id, Answer.text).where(ids_in(session, Answer.id, chunk))):
            answer_texts[answer_id] = text or ""
    for start in range(0, len(question_ids), LOOKUP_CHUNK):
        chunk = question_ids[start : start + LOOKUP_CHUNK]
        for question_id, text in session.execute(
            select(Question.id, Question.text).where(ids_in(session, Question.id, chunk))
        ):
            question_texts[question_id] = text or ""
    return answer_texts, question_texts


def ids_in(session: Session, column: Any, ids: Sequence[int]) -> ColumnElement[bool]:
    """`column IN ids`. On PostgreSQL as `= ANY(array)`: one parameter, where an IN list of thousands of ids
    spent more time in rendering and parsing its placeholders than the database spent answering."""
    if session.get_bind().dialect.name == "postgresql":
        return column == any_(bindparam(None, list(ids), type_=postgresql.ARRAY(Integer)))
    return column.in_(ids)  # SQLite: LOOKUP_CHUNK ids at most per call


# --- writing ------------------------------------------------------------------------------------------------


def lock_people(session: Session, team_id: str, people: Sequence[str]) -> None:
    """Make sure each person's row exists, then lock the rows in user order (see the module docstring)."""
    rows = [{"team_id": team_id, "user_id": user_id, "as_of": RANK_EPOCH} for user_id in people]
    dialect = session.get_bind().dialect.name
    upsert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    session.execute(upsert(PersonEvidence).values(rows).on_conflict_do_nothing())
    session.execute(
        select(PersonEvidence.user_id)
        .where(PersonEvidence.team_id == team_id, PersonEvidence.user_id.in_(people))
        .order_by(PersonEvidence.user_id)
        .with_for_update()
    ).all()


def _write(session: Session, team_id: str, standings: dict[str, Standing]) -> None:
    people = sorted(standings)
    session.execute(
        delete(TagEvidence)
        .where(TagEvidence.team_id == team_id, TagEvidence.user_id.in_(people))
        .execution_options(synchronize_session=False)
    )
    gone = [user_id for user_id in people if standings[user_id].answers == 0]
    if gone:
        session.execute(
            delete(PersonEvidence)
            .where(PersonEvidence.team_id == team_id, PersonEvidence.user_id.in_(gone))
            .execution_options(synchronize_session=False)
        )
    tag_rows = []
    for user_id in people:
        standing = standings[user_id]
        if standing.answers == 0:
            continue
        session.execute(
            update(PersonEvidence)
            .where(PersonEvidence.team_id == team_id, PersonEvidence.user_id == user_id)
            .values(person_row(standing))
            .execution_options(synchronize_session=False)
        )
        tag_rows += [{"team_id": team_id, "user_id": user_id, **row} for row in tag_rows_of(standing)]
    if tag_rows:
        session.execute(insert(TagEvidence), tag_rows)


def person_row(standing: Standing) -> dict[str, Any]:
    """A standing's person_evidence columns (its keys aside)."""
    return {
        "answers": standing.answers,
        "helpful_votes": standing.helpful_votes,
        "accepted": standing.accepted,
        "last_answered_at": standing.last_answered_at,
        "activity": standing.activity,
        "engagement": standing.engagement,
        "accepted_recent": standing.accepted_recent,
        "as_of": standing.as_of,
        "text_profile": standing.profile.to_json() if standing.profile is not None else None,
    }


def tag_rows_of(standing: Standing, tags: Collection[str] | None = None) -> list[dict[str, Any]]:
    """A standing's tag_evidence rows (their keys but team and user), every tag or only `tags`."""
    return [
        {
            "tag": tag,
            "answers": on_tag.answers,
            "accepted": on_tag.accepted,
            "helpful_votes": on_tag.helpful_votes,
            "expertise": on_tag.expertise,
            "as_of": standing.as_of,
            "rank_key": standing.rank_key(tag),
        }
        for tag, on_tag in sorted(standing.tags.items())
        if tags is None or tag in tags
    ]
