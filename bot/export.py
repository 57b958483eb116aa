"""Data ownership: export a workspace's data, and forget a person (a right-to-erasure request).

Export (`python app.py export --team T --format json|csv [--output PATH]`) writes every question, answer,
lesson, vote and expertise record of one workspace, the threads saved as lessons (with the messages kept) and
the messages questions were asked about, its mentoring (offers, requests, pairings), its lunch-and-learn sessions
(their announcements, sign-ups and the experts invited to run one), its onboarding settings, buddy volunteers and
pairings, and its settings and the record of their changes, each
with every column of its table (tags of questions and lessons ride along as a list), streamed in batches so a
large workspace never sits in memory:

- JSON: one object `{"format": "peerlearn-export", "version": 1, "team_id", "exported_at", "questions": [...],
  "answers": [...], "lessons": [...], "votes": [...], "expertise": [...], "settings": [...],
  "settings_changes": [...], ...}`, one list per kind of `KINDS` below (also "question_sources",
  "saved_threads", "saved_thread_messages", "mentor_offers", "mentor_requests", "mentor_pairings", "sessions",
  "session_posts", "session_signups", "session_invites", "onboarding_settings", "buddy_volunteers",
  "buddy_pairings"); to stdout, or to PATH.
- CSV: one file per kind (`questions.csv`, `answers.csv`, … `buddy_pairings.csv`), with a header row of column
  names; in a zip archive when PATH ends in `.zip` (the default name is `peerlearn-export-<team>-<date>.zip`),
  else in the folder PATH.

Values: datetimes are ISO 8601 in UTC (`2026-11-23T10:00:00+00:00`), booleans `true`/`false`, tags a JSON
list (CSV: separated by spaces, in the order they were written). In CSV an empty cell of a column that may be
null means null, and text starting with = + - @, a tab, a carriage return or ' gets a leading ' so that a
spreadsheet shows it as text instead of running it as a formula (JSON keeps every text exactly as stored).
`read_export` parses either format back into typed rows equal to the database's.

Forget-user (`python app.py forget-user --team T --user U`), in one transaction for workspace T:

- questions, answers and lessons U wrote stay (others' answers, votes and the programme's statistics depend
  on them) but are anonymised: the author becomes FORGOTTEN_USER_ID and the text is replaced by
  REDACTED_TEXT (tags stay: they are topics, not personal data). The search index follows by itself.
- U's messages kept in saved threads ("Save as knowledge") are deleted and each such lesson is rewritten from
  the messages left (its author: whoever wrote the first of them); a thread U saved, or a question asked about
  U's message, stays with FORGOTTEN_USER_ID as saver or author.
- votes U cast are deleted; votes others cast on U's answers and lessons stay, credited to FORGOTTEN_USER_ID
  (rankings leave that id out).
- lunch-and-learn sessions U hosted stay (others signed up for them), anonymised like lessons: the host
  becomes FORGOTTEN_USER_ID and the title REDACTED_TEXT; U's sign-ups and the invitations sent to U are
  deleted; invitations U sent stay, with FORGOTTEN_USER_ID as who sent them.
- the workspace settings U changed stay, and so does the record of their changes, with FORGOTTEN_USER_ID as
  who changed them.
- onboarding buddies: U's volunteering and U's own pairing as a newcomer are deleted; where U was someone's
  buddy, the pairing stays with FORGOTTEN_USER_ID as the buddy (bot/onboarding.py `forget`).
- U's declared topics (expertise), routing requests sent to U, U's routing evidence (recomputed for those
  U's deleted votes counted for) and U's profile and preferences (people)
  are deleted; a digest subscription U set up stays, with FORGOTTEN_USER_ID as its creator; if U installed
  the app, the installation keeps working, with FORGOTTEN_USER_ID as installer and U's user token removed.
- U's mentoring offers and requests, and every pairing U was in (as mentor or mentee), are deleted; nothing is
  posted to the partner, whose own request stays as it was.
- mentions of U in anyone's text (`<@U>`, `<@U|name>`, in every text column of every table) become
  MENTION_LABEL, and so does U's bare id in free-text columns.
- then every column of every table of the workspace (and the full-text indexes) is searched for U's id; if
  it is still anywhere, nothing is changed (the transaction rolls back) and ForgetIncomplete names where, so
  a table added later cannot silently keep someone's data.

Not covered: messages in Slack itself, including PeerLearn's own posts of U's questions and lessons, which
the workspace's Slack retention and deletion tools govern; `ForgetReport.bot_posts` lists those posts.
"""

