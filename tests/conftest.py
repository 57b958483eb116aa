"""Databases for the tests: every store-touching test runs on SQLite and on PostgreSQL.

Each test gets its own freshly migrated database, copied from a template migrated once per run
(a file copy on SQLite, `CREATE DATABASE … TEMPLATE` on PostgreSQL), so tests stay isolated and fast.
PostgreSQL comes from TEST_DATABASE_URL (default: 127.0.0.1:5432, database `test`); when it is not
reachable the PostgreSQL half is skipped and the run says so plainly — except under CI, where it fails.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from models.migrate import upgrade_to_head
from models.session import create_store_engine, normalize_url

pytest_plugins = ["tests.slack.fixtures"]

DEFAULT_PG_URL = "postgresql://postgres@127.0.0.1:5432/test"
BACKENDS = ["sqlite", "postgresql"]
_pg_skip_reason: list[str] = []


def _admin_url() -> str:
    return normalize_url(os.environ.get("TEST_DATABASE_URL", DEFAULT_PG_URL))


def _pg_available() -> str | None:
    """None when PostgreSQL answers, else why not."""
    try:
        engine = create_engine(_admin_url(), connect_args={"connect_timeout": 3})
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        engine.dispose()
        return None
    except Exception as exc:
        return f"PostgreSQL not reachable at {make_url(_admin_url()).render_as_string()}: {exc.__class__.__name__}"


class _PostgresDatabases:
    """Creates a migrated template database, then one copy per test; drops them all at the end."""

    def __init__(self) -> None:
        self.admin = create_engine(_admin_url(), isolation_level="AUTOCOMMIT")
        self.prefix = f"peerlearn_t{os.getpid()}_{uuid.uuid4().hex[:6]}"
        self.template = f"{self.prefix}_tmpl"
        self.created: list[str] = []
        self._create(self.template)
        engine = create_store_engine(self.url_for(self.template))
        upgrade_to_head(engine)
        engine.dispose()

    def url_for(self, name: str) -> str:
        return make_url(_admin_url()).set(database=name).render_as_string(hide_password=False)

    def _create(self, name: str, template: str | None = None) -> None:
        suffix = f" TEMPLATE {template}" if template else ""
        with self.admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"{suffix}'))
        self.created.append(name)

    def fresh(self) -> str:
        name = f"{self.prefix}_{uuid.uuid4().hex[:8]}"
        self._create(name, template=self.template)
        return self.url_for(name)

    def drop(self, name: str) -> None:
        with self.admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        if name in self.created:
            self.created.remove(name)

    def drop_all(self) -> None:
        for name in list(reversed(self.created)):
            self.drop(name)
        self.admin.dispose()


@pytest.fixture(scope="session")
def _sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("sqlite-template") / "template.db"
    engine = create_store_engine(f"sqlite:///{path}")
    upgrade_to_head(engine)
    engine.dispose()  # the last connection to close checkpoints the WAL into the file we copy
    return path


@pytest.fixture(scope="session")
def _postgres() -> Iterator[_PostgresDatabases | None]:
    reason = _pg_available()
    if reason:
        if os.environ.get("CI"):
            pytest.fail(f"{reason} — CI must run the PostgreSQL half (.ci/run starts PostgreSQL)")
        _pg_skip_reason.append(reason)
        yield None
        return
    databases = _PostgresDatabases()
    yield databases
    databases.drop_all()


@pytest.fixture(params=BACKENDS)
def database_url(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    _sqlite_template: Path,
    _postgres: _PostgresDatabases | None,
) -> Iterator[str]:
    """A fresh, migrated database for this test: once on SQLite, once on PostgreSQL."""
    if request.param == "sqlite":
        path = tmp_path / "peerlearn.db"
        shutil.copyfile(_sqlite_template, path)
        yield f"sqlite:///{path}"
        return
    if _postgres is None:
        pytest.skip(f"PostgreSQL half skipped: {_pg_skip_reason[0]}")
    url = _postgres.fresh()
    yield url
    _postgres.drop(make_url(url).database or "")


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if _pg_skip_reason:
        terminalreporter.write_sep(
            "!", f"PostgreSQL half SKIPPED ({_pg_skip_reason[0]}); only SQLite was tested", yellow=True
        )
