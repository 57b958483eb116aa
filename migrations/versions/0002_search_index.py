"""search index: answered questions and lessons, kept in sync by triggers

One row per searchable item in `search_documents` (an answered question with its accepted answer and
tags, or a posted lesson with its tags), maintained by database triggers on questions, answers,
question_tags, lessons and lesson_tags, so every writer (bot, admin CLI, a hand-run UPDATE) keeps the
index right without having to remember to. The database's own full-text engine indexes that table:

- SQLite: an external-content FTS5 table `search_fts` (porter + unicode61) over search_documents, fed by
  the classic insert/delete triggers (a document's exact old values are in its row, which is what
  FTS5's 'delete' needs).
- PostgreSQL: a stored generated tsvector column (english config; question/lesson text weighted A,
  tags B, accepted answer C) with a GIN index.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25 09:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# A question is searchable once resolved with a live accepted answer and posted (so it has a link).
_QUESTION_DOCUMENT = """
SELECT 'question', q.id, q.team_id, q.channel_id, q.channel_private, q.message_ts, q.text, a.text,
       coalesce((SELECT {tag_agg} FROM (SELECT tag FROM question_tags
                 WHERE question_id = q.id ORDER BY position, tag) AS ordered_tags), '')
FROM questions q JOIN answers a ON a.id = q.accepted_answer_id AND a.deleted_at IS NULL
WHERE q.status = 'resolved' AND q.message_ts IS NOT NULL AND {where}
"""
# A lesson is searchable once posted.
_LESSON_DOCUMENT = """
SELECT 'lesson', l.id, l.team_id, l.channel_id, l.channel_private, l.message_ts, l.text, '',
       coalesce((SELECT {tag_agg} FROM (SELECT tag FROM lesson_tags
                 WHERE lesson_id = l.id ORDER BY position, tag) AS ordered_tags), '')
