"""Databases for the tests: every store-touching test runs on SQLite and on PostgreSQL.

Each test gets an empty, migrated database: on SQLite a copy of a file migrated once per run; on
PostgreSQL one database per run (named after the process, so parallel runs never meet), emptied with
TRUNCATE before each test — far faster than creating and dropping a database per test.
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
from sqlalchemy.pool import NullPool

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


class _PostgresDatabase:
    """One migrated database for this test run, emptied before each test; dropped at the end."""

    def __init__(self) -> None:
        self.admin = create_engine(_admin_url(), isolation_level="AUTOCOMMIT")
        self.name = f"peerlearn_t{os.getpid()}_{uuid.uuid4().hex[:6]}"
        with self.admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{self.name}"'))
        self.url = make_url(_admin_url()).set(database=self.name).render_as_string(hide_password=False)
        self.engine = create_engine(normalize_url(self.url), poolclass=NullPool)
        upgrade_to_head(self.engine)
        with self.engine.connect() as conn:
            self.tables = [
                name
                for name in conn.execute(
                    text("SELECT tablename FROM pg_tables WHERE schemaname = current_schema()")
                ).scalars()
                if name != "alembic_version"
            ]

    def fresh(self) -> str:
        with self.engine.begin() as conn:
            # A previous test's background thread may still hold a connection: end it, then empty every table.
            conn.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )
            )
            if self.tables:
                names = ", ".join(f'"{name}"' for name in self.tables)
                conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
        return self.url

    def drop(self) -> None:
        self.engine.dispose()
        with self.admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)'))
        self.admin.dispose()


@pytest.fixture(scope="session")
def _sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("sqlite-template") / "template.db"
    engine = create_store_engine(f"sqlite:///{path}")
    upgrade_to_head(engine)
    engine.dispose()  # the last connection to close checkpoints the WAL into the file we copy
    return path


@pytest.fixture(scope="session")
def _postgres() -> Iterator[_PostgresDatabase | None]:
    reason = _pg_available()
    if reason:
        if os.environ.get("CI"):
            pytest.fail(f"{reason} — CI must run the PostgreSQL half (.ci/run starts PostgreSQL)")
        _pg_skip_reason.append(reason)
        yield None
        return
    database = _PostgresDatabase()
    yield database
    database.drop()


@pytest.fixture(params=BACKENDS)
def database_url(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    _sqlite_template: Path,
    _postgres: _PostgresDatabase | None,
) -> Iterator[str]:
    """A fresh, migrated database for this test: once on SQLite, once on PostgreSQL."""
    if request.param == "sqlite":
        path = tmp_path / "peerlearn.db"
        shutil.copyfile(_sqlite_template, path)
        yield f"sqlite:///{path}"
        return
    if _postgres is None:
        pytest.skip(f"PostgreSQL half skipped: {_pg_skip_reason[0]}")
    yield _postgres.fresh()


@pytest.fixture(autouse=True)
def _no_vectors_from_an_earlier_test() -> Iterator[None]:
    """Search holds each workspace's vectors in memory per database URL; tests reuse URLs (PostgreSQL's is
    emptied between tests), so each test starts with none."""
    from bot.search.vectors import forget_indexes

    forget_indexes()
    yield
    forget_indexes()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if _pg_skip_reason:
        terminalreporter.write_sep(
            "!", f"PostgreSQL half SKIPPED ({_pg_skip_reason[0]}); only SQLite was tested", yellow=True
        )
