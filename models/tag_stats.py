"""Tag statistics kept as questions are stored: how many of a workspace's questions carry a tag, a pair of
tags, or are there at all. Routing reads them for every /ask (bot/routing/evidence.py) in a few index lookups,
however long the workspace's history.

One row per (team_id, tag, other_tag): `questions`, the number of the workspace's questions carrying both,
where '' (ANY_TAG) stands for "any":
- ('', '')  every question of the workspace;
- (t, '')   the questions tagged t;
- (t, u)    the questions tagged t and u, kept in both directions, (t, u) and (u, t), so that "the tags most
            often asked with t" is one range of ix_tag_stats_related, read in order and stopped early.
Only counts above zero have a row. A question counts whatever its status, as its question_tags rows do.

Whoever inserts questions (and with them their question_tags) calls `count_question` in the same transaction,
only once the row was really inserted: a redelivered request inserts nothing and counts nothing. Nothing deletes
questions (forget-user anonymises them); whatever starts to must take its counts out the same way.
`rebuild_tag_stats` counts a workspace again from its rows.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from functools import cache

from sqlalchemy import Index, String, and_, delete, func, insert, literal, select, text, union_all
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Mapped, Session, aliased, mapped_column
from sqlalchemy.sql import Executable

from models.base import Base
from models.question import Question, QuestionTag

ANY_TAG = ""

# Ties between related tags go to the first name in code-point order (how Python sorts strings), whatever the
# database's default collation: on PostgreSQL the names compare bytewise ("C"); SQLite's BINARY does already.
TAG_NAME = String(64).with_variant(String(64, collation="C"), "postgresql")


class TagStat(Base):
    __tablename__ = "tag_stats"

    team_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    tag: Mapped[str] = mapped_column(TAG_NAME, primary_key=True)
    other_tag: Mapped[str] = mapped_column(TAG_NAME, primary_key=True)
    questions: Mapped[int]


# The tags most asked with a tag, most questions first, ties by name: ORDER BY questions DESC, other_tag
# LIMIT n reads the first n entries of the tag's range (and its own count, which comes first and is skipped).
Index("ix_tag_stats_related", TagStat.team_id, TagStat.tag, TagStat.questions.desc(), TagStat.other_tag)


# --- reads ---------------------------------------------------------------------------------------------------


def question_count(session: Session, team_id: str) -> int:
    """The workspace's questions."""
    found = session.scalar(
        select(TagStat.questions).where(
            TagStat.team_id == team_id, TagStat.tag == ANY_TAG, TagStat.other_tag == ANY_TAG
        )
    )
    return int(found or 0)


def tag_counts(session: Session, team_id: str, tags: Iterable[str]) -> dict[str, int]:
    """Questions per tag, for those of `tags` that some question carries."""
    names = sorted(set(tags) - {ANY_TAG})
    if not names:
        return {}
    rows = session.execute(
        select(TagStat.tag, TagStat.questions).where(
            TagStat.team_id == team_id, TagStat.other_tag == ANY_TAG, TagStat.tag.in_(names)
        )
    )
    return {tag: int(count) for tag, count in rows}


def related_tags(session: Session, team_id: str, tags: Sequence[str], per_tag: int) -> list[tuple[str, str, int]]:
    """(tag, related tag, questions carrying both): for each of `tags`, the `per_tag` tags most often asked
    with it, most first, ties by name. One statement, one short index range per tag."""
    names = [tag for tag in dict.fromkeys(tags) if tag != ANY_TAG]
    if not names:
        return []
    tops = [
        select(TagStat.tag, TagStat.other_tag, TagStat.questions)
        .where(TagStat.team_id == team_id, TagStat.tag == tag, TagStat.other_tag != ANY_TAG)
        .order_by(TagStat.questions.desc(), TagStat.other_tag)
        .limit(per_tag)
        .subquery()
        for tag in names
    ]
    # Each LIMIT in a subquery of its own: SQLite takes no ORDER BY or LIMIT on a member of a UNION.
    statement = union_all(*(select(top) for top in tops)) if len(tops) > 1 else select(tops[0])
    return [(tag, other, int(count)) for tag, other, count in session.execute(statement)]


