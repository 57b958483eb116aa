"""The command line: clear failures without tokens, --help, and an explicit migrate."""

import os
import subprocess
import sys
from pathlib import Path

from sqlalchemy import inspect

from models.migrate import pending_migrations
from models.session import Store

ROOT = Path(__file__).resolve().parent.parent


def run_app(*args, env_extra=None, tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLACK_") and k != "DATABASE_URL"}
    env["DATABASE_URL"] = f"sqlite:///{tmp_path / 'cli.db'}"
    env.update(env_extra or {})
    # Run from an empty folder so a developer's own .env is not picked up.
    return subprocess.run(
        [sys.executable, str(ROOT / "app.py"), *args],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_socket_mode_without_tokens_names_what_is_missing(tmp_path):
    result = run_app("run", tmp_path=tmp_path)
    assert result.returncode == 2
    assert "SLACK_BOT_TOKEN" in result.stderr and "SLACK_APP_TOKEN" in result.stderr
    assert "README" in result.stderr and "Create the Slack app" in result.stderr
    assert "Traceback" not in result.stderr


def test_http_mode_needs_the_signing_secret(tmp_path):
    result = run_app("serve", env_extra={"SLACK_BOT_TOKEN": "xoxb-1"}, tmp_path=tmp_path)
    assert result.returncode == 2
    assert "SLACK_SIGNING_SECRET" in result.stderr
    assert "SLACK_BOT_TOKEN" not in result.stderr.split("Missing", 1)[1].split(":", 1)[0]


def test_help_lists_the_verbs(tmp_path):
    result = run_app("--help", tmp_path=tmp_path)
    assert result.returncode == 0
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