from __future__ import annotations

import csv
import io
import json
import re
import zipfile
from collections.abc import Iterator, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import IO, Any

import sqlalchemy as sa
from sqlalchemy import delete, inspect, select, update
from sqlalchemy.orm import Session

from bot.capture import forget_contributor
from bot.onboarding import forget as forget_onboarding
from bot.routing.upkeep import answerers_of, forget_person, helpful_voted_authors, profiles_naming, refresh_people
from models.base import Base
from models.capture import QuestionSource, SavedMessage, SavedThread
from models.digest import DigestSubscription
from models.expert import FORGOTTEN_USER_ID, Expertise, Person, RouteRequest
from models.lesson import Lesson, LessonTag
from models.mentoring import MentorOffer, MentorPairing, MentorRequest
from models.onboarding import BuddyPairing, BuddyVolunteer, OnboardingSettings
from models.question import Answer, Question, QuestionTag, Vote
from models.sessions import LearningSession, SessionInvite, SessionPost, SessionSignup
from models.workspace_settings import SettingsChange, WorkspaceSetting

FORMAT_NAME = "peerlearn-export"
FORMAT_VERSION = 1
BATCH = 1000
REDACTED_TEXT = "[removed at the author's request]"
TEXT_MARK = "'"  # CSV: a cell starting with it is text to a spreadsheet, never a formula
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", TEXT_MARK)
MENTION_LABEL = "@former member"


# --- export -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Kind:
    """One kind of record in an export: a table, and the table holding its tags (if any)."""

    name: str
    model: type[Base]
    tag_model: type[QuestionTag] | type[LessonTag] | None = None

    @property
    def table(self) -> sa.Table:
        return self.model.__table__  # type: ignore[return-value]

    @property
    def columns(self) -> list[str]:
        return [c.name for c in self.table.columns] + (["tags"] if self.tag_model is not None else [])


KINDS = (
    Kind("questions", Question, QuestionTag),
    Kind("answers", Answer),
    Kind("lessons", Lesson, LessonTag),
    Kind("votes", Vote),
    Kind("expertise", Expertise),
    Kind("settings", WorkspaceSetting),
    Kind("settings_changes", SettingsChange),
    Kind("question_sources", QuestionSource),
    Kind("saved_threads", SavedThread),
    Kind("saved_thread_messages", SavedMessage),
    Kind("sessions", LearningSession),
    Kind("session_posts", SessionPost),
    Kind("session_signups", SessionSignup),
    Kind("session_invites", SessionInvite),
    Kind("mentor_offers", MentorOffer),
    Kind("mentor_requests", MentorRequest),
    Kind("mentor_pairings", MentorPairing),
    Kind("onboarding_settings", OnboardingSettings),
    Kind("buddy_volunteers", BuddyVolunteer),
    Kind("buddy_pairings", BuddyPairing),
)


def export_rows(session: Session, team_id: str, kind: Kind) -> Iterator[dict[str, Any]]:
    """Every row of one kind for the workspace, in primary-key order, fetched BATCH at a time."""
    table = kind.table
    query = select(*table.columns).where(table.c.team_id == team_id).order_by(*table.primary_key.columns)
    for batch in session.execute(query.execution_options(yield_per=BATCH)).partitions(BATCH):
        rows = [dict(row._mapping) for row in batch]
        if kind.tag_model is not None:
            tags = _tags_of(session, kind.tag_model, [row["id"] for row in rows])
            for row in rows:
                row["tags"] = tags.get(row["id"], [])
        yield from rows


def _tags_of(session: Session, tag_model: type[QuestionTag] | type[LessonTag], ids: list[int]) -> dict[int, list[str]]:
    owner = tag_model.question_id if tag_model is QuestionTag else tag_model.lesson_id  # type: ignore[union-attr]
    found: dict[int, list[str]] = {}
    query = select(owner, tag_model.tag).where(owner.in_(ids)).order_by(owner, tag_model.position, tag_model.tag)
    for owner_id, tag in session.execute(query):
        found.setdefault(owner_id, []).append(tag)
    return found


