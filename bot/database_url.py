"""DATABASE_URL checked at start, before anything opens the database: what is wrong with it, in one line that
says what to do.

`check` reads the URL alone (a URL, a database PeerLearn supports, a SQLite file's folder that exists);
`connect_once` opens one connection with the driver itself. Both raise ConfigError for what will not fix
itself; `connect_once` raises DatabaseUnreachable when the server does not answer (refused, timed out), which
`serve` and `work` wait out, as they wait out an outage. No SQLAlchemy here: checked before the models load.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path
from urllib.parse import unquote, urlsplit, urlunsplit

from bot.config import ConfigError

SQLITE_SCHEMES = ("sqlite", "sqlite+pysqlite")
POSTGRES_SCHEMES = ("postgres", "postgresql", "postgresql+psycopg")
EXAMPLES = "sqlite:///peerlearn.db (a file) or postgresql://user:password@host:5432/database"
CONNECT_TIMEOUT = 5  # seconds, for the one connection at start
# libpq's words for a server that does not answer (yet): worth waiting for, unlike a database that is missing.
UNREACHABLE = (
    "connection refused",
    "timeout expired",
    "timed out",
    "could not translate host name",
    "failed to resolve host",
    "name or service not known",
    "temporary failure in name resolution",
    "no route to host",
    "network is unreachable",
    "server closed the connection",
    "connection reset",
    "the database system is",  # … starting up / shutting down / in recovery mode
    "too many clients",
    "could not connect",
)


class DatabaseUnreachable(Exception):
    """The database server does not answer (yet); the message says where and what to do."""


def shown(url: str) -> str:
    """The URL as it can be printed: without its password."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{parts.username or ''}:***@{host}"))


def sqlite_path(url: str) -> Path | None:
    """The SQLite file of a sqlite:/// URL (relative to the current folder), None for an in-memory database."""
    database = url.partition("://")[2].split("?", 1)[0][1:]  # sqlite:///x.db → x.db, sqlite:////srv/x.db → /srv/x.db
    return None if not database or database == ":memory:" else Path(unquote(database))


def check(url: str) -> None:
    """Raise ConfigError when the URL cannot work as written (checked without connecting)."""
    scheme, separator, rest = url.partition("://")
    if not separator or not scheme or not rest:
        raise ConfigError(f"DATABASE_URL is not a database URL. Use {EXAMPLES}.")
    scheme = scheme.lower()
    if scheme not in SQLITE_SCHEMES + POSTGRES_SCHEMES:
        backend = scheme.split("+", 1)[0]
        if backend in ("sqlite", "postgres", "postgresql"):  # another driver than the one PeerLearn brings
            raise ConfigError(f"DATABASE_URL: write {backend}://… without a driver ({scheme}://). Use {EXAMPLES}.")
        raise ConfigError(
            f"DATABASE_URL: PeerLearn stores its data in SQLite or PostgreSQL, not {backend}. Use {EXAMPLES}."
        )
    if scheme in SQLITE_SCHEMES:
        path = sqlite_path(url)
        if path is not None and not path.parent.is_dir():
            raise ConfigError(
                f"DATABASE_URL: the folder {path.parent.absolute()} for the SQLite file {path.name} does not exist. "
                "Create it, or fix DATABASE_URL."
            )


def connect_once(url: str) -> None:
    """Open (and close) one connection. Raises ConfigError when the database cannot be used as configured
    (missing, refused login, SQLite file that cannot be opened), DatabaseUnreachable when nobody answers."""
    check(url)
    path = sqlite_path(url) if url.lower().startswith("sqlite") else None
    if path is not None:
        if not path.exists():  # created by the first migration; do not leave an empty file behind a check
            if not os.access(path.parent, os.W_OK | os.X_OK):
                raise ConfigError(
                    f"DATABASE_URL: PeerLearn can't create {path.absolute()} (the folder is not writable)."
                )
            return
        try:
            sqlite3.connect(path, timeout=CONNECT_TIMEOUT).close()
        except sqlite3.Error as error:
            raise ConfigError(
                f"DATABASE_URL: PeerLearn can't open the SQLite file {path.absolute()}: {error}."
            ) from None
        return
    if path is None and url.lower().startswith("sqlite"):
        return  # in memory
    import psycopg  # only where the store is PostgreSQL

    try:
        psycopg.connect("postgresql://" + url.partition("://")[2], connect_timeout=CONNECT_TIMEOUT).close()
    except psycopg.Error as error:
        raise explain(url, error) from None


def explain(url: str, error: BaseException) -> ConfigError | DatabaseUnreachable:
    """What a failed connection to `url` means (the driver's error, or SQLAlchemy's around it), in one line."""
    reason = one_line_reason(error)
    where = shown(url)
    if any(words in reason.lower() for words in UNREACHABLE):
        return DatabaseUnreachable(
            f"the database at {where} does not answer ({reason}). Start it, or fix DATABASE_URL."
        )
    if "database" in reason and "does not exist" in reason:
        name = urlsplit(url).path.lstrip("/") or "the database"
        return ConfigError(f"DATABASE_URL: {reason} at {where}. Create it (createdb {name}), or fix DATABASE_URL.")
    return ConfigError(f"DATABASE_URL: the database at {where} refused PeerLearn ({reason}). Fix DATABASE_URL.")


def one_line_reason(error: BaseException) -> str:
    """libpq's reason ('connection refused', 'database "x" does not exist'), without the connection details."""
    error = getattr(error, "orig", None) or error  # SQLAlchemy wraps the driver's error
    first = (str(error).strip().splitlines() or [error.__class__.__name__])[0]
    reason = first.rpartition(" failed: ")[2] if " failed: " in first else first
    return reason.removeprefix("FATAL:").strip().rstrip(".") or error.__class__.__name__
