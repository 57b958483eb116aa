"""Declarative base, naming conventions and column types shared by every model."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import DateTime, MetaData, true
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import DeclarativeBase, Session
from sqlalchemy.sql import Executable
from sqlalchemy.types import TypeDecorator

# Stable constraint names, so Alembic migrations can refer to them on every database.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


MAX_ROW_ID = 2**31 - 1  # ids are INTEGER on PostgreSQL; SQLite's are wider


def parse_row_id(text: str) -> int | None:
    """A row id written as text (a button's value), None when it cannot name a row: not a number, or one
    no id column holds (a database would refuse to compare it, SQLite with an OverflowError)."""
    if not text.isascii() or not text.isdigit() or len(text) > len(str(MAX_ROW_ID)):
        return None
    number = int(text)
    return number if 0 < number <= MAX_ROW_ID else None


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes on every database (SQLite keeps no time zone, so it stores naive UTC)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTCDateTime column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map: ClassVar[dict[Any, Any]] = {datetime: UTCDateTime()}


def insert_once(session: Session, row: Base) -> bool:
    """Insert `row` unless a unique constraint says it exists already; True when inserted.

    A savepoint keeps the caller's transaction usable after a duplicate, which is how every
    write that a redelivered event or a double click could repeat stays idempotent.
    """
    try:
        with session.begin_nested():
            session.add(row)
        return True
    except IntegrityError:
        return False


def insert_if_new(session: Session, model: type[Base], **values: Any) -> bool:
    """INSERT … ON CONFLICT DO NOTHING: True when inserted, False when a unique constraint (or the primary
    key) says the row exists already. One statement where insert_once takes three (savepoint, insert,
    release); the row is not loaded into the session, so it suits rows the caller does not read back."""
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        statement: Executable = postgresql.insert(model).values(**values).on_conflict_do_nothing().returning(true())
    elif dialect == "sqlite":
        statement = sqlite.insert(model).values(**values).on_conflict_do_nothing().returning(true())
    else:
        raise NotImplementedError(f"insert_if_new on {dialect}")
    # RETURNING gives a row only when one was inserted (the driver's rowcount is not to be trusted here).
    return session.execute(statement).first() is not None