FROM lessons l
WHERE l.message_ts IS NOT NULL AND {where}
"""
_COLUMNS = "(kind, ref_id, team_id, channel_id, channel_private, message_ts, title, body, tags)"
_AGG = {"sqlite": "group_concat(tag, ' ')", "postgresql": "string_agg(tag, ' ')"}


def _forget(kind: str, ref: str) -> str:
    return f"DELETE FROM search_documents WHERE kind = '{kind}' AND ref_id = {ref};"


def _refresh(kind: str, ref: str, dialect: str) -> str:
    """Statements that rebuild one document (or remove it when the item is no longer searchable)."""
    template = _QUESTION_DOCUMENT if kind == "question" else _LESSON_DOCUMENT
    alias = "q" if kind == "question" else "l"
    select = template.format(tag_agg=_AGG[dialect], where=f"{alias}.id = {ref}")
    return f"{_forget(kind, ref)}\nINSERT INTO search_documents {_COLUMNS} {select};"


def upgrade() -> None:
    op.create_table(
        "search_documents",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("ref_id", sa.Integer(), nullable=False),
        sa.Column("team_id", sa.String(length=32), nullable=False),
        sa.Column("channel_id", sa.String(length=32), nullable=False),
        sa.Column("channel_private", sa.Boolean(), nullable=False),
        sa.Column("message_ts", sa.String(length=32), nullable=True),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("tags", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_search_documents")),
        sa.UniqueConstraint("kind", "ref_id", name=op.f("uq_search_documents_kind_ref_id")),
    )
    dialect = op.get_bind().dialect.name
    if dialect == "sqlite":
        _upgrade_sqlite()
    elif dialect == "postgresql":
        _upgrade_postgresql()
    else:
        raise NotImplementedError(f"no full-text search for the {dialect} database")
    # Backfill what exists already (the triggers above index it on the way in).
    agg = _AGG[dialect]
    op.execute(f"INSERT INTO search_documents {_COLUMNS} {_QUESTION_DOCUMENT.format(tag_agg=agg, where='1 = 1')}")
    op.execute(f"INSERT INTO search_documents {_COLUMNS} {_LESSON_DOCUMENT.format(tag_agg=agg, where='1 = 1')}")


# --- SQLite: FTS5 ------------------------------------------------------------------------------

_QUESTION_COLUMNS = "text, status, accepted_answer_id, channel_id, channel_private, message_ts, team_id"
_LESSON_COLUMNS = "text, channel_id, channel_private, message_ts, team_id"


def _sqlite_triggers() -> dict[str, str]:
    question = {ref: _refresh("question", ref, "sqlite") for ref in ("NEW.id", "NEW.question_id")}
    lesson = {ref: _refresh("lesson", ref, "sqlite") for ref in ("NEW.id", "NEW.lesson_id")}
    # An UPDATE forgets the document of the OLD row, then rebuilds the NEW one (the same row unless a key moved).
    return {
        # The FTS5 index follows search_documents (external content: it needs the exact old values).
        "search_documents_fts_ai": "AFTER INSERT ON search_documents BEGIN "
        "INSERT INTO search_fts(rowid, title, body, tags) VALUES (NEW.id, NEW.title, NEW.body, NEW.tags); END",
        "search_documents_fts_ad": "AFTER DELETE ON search_documents BEGIN "
        "INSERT INTO search_fts(search_fts, rowid, title, body, tags) "
        "VALUES ('delete', OLD.id, OLD.title, OLD.body, OLD.tags); END",
        "search_documents_fts_au": "AFTER UPDATE ON search_documents BEGIN "
        "INSERT INTO search_fts(search_fts, rowid, title, body, tags) "
        "VALUES ('delete', OLD.id, OLD.title, OLD.body, OLD.tags); "
        "INSERT INTO search_fts(rowid, title, body, tags) VALUES (NEW.id, NEW.title, NEW.body, NEW.tags); END",
        # search_documents follows the source tables.
        "questions_search_ai": f"AFTER INSERT ON questions BEGIN {question['NEW.id']} END",
        "questions_search_au": f"AFTER UPDATE OF {_QUESTION_COLUMNS} ON questions "
        f"BEGIN {_forget('question', 'OLD.id')} {question['NEW.id']} END",
        "questions_search_ad": f"AFTER DELETE ON questions BEGIN {_forget('question', 'OLD.id')} END",
        # Only the accepted answer is in a document; other replies change nothing.
        "answers_search_au": "AFTER UPDATE OF text, deleted_at, question_id ON answers "
        "WHEN EXISTS (SELECT 1 FROM questions WHERE id IN (NEW.question_id, OLD.question_id) "
        "AND accepted_answer_id = NEW.id) "
        f"BEGIN {_forget('question', 'OLD.question_id')} {question['NEW.question_id']} END",
        "answers_search_ad": f"AFTER DELETE ON answers BEGIN {_refresh('question', 'OLD.question_id', 'sqlite')} END",
        "question_tags_search_ai": f"AFTER INSERT ON question_tags BEGIN {question['NEW.question_id']} END",
        "question_tags_search_au": "AFTER UPDATE ON question_tags "
        f"BEGIN {_forget('question', 'OLD.question_id')} {question['NEW.question_id']} END",
        "question_tags_search_ad": "AFTER DELETE ON question_tags "
        f"BEGIN {_refresh('question', 'OLD.question_id', 'sqlite')} END",
        "lessons_search_ai": f"AFTER INSERT ON lessons BEGIN {lesson['NEW.id']} END",
        "lessons_search_au": f"AFTER UPDATE OF {_LESSON_COLUMNS} ON lessons "
        f"BEGIN {_forget('lesson', 'OLD.id')} {lesson['NEW.id']} END",
        "lessons_search_ad": f"AFTER DELETE ON lessons BEGIN {_forget('lesson', 'OLD.id')} END",
        "lesson_tags_search_ai": f"AFTER INSERT ON lesson_tags BEGIN {lesson['NEW.lesson_id']} END",
        "lesson_tags_search_au": "AFTER UPDATE ON lesson_tags "
        f"BEGIN {_forget('lesson', 'OLD.lesson_id')} {lesson['NEW.lesson_id']} END",
        "lesson_tags_search_ad": "AFTER DELETE ON lesson_tags "
        f"BEGIN {_refresh('lesson', 'OLD.lesson_id', 'sqlite')} END",
    }


def _upgrade_sqlite() -> None:
    op.execute(
        "CREATE VIRTUAL TABLE search_fts USING fts5(title, body, tags, content='search_documents', "
        "content_rowid='id', tokenize='porter unicode61 remove_diacritics 2')"
    )
    for name, body in _sqlite_triggers().items():
        op.execute(f"CREATE TRIGGER {name} {body}")


# --- PostgreSQL: tsvector + GIN ----------------------------------------------------------------

_PG_TSV = (
    "setweight(to_tsvector('english'::regconfig, title), 'A') || "
    "setweight(to_tsvector('english'::regconfig, tags), 'B') || "
    "setweight(to_tsvector('english'::regconfig, body), 'C')"
)


def _pg_sync(kind: str, key: str, *, on_delete: str, update_only_if: str = "TRUE") -> str:
    """A row trigger function: like the SQLite triggers, an UPDATE forgets the OLD row's document, then
    rebuilds the NEW row's (the same one unless a key moved); `on_delete` says what a DELETE does."""
    return f"""RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        {on_delete}
    ELSIF TG_OP = 'INSERT' THEN
        PERFORM search_refresh_{kind}(NEW.{key});
    ELSIF {update_only_if} THEN
        {_forget(kind, f"OLD.{key}")}
        PERFORM search_refresh_{kind}(NEW.{key});
    END IF;
    RETURN NULL;
END $$"""


