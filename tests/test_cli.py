"""The command line: clear failures without tokens, --help, and an explicit migrate."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from sqlalchemy import inspect
from sqlalchemy.engine import make_url

from bot.config import is_read
from bot.playground.emulator.fake_api import BOT_TOKEN
from models.migrate import pending_migrations
from models.session import Store

ROOT = Path(__file__).resolve().parent.parent


def app_environ(extra):
    """This environment without anything PeerLearn reads, then `extra`."""
    return {k: v for k, v in os.environ.items() if not is_read(k)} | extra


def run_app(*args, env_extra=None, tmp_path, timeout=60):
    env = app_environ({"DATABASE_URL": f"sqlite:///{tmp_path / 'cli.db'}", **(env_extra or {})})
    # Run from an empty folder so a developer's own .env is not picked up.
    return subprocess.run(
        [sys.executable, str(ROOT / "app.py"), *args],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def eventually(check, what, timeout=60.0):
    deadline = time.monotonic() + timeout
    while not (result := check()):
        if time.monotonic() > deadline:
            raise AssertionError(f"not {what} after {timeout}s")
        time.sleep(0.1)
    return result


def healthz(url):
    try:
        with urllib.request.urlopen(url, timeout=10) as reply:
            return reply.status, json.load(reply)
    except urllib.error.HTTPError as error:
        return error.code, json.load(error)
    except OSError:
        return None


def test_socket_mode_without_tokens_names_what_is_missing(tmp_path):
    result = run_app("run", tmp_path=tmp_path)
    assert result.returncode == 2
    assert "SLACK_BOT_TOKEN" in result.stderr and "SLACK_APP_TOKEN" in result.stderr
    assert "README" in result.stderr and "Create the Slack app" in result.stderr
    assert "`cp .env.example .env`" in result.stderr, "the README's own words"
    assert "Traceback" not in result.stderr


def test_http_mode_needs_the_signing_secret(tmp_path):
    result = run_app("serve", env_extra={"SLACK_BOT_TOKEN": "xoxb-1"}, tmp_path=tmp_path)
    assert result.returncode == 2
    assert "SLACK_SIGNING_SECRET" in result.stderr
    assert "SLACK_BOT_TOKEN" not in result.stderr.split("Missing", 1)[1].split(":", 1)[0]


def test_help_lists_the_verbs(tmp_path):
    result = run_app("--help", tmp_path=tmp_path)
    assert result.returncode == 0
    assert result.stdout.startswith("usage: .venv/bin/python app.py"), "as the README shows it"
    for verb in ("run", "serve", "migrate"):
        assert verb in result.stdout


def test_migrate_brings_the_database_to_head(database_url, tmp_path):
    result = run_app("migrate", env_extra={"DATABASE_URL": database_url}, tmp_path=tmp_path)
    assert result.returncode == 0, result.stderr
    store = Store.from_url(database_url)
    try:
        assert pending_migrations(store.engine) == set()
        assert {"questions", "answers", "votes", "processed_events"} <= set(inspect(store.engine).get_table_names())
    finally:
        store.dispose()


def test_migrate_creates_the_schema_in_an_empty_database(tmp_path):
    url = f"sqlite:///{tmp_path / 'empty.db'}"
    result = run_app("migrate", env_extra={"DATABASE_URL": url}, tmp_path=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "up to date" in result.stdout
    store = Store.from_url(url)
    try:
        assert pending_migrations(store.engine) == set()
    finally:
        store.dispose()


# --- a DATABASE_URL that cannot work: one line that says what to do, exit 2 -------------------------------


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])  # nothing listens on it once the probe is closed


VERBS = {
    "run": (["run"], {"SLACK_BOT_TOKEN": "xoxb-1", "SLACK_APP_TOKEN": "xapp-1"}),
    "serve": (["serve", "--port", "0"], {"SLACK_BOT_TOKEN": "xoxb-1", "SLACK_SIGNING_SECRET": "s"}),
    "work": (["work"], {"SLACK_BOT_TOKEN": "xoxb-1"}),
    "migrate": (["migrate"], {}),
    "stats": (["stats"], {}),
    "export": (["export", "--team", "T1", "--format", "json"], {}),
    "forget-user": (["forget-user", "--team", "T1", "--user", "U1"], {}),
    "digest": (["digest", "--team", "T1", "--channel", "C1", "--dry-run"], {}),
}
LASTING = {
    "not a URL": ("notaurl", "is not a database URL"),
    "MySQL": ("mysql://peerlearn@localhost/peerlearn", "SQLite or PostgreSQL, not mysql"),
    "MongoDB": ("mongodb://localhost/peerlearn", "SQLite or PostgreSQL, not mongodb"),
    "SQLite file in a missing folder": ("sqlite:///no/such/folder/peerlearn.db", "does not exist. Create it"),
}


def assert_one_line(result: subprocess.CompletedProcess[str], says: str) -> None:
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert (result.returncode, len(lines)) == (2, 1), f"exit {result.returncode}:\n{result.stderr}"
    assert says in lines[0] and "DATABASE_URL" in lines[0], lines[0]
    assert "Traceback" not in result.stderr + result.stdout


@pytest.mark.parametrize("verb", VERBS)
@pytest.mark.parametrize("case", LASTING)
def test_a_database_url_that_cannot_work_is_one_line(tmp_path, verb, case):
    url, says = LASTING[case]
    args, env = VERBS[verb]
    assert_one_line(run_app(*args, env_extra={**env, "DATABASE_URL": url}, tmp_path=tmp_path, timeout=30), says)


@pytest.mark.parametrize("verb", VERBS)
def test_a_missing_postgresql_database_is_one_line(tmp_path, _postgres, verb):
    if _postgres is None:
        pytest.skip("needs PostgreSQL")
    url = make_url(_postgres.url).set(database="peerlearn_no_such_database").render_as_string(hide_password=False)
    args, env = VERBS[verb]
    result = run_app(*args, env_extra={**env, "DATABASE_URL": url}, tmp_path=tmp_path, timeout=30)
    assert_one_line(result, 'database "peerlearn_no_such_database" does not exist')
    assert "createdb peerlearn_no_such_database" in result.stderr


@pytest.mark.parametrize("verb", [verb for verb in VERBS if verb not in ("serve", "work")])
def test_a_database_that_does_not_answer_is_one_line(tmp_path, verb):
    url = f"postgresql://peerlearn:secret@127.0.0.1:{closed_port()}/peerlearn"
    args, env = VERBS[verb]
    result = run_app(*args, env_extra={**env, "DATABASE_URL": url}, tmp_path=tmp_path, timeout=30)
    assert_one_line(result, "does not answer (Connection refused). Start it, or fix DATABASE_URL")
    assert "secret" not in result.stderr, "the password is not printed"


def test_serve_waits_for_a_database_that_does_not_answer_and_says_why(tmp_path, fake_slack):
    url = f"postgresql://peerlearn@127.0.0.1:{closed_port()}/peerlearn"
    port = closed_port()
    env = {**VERBS["serve"][1], "SLACK_BOT_TOKEN": BOT_TOKEN, "DATABASE_URL": url, "SLACK_API_URL": fake_slack.base_url}
    log = tmp_path / "serve.log"
    with log.open("w") as output:
        serve = subprocess.Popen(
            [sys.executable, str(ROOT / "app.py"), "serve", "--host", "127.0.0.1", "--port", str(port)],
            cwd=tmp_path,
            env=app_environ(env),
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        health = eventually(lambda: healthz(f"http://127.0.0.1:{port}/healthz"), f"healthz:\n{log.read_text()}")
        assert health == (503, {"status": "unavailable", "database": "unreachable"})
        waiting = [line for line in log.read_text().splitlines() if "does not answer" in line]
        assert waiting and "Start it, or fix DATABASE_URL" in waiting[0]
        assert "Traceback" not in log.read_text()
        assert serve.poll() is None, "it waits for the database, as in an outage"
    finally:
        os.killpg(serve.pid, signal.SIGTERM)
        serve.wait(30)
