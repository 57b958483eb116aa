"""Alembic environment: our models' metadata (a list, so other libraries' tables can join it)."""

from __future__ import annotations

from alembic import context
from sqlalchemy import engine_from_config, pool

import models
from bot.runtime.oauth import oauth_metadata
from models.inbox import inbox_metadata
from models.session import normalize_url

config = context.config
# slack_sdk's OAuth stores (installations, bots, states) keep their tables on a MetaData of their own.
target_metadata = [models.Base.metadata, oauth_metadata()]
# The full-text index (migration 0002, maintained by triggers) and its vectors (0013, computed by
# bot/search/vectors.py) live outside the models: autogenerate must not propose dropping them.
SEARCH_INDEX_TABLES = ("search_documents", "search_fts", "search_vector")


def include_object(obj, name, type_, reflected, compare_to) -> bool:  # type: ignore[no-untyped-def]
    return not (type_ == "table" and reflected and compare_to is None and str(name).startswith(SEARCH_INDEX_TABLES))


def run_migrations_offline() -> None:
    context.configure(
        url=normalize_url(config.get_main_option("sqlalchemy.url") or ""),
        target_metadata=target_metadata,
        literal_binds=True,
        render_as_batch=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    section = config.get_section(config.config_ini_section) or {}
    section["sqlalchemy.url"] = normalize_url(section.get("sqlalchemy.url", ""))
    engine = engine_from_config(section, prefix="sqlalchemy.", poolclass=pool.NullPool)
    with engine.begin() as conn:
        _run(conn)


def _run(connection) -> None:  # type: ignore[no-untyped-def]
    # The inbox is a table of the database on PostgreSQL only (migration 0007; SQLite's is a file of its own).
    inbox = [inbox_metadata] if connection.dialect.name == "postgresql" else []
    context.configure(
        connection=connection,
        target_metadata=[*target_metadata, *inbox],
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
        include_object=include_object,
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