_PG_FUNCTIONS = {
    "search_refresh_question(ref integer)": (
        f"RETURNS void LANGUAGE sql AS $$ {_refresh('question', 'ref', 'postgresql')} $$"
    ),
    "search_refresh_lesson(ref integer)": (
        f"RETURNS void LANGUAGE sql AS $$ {_refresh('lesson', 'ref', 'postgresql')} $$"
    ),
    "search_questions_sync()": _pg_sync("question", "id", on_delete=_forget("question", "OLD.id")),
    # Only the accepted answer is in a document; other replies change nothing.
    "search_answers_sync()": _pg_sync(
        "question",
        "question_id",
        on_delete="PERFORM search_refresh_question(OLD.question_id);",
        update_only_if="EXISTS (SELECT 1 FROM questions WHERE id IN (NEW.question_id, OLD.question_id) "
        "AND accepted_answer_id = NEW.id)",
    ),
    "search_question_tags_sync()": _pg_sync(
        "question", "question_id", on_delete="PERFORM search_refresh_question(OLD.question_id);"
    ),
    "search_lessons_sync()": _pg_sync("lesson", "id", on_delete=_forget("lesson", "OLD.id")),
    "search_lesson_tags_sync()": _pg_sync(
        "lesson", "lesson_id", on_delete="PERFORM search_refresh_lesson(OLD.lesson_id);"
    ),
}

_PG_TRIGGERS = {
    "questions_search_sync": f"AFTER INSERT OR DELETE OR UPDATE OF {_QUESTION_COLUMNS} ON questions "
    "FOR EACH ROW EXECUTE FUNCTION search_questions_sync()",
    "answers_search_sync": "AFTER DELETE OR UPDATE OF text, deleted_at, question_id ON answers "
    "FOR EACH ROW EXECUTE FUNCTION search_answers_sync()",
    "question_tags_search_sync": "AFTER INSERT OR UPDATE OR DELETE ON question_tags "
    "FOR EACH ROW EXECUTE FUNCTION search_question_tags_sync()",
    "lessons_search_sync": f"AFTER INSERT OR DELETE OR UPDATE OF {_LESSON_COLUMNS} ON lessons "
    "FOR EACH ROW EXECUTE FUNCTION search_lessons_sync()",
    "lesson_tags_search_sync": "AFTER INSERT OR UPDATE OR DELETE ON lesson_tags "
    "FOR EACH ROW EXECUTE FUNCTION search_lesson_tags_sync()",
}
_PG_TRIGGER_TABLES = {
    "questions_search_sync": "questions",
    "answers_search_sync": "answers",
    "question_tags_search_sync": "question_tags",
    "lessons_search_sync": "lessons",
    "lesson_tags_search_sync": "lesson_tags",
}


def _upgrade_postgresql() -> None:
    op.execute(f"ALTER TABLE search_documents ADD COLUMN tsv tsvector GENERATED ALWAYS AS ({_PG_TSV}) STORED")
    op.execute("CREATE INDEX ix_search_documents_tsv ON search_documents USING gin (tsv)")
    for signature, body in _PG_FUNCTIONS.items():
        op.execute(f"CREATE FUNCTION {signature} {body}")
    for name, body in _PG_TRIGGERS.items():
        op.execute(f"CREATE TRIGGER {name} {body}")


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    if dialect == "sqlite":
        for name in _sqlite_triggers():
            op.execute(f"DROP TRIGGER IF EXISTS {name}")
        op.execute("DROP TABLE IF EXISTS search_fts")
    elif dialect == "postgresql":
        for name, table in _PG_TRIGGER_TABLES.items():
            op.execute(f"DROP TRIGGER IF EXISTS {name} ON {table}")
        for signature in _PG_FUNCTIONS:
            op.execute(f"DROP FUNCTION IF EXISTS {signature}")
    op.drop_table("search_documents")
