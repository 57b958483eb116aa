"""Run Alembic programmatically: the app upgrades to head at start; /healthz checks that the database still
has what it upgraded to.

Alembic (with Mako) is heavy to import and heavier once it has run the migrations (bench/RESULTS.md, memory),
so it is imported only by the functions that migrate. `serve` and `work`, which stay up, migrate in a
`python app.py migrate` process of their own (`upgrade_in_child`) and check the schema with plain SQL
(`applied_revisions`): they never load it.
"""

from __future__ import annotations

import logging
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Connection, Engine, inspect, text

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"
APP = MIGRATIONS_DIR.parent / "app.py"
# Any constant works; it only has to be the same for every replica.
_PG_MIGRATION_LOCK = 7_253_001
logger = logging.getLogger("peerlearn.migrate")
CHILD_TIMEOUT = 600.0  # seconds; the migrations of a large database (an index on 1M rows) take a minute


class MigrationFailed(Exception):
    """`python app.py migrate` ended with an error (the exception it ended with is the message)."""


def alembic_config(engine: Engine) -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("sqlalchemy.url", engine.url.render_as_string(hide_password=False))
    return config


def upgrade_to_head(engine: Engine) -> None:
    """Upgrade to every head; replicas starting together on PostgreSQL take turns via an advisory lock.
    An upgrade of a database that had a schema is logged (one line); creating one in an empty database, as
    every first start and the playground's throwaway database do, only at DEBUG."""
    from alembic import command

    config = alembic_config(engine)
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_MIGRATION_LOCK})
        before = revisions_of(conn)
        config.attributes["connection"] = conn
        command.upgrade(config, "heads")
        after = revisions_of(conn)
    if before and after != before:
        logger.info("database schema upgraded from %s to %s", listed(before), listed(after))
    elif after != before:
        logger.debug("database schema created at %s", listed(after))


def upgrade_in_child(engine: Engine) -> None:
    """upgrade_to_head in a process of its own, so that this one never imports Alembic. Raises the
    database's own error when it cannot be reached (as upgrade_to_head would), MigrationFailed otherwise."""
    with engine.connect():
        pass
    environment = {**os.environ, "DATABASE_URL": engine.url.render_as_string(hide_password=False)}
    done = subprocess.run(
        [sys.executable, str(APP), "migrate"], env=environment, capture_output=True, text=True, timeout=CHILD_TIMEOUT
    )
    if done.returncode != 0:
        # A traceback's exception line ("sqlalchemy.exc.OperationalError: …"), not the SQL and links after it.
        errors = [line for line in done.stderr.splitlines() if re.match(r"[A-Za-z_][\w.]*: ", line)]
        raise MigrationFailed(errors[-1] if errors else f"`{APP.name} migrate` ended with status {done.returncode}")


def applied_revisions(engine: Engine) -> set[str]:
    """The revisions the database is at (Alembic's version table); empty before the first migration."""
    with engine.connect() as conn:
        return revisions_of(conn)


def revisions_of(conn: Connection) -> set[str]:
    if not inspect(conn).has_table("alembic_version"):
        return set()
    return set(conn.execute(text("SELECT version_num FROM alembic_version")).scalars())


def listed(revisions: set[str]) -> str:
    return ", ".join(sorted(revisions))


def pending_migrations(engine: Engine) -> set[str]:
    """Revisions at head that the database does not have yet (empty when up to date)."""
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    heads = set(ScriptDirectory.from_config(alembic_config(engine)).get_heads())
    with engine.connect() as conn:
        current = set(MigrationContext.configure(conn).get_current_heads())
    return heads - current