def _json_value(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else value


def export_json(session: Session, team_id: str, out: IO[str], now: datetime) -> dict[str, int]:
    """Write the workspace's export as one JSON object to `out`, streaming; returns rows written per kind."""
    header = {"format": FORMAT_NAME, "version": FORMAT_VERSION, "team_id": team_id, "exported_at": now.isoformat()}
    out.write(json.dumps(header, indent=1, ensure_ascii=False)[:-2])  # leave the object open
    counts = {}
    for kind in KINDS:
        out.write(f',\n "{kind.name}": [')
        count = 0
        for row in export_rows(session, team_id, kind):
            out.write(("\n  " if count == 0 else ",\n  ") + json.dumps({k: _json_value(v) for k, v in row.items()}))
            count += 1
        out.write("\n ]" if count else "]")
        counts[kind.name] = count
    out.write("\n}\n")
    return counts


def _csv_value(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, list):
        return " ".join(value)
    return str(value)


def _csv_cell(value: Any) -> str:
    """A value as a CSV cell. Text a spreadsheet would run as a formula (it starts with = + - @, a tab or a
    carriage return: OWASP's list) is marked as text with a leading single quote, as OWASP recommends; text
    that starts with the quote itself gets one more, so `read_export` can always take exactly one off."""
    cell = _csv_value(value)
    if isinstance(value, str | list) and cell.startswith(FORMULA_STARTS):
        return TEXT_MARK + cell
    return cell


def export_csv(session: Session, team_id: str, target: Path) -> dict[str, int]:
    """Write one CSV per kind into the zip archive `target` (a path ending in .zip) or the folder `target`."""
    counts = {}
    with ExitStack() as stack:
        archive = None
        if target.suffix.lower() == ".zip":
            archive = stack.enter_context(zipfile.ZipFile(target, "w", compression=zipfile.ZIP_DEFLATED))
        else:
            target.mkdir(parents=True, exist_ok=True)
        for kind in KINDS:
            with ExitStack() as file_stack:
                if archive is not None:
                    raw = file_stack.enter_context(archive.open(f"{kind.name}.csv", "w"))
                    out: IO[str] = file_stack.enter_context(io.TextIOWrapper(raw, encoding="utf-8", newline=""))
                else:
                    out = file_stack.enter_context(
                        (target / f"{kind.name}.csv").open("w", encoding="utf-8", newline="")
                    )
                writer = csv.writer(out)
                writer.writerow(kind.columns)
                count = 0
                for row in export_rows(session, team_id, kind):
                    writer.writerow([_csv_cell(row[name]) for name in kind.columns])
                    count += 1
                counts[kind.name] = count
    return counts


def _parse(column: sa.Column[Any] | None, raw: Any, from_csv: bool) -> Any:
    """A value as exported → the value the database holds (typed by the column)."""
    if column is None:  # tags
        return raw.removeprefix(TEXT_MARK).split() if from_csv else list(raw)
    if from_csv and raw == "" and column.nullable:
        return None
    if raw is None:
        return None
    column_type = column.type.impl_instance if isinstance(column.type, sa.TypeDecorator) else column.type
    kind = column_type.python_type
    if from_csv and kind is str:
        return raw.removeprefix(TEXT_MARK)  # the mark _csv_cell put on text a spreadsheet would have run
    if kind is datetime:
        return datetime.fromisoformat(raw)
    if kind is bool:
        return raw if isinstance(raw, bool) else raw == "true"
    if kind is int:
        return int(raw)
    return raw


def read_export(path: Path) -> dict[str, list[dict[str, Any]]]:
    """Parse an export (a .json file, a .zip of CSVs or a folder of CSVs) back into typed rows per kind."""
    parsed: dict[str, list[dict[str, Any]]] = {}
    if path.suffix.lower() == ".json":
        data = json.loads(path.read_text(encoding="utf-8"))
        if data.get("format") != FORMAT_NAME:
            raise ValueError(f"{path.name} is not a PeerLearn export")
        for kind in KINDS:
            parsed[kind.name] = [
                {name: _parse(kind.table.columns.get(name), row[name], False) for name in kind.columns}
                for row in data[kind.name]
            ]
        return parsed
    with ExitStack() as stack:
        archive = stack.enter_context(zipfile.ZipFile(path)) if path.suffix.lower() == ".zip" else None
        for kind in KINDS:
            if archive is not None:
                text = archive.read(f"{kind.name}.csv").decode("utf-8")
            else:
                text = (path / f"{kind.name}.csv").read_bytes().decode("utf-8")  # a CR in a text stays a CR
            reader = csv.DictReader(io.StringIO(text, newline=""))
            parsed[kind.name] = [
                {name: _parse(kind.table.columns.get(name), row[name], True) for name in kind.columns} for row in reader
            ]
    return parsed


# --- forget-user ------------------------------------------------------------------------------------


class ForgetIncomplete(RuntimeError):
    """The person's id is still somewhere after applying the policy; nothing was changed."""

    def __init__(self, places: Sequence[str]) -> None:
        super().__init__(
            "their id is still in " + ", ".join(places) + ": extend the forget-user policy in bot/export.py "
            "for these columns"
        )
        self.places = list(places)


@dataclass
class ForgetReport:
    team_id: str
    user_id: str
    changed: dict[str, int] = field(default_factory=dict)  # what happened → rows
    bot_posts: list[tuple[str, str]] = field(default_factory=list)  # PeerLearn's posts of their text in Slack

    @property
    def total(self) -> int:
        return sum(self.changed.values())


_SLACK_ID = re.compile(r"^[A-Z0-9][A-Z0-9_]{1,31}$")


def _count(session: Session, statement: Any) -> int:
    return int(session.execute(statement).rowcount or 0)  # type: ignore[attr-defined]


def forget_user(session: Session, team_id: str, user_id: str) -> ForgetReport:
    """Apply the policy of this module's docstring in the caller's transaction; raises ForgetIncomplete (the
    caller rolls back) when the id would remain anywhere."""
    if not _SLACK_ID.match(user_id) or user_id == FORGOTTEN_USER_ID:
        raise ValueError(f"{user_id!r} is not a Slack user id (like U012AB3CD)")
    report = ForgetReport(team_id, user_id)
    changed = report.changed
    report.bot_posts = [
        (channel, str(ts))
        for model, author in ((Question, Question.asker_id), (Lesson, Lesson.author_id))
        for channel, ts in session.execute(
            select(model.channel_id, model.message_ts).where(  # type: ignore[attr-defined]
                model.team_id == team_id,  # type: ignore[attr-defined]
                author == user_id,
                model.message_ts.is_not(None),  # type: ignore[attr-defined]
            )
        )
    ]
    anonymous = {"text": REDACTED_TEXT}
    voted_on = helpful_voted_authors(session, team_id, user_id)  # their votes' deletion changes these people
    answered_them = answerers_of(session, team_id, user_id)  # routing's text profiles hold their questions' words
    changed["votes cast (deleted)"] = _count(
        session, delete(Vote).where(Vote.team_id == team_id, Vote.voter_id == user_id)
    )
    changed["votes received (anonymised)"] = _count(
        session,
        update(Vote).where(Vote.team_id == team_id, Vote.author_id == user_id).values(author_id=FORGOTTEN_USER_ID),
    )
    changed["answers (anonymised)"] = _count(
        session,
        update(Answer)
        .where(Answer.team_id == team_id, Answer.user_id == user_id)
        .values(user_id=FORGOTTEN_USER_ID, **anonymous),
    )
    changed["questions (anonymised)"] = _count(
        session,
        update(Question)
        .where(Question.team_id == team_id, Question.asker_id == user_id)
        .values(asker_id=FORGOTTEN_USER_ID, **anonymous),
    )
    # Saved threads (bot/capture.py): their messages go, each lesson is rewritten from the others' messages.
    changed["saved thread messages (deleted)"] = forget_contributor(session, team_id, user_id)
    changed["saved threads (saver anonymised)"] = _count(
        session,
        update(SavedThread)
        .where(SavedThread.team_id == team_id, SavedThread.saved_by == user_id)
        .values(saved_by=FORGOTTEN_USER_ID),
    )
    changed["questions' sources (author anonymised)"] = _count(
        session,
        update(QuestionSource)
        .where(QuestionSource.team_id == team_id, QuestionSource.author_id == user_id)
        .values(author_id=FORGOTTEN_USER_ID),
    )
    changed["lessons (anonymised)"] = _count(
        session,
        update(Lesson)
        .where(Lesson.team_id == team_id, Lesson.author_id == user_id)
        .values(author_id=FORGOTTEN_USER_ID, **anonymous),
    )
    changed["sessions hosted (anonymised)"] = _count(
        session,
        update(LearningSession)
        .where(LearningSession.team_id == team_id, LearningSession.host_id == user_id)
        .values(host_id=FORGOTTEN_USER_ID, title=REDACTED_TEXT),
    )
    changed["session sign-ups (deleted)"] = _count(
        session, delete(SessionSignup).where(SessionSignup.team_id == team_id, SessionSignup.user_id == user_id)
    )
    changed["session invitations received (deleted)"] = _count(
        session, delete(SessionInvite).where(SessionInvite.team_id == team_id, SessionInvite.expert_id == user_id)
    )
    changed["session invitations sent (anonymised)"] = _count(
        session,
        update(SessionInvite)
        .where(SessionInvite.team_id == team_id, SessionInvite.invited_by == user_id)
        .values(invited_by=FORGOTTEN_USER_ID),
    )
    changed["topics (deleted)"] = _count(
        session, delete(Expertise).where(Expertise.team_id == team_id, Expertise.user_id == user_id)
    )
    changed["routing requests (deleted)"] = _count(
        session, delete(RouteRequest).where(RouteRequest.team_id == team_id, RouteRequest.expert_id == user_id)
    )
    changed["routing evidence (deleted)"] = forget_person(session, team_id, user_id)
    refresh_people(session, team_id, voted_on - {user_id})
    changed["profile and preferences (deleted)"] = _count(
        session, delete(Person).where(Person.team_id == team_id, Person.user_id == user_id)
    )
    changed["digest subscriptions (creator anonymised)"] = _count(
        session,
        update(DigestSubscription)
        .where(DigestSubscription.team_id == team_id, DigestSubscription.created_by == user_id)
        .values(created_by=FORGOTTEN_USER_ID),
    )
    changed["settings changes (admin anonymised)"] = _count(
        session,
        update(SettingsChange)
        .where(SettingsChange.team_id == team_id, SettingsChange.user_id == user_id)
        .values(user_id=FORGOTTEN_USER_ID),
    )
    changed["mentoring pairings (deleted)"] = _count(
        session,
        delete(MentorPairing).where(
            MentorPairing.team_id == team_id,
            (MentorPairing.mentor_id == user_id) | (MentorPairing.mentee_id == user_id),
        ),
    )
    changed["mentoring requests (deleted)"] = _count(
        session, delete(MentorRequest).where(MentorRequest.team_id == team_id, MentorRequest.mentee_id == user_id)
    )
    changed["mentoring offers (deleted)"] = _count(
        session, delete(MentorOffer).where(MentorOffer.team_id == team_id, MentorOffer.user_id == user_id)
    )
    changed.update(forget_onboarding(session, team_id, user_id, FORGOTTEN_USER_ID))
    tables = _tables(session)
    changed["installations (installer anonymised)"] = _forget_installer(session, tables, team_id, user_id)
    changed["mentions in text (replaced)"] = _replace_mentions(session, tables, team_id, user_id)
    # Recomputed from the texts as they are now: without U's questions' words, and without mentions of U.
    refresh_people(session, team_id, (answered_them | profiles_naming(session, team_id, user_id)) - {user_id})
    if report.total:
        _purge_fulltext_indexes(session, tables)
    places = find_user_id(session, team_id, user_id, tables)
    if places:
        raise ForgetIncomplete(places)
    session.expire_all()
    return report


# The database's own tables, as the database has them now (other modules' tables included).


@dataclass(frozen=True)
class _Table:
    table: sa.Table
    virtual: bool = False  # a full-text index (SQLite FTS5): searched with MATCH, not read column by column

    @property
    def team_scoped(self) -> bool:
        return "team_id" in self.table.c


def _tables(session: Session) -> list[_Table]:
    connection = session.connection()
    names = [name for name in inspect(connection).get_table_names() if name != "alembic_version"]
    virtual: set[str] = set()
    shadows: set[str] = set()
    if connection.dialect.name == "sqlite":
        rows = connection.exec_driver_sql("SELECT name, sql FROM sqlite_master WHERE type = 'table'").all()
        virtual = {name for name, sql in rows if (sql or "").upper().startswith("CREATE VIRTUAL TABLE")}
        # An FTS5 table keeps its index in shadow tables (<name>_data, _idx, _content, _docsize, _config).
        shadows = {name for name in names for v in virtual if name.startswith(v + "_")}
    metadata = sa.MetaData()
    found = []
    for name in names:
        if name in shadows:
            continue
        if name in virtual:
            found.append(_Table(sa.Table(name, metadata, sa.Column("rowid", sa.Integer)), virtual=True))
        else:
            found.append(_Table(sa.Table(name, metadata, autoload_with=connection)))
    return found


def _forget_installer(session: Session, tables: list[_Table], team_id: str, user_id: str) -> int:
    """slack_sdk's installation rows name the installing user and may hold a user token (bot/runtime/oauth.py)."""
    table = next((t.table for t in tables if t.table.name == "slack_installations"), None)
    if table is None or "user_id" not in table.c or "team_id" not in table.c:
        return 0
    cleared = {name: None for name in ("user_token", "user_refresh_token", "user_scopes", "user_token_expires_at")}
    return _count(
        session,
        update(table)
        .where(table.c.team_id == team_id, table.c.user_id == user_id)
        .values(user_id=FORGOTTEN_USER_ID, **{k: v for k, v in cleared.items() if k in table.c}),
    )


def _replace_mentions(session: Session, tables: list[_Table], team_id: str, user_id: str) -> int:
    """Replace `<@U>` / `<@U|name>` in every text column (and the bare id in free-text columns) of every row."""
    mention = re.compile(r"<@" + re.escape(user_id) + r"(?:\|[^>]*)?>")
    bare = re.compile(r"(?<![A-Za-z0-9_])" + re.escape(user_id) + r"(?![A-Za-z0-9_])")
    changed = 0
    for entry in tables:
        table = entry.table
        keys = list(table.primary_key.columns)
        if entry.virtual or not keys:
            continue
        for column in table.columns:
            if not isinstance(column.type, sa.String) or column.computed is not None:
                continue
            free_text = isinstance(column.type, sa.Text)
            query = select(*keys, column).where(column.contains(user_id, autoescape=True))
            if entry.team_scoped:
                query = query.where(table.c.team_id == team_id)
            for row in session.execute(query).all():
                value = mention.sub(MENTION_LABEL, row[-1])
                if free_text:
                    value = bare.sub(MENTION_LABEL, value)
                if value != row[-1]:
                    where = [key == row[i] for i, key in enumerate(keys)]
                    session.execute(update(table).where(*where).values({column.name: value}))
                    changed += 1
    return changed


def _purge_fulltext_indexes(session: Session, tables: list[_Table]) -> None:
    """SQLite's FTS5 keeps deleted terms in its segments until they merge; merge them now."""
    for entry in tables:
        if entry.virtual:
            name = entry.table.name
            session.connection().exec_driver_sql(f'INSERT INTO "{name}"("{name}") VALUES (\'optimize\')')


def find_user_id(session: Session, team_id: str, user_id: str, tables: list[_Table] | None = None) -> list[str]:
    """Every `table.column` where the id still appears (in the workspace's rows, for tables that have a
    team_id; in every row otherwise), plus full-text indexes that still find it."""
    places = []
    for entry in tables if tables is not None else _tables(session):
        table = entry.table
        if entry.virtual:
            term = '"' + user_id.replace('"', '""') + '"'
            hit = session.connection().exec_driver_sql(
                f'SELECT 1 FROM "{table.name}" WHERE "{table.name}" MATCH ? LIMIT 1', (term,)
            )
            if hit.first() is not None:
                places.append(f"{table.name} (full-text index)")
            continue
        for column in table.columns:
            as_text = sa.cast(column, sa.Text)
            query = select(sa.literal(1)).select_from(table).where(as_text.contains(user_id, autoescape=True))
            if entry.team_scoped:
                query = query.where(table.c.team_id == team_id)
            if session.execute(query.limit(1)).first() is not None:
                places.append(f"{table.name}.{column.name}")
    return places