# --- upkeep ---------------------------------------------------------------------------------------------------


def count_question(session: Session, team_id: str, tags: Iterable[str]) -> None:
    """A question with these tags was inserted (in this transaction)."""
    _add(session, team_id, _keys(tags), 1)


def _keys(tags: Iterable[str]) -> list[tuple[str, str]]:
    """The (tag, other_tag) rows a question with these tags counts in, in one order for every transaction (so
    two of them adding to the same rows on PostgreSQL wait for each other rather than deadlock): the
    workspace's ('', '') first, then by name."""
    names = sorted(set(tags) - {ANY_TAG})
    pairs = [(t, u) for t in names for u in names if t != u]
    return sorted([(ANY_TAG, ANY_TAG)] + [(t, ANY_TAG) for t in names] + pairs)


def _add(session: Session, team_id: str, keys: Sequence[tuple[str, str]], change: int) -> None:
    """Add `change` to these rows, in their order: INSERT … ON CONFLICT DO UPDATE, an atomic increment on both
    databases. One statement for every row (the driver sends them together): compiled once per process, where a
    multi-row VALUES would be compiled again for every question."""
    rows = [{"team_id": team_id, "tag": t, "other_tag": u, "questions": change} for t, u in keys]
    session.connection().execute(_upsert(session.get_bind().dialect.name), rows)


@cache
def _upsert(dialect: str) -> Executable:
    if dialect not in ("postgresql", "sqlite"):
        raise NotImplementedError(f"tag statistics on {dialect}")
    statement = (postgresql.insert if dialect == "postgresql" else sqlite.insert)(TagStat)
    return statement.on_conflict_do_update(
        index_elements=[TagStat.team_id, TagStat.tag, TagStat.other_tag],
        set_={"questions": TagStat.questions + statement.excluded.questions},
    )


def rebuild_tag_stats(session: Session, team_id: str) -> int:
    """Count the workspace's tag statistics again from its questions and question_tags (three INSERT … SELECT
    … GROUP BY); returns how many rows it has now.

    On PostgreSQL, question_tags is locked against writes (SHARE: it waits for the transactions storing a
    question, then holds new ones, in every workspace, until the caller commits: seconds at a million):
    a question stored meanwhile counts on top of the rebuilt rows, neither twice nor lost, and rows a writer
    added between the DELETE and the INSERTs never collide with them. An untagged question writes only
    ('', ''), which the DELETE holds (in a workspace that had no question at all, one stored at that moment
    can make the rebuild fail on that row: run it again). SQLite runs one writing transaction at a time."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("LOCK TABLE question_tags IN SHARE MODE"))
    session.execute(delete(TagStat).where(TagStat.team_id == team_id).execution_options(synchronize_session=False))
    other = aliased(QuestionTag)
    everything = (
        select(Question.team_id, literal(ANY_TAG), literal(ANY_TAG), func.count())
        .where(Question.team_id == team_id)
        .group_by(Question.team_id)
    )
    per_tag = (
        select(QuestionTag.team_id, QuestionTag.tag, literal(ANY_TAG), func.count())
        .where(QuestionTag.team_id == team_id)
        .group_by(QuestionTag.team_id, QuestionTag.tag)
    )
    pairs = (
        select(QuestionTag.team_id, QuestionTag.tag, other.tag, func.count())
        .join(other, and_(other.question_id == QuestionTag.question_id, other.tag != QuestionTag.tag))
        .where(QuestionTag.team_id == team_id)
        .group_by(QuestionTag.team_id, QuestionTag.tag, other.tag)
    )
    columns = ["team_id", "tag", "other_tag", "questions"]
    for counted in (everything, per_tag, pairs):
        session.execute(insert(TagStat).from_select(columns, counted))
    return int(session.scalar(select(func.count()).where(TagStat.team_id == team_id)) or 0)
