"""The database: engines for SQLite (default) and PostgreSQL, sessions, migrations.

SQLite runs in WAL mode with a busy timeout, and every transaction starts with
``BEGIN IMMEDIATE``: several worker processes share one file, and a transaction that
read first and then wants to write would otherwise fail with "database is locked"
instead of waiting its turn. PostgreSQL needs none of that; the same SQL runs on both.
The schema comes from Alembic migrations (``orchestrator/migrations``).
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool
from sqlmodel import Session

from orchestrator.errors import ConfigError

MIGRATIONS = Path(__file__).with_name("migrations")
_BUSY_TIMEOUT_MS = 30_000
_READ_ONLY = "firstmate_read_only"


def make_engine(url: str) -> Engine:
    """An engine for ``url`` (any SQLAlchemy URL), with SQLite tuned for many writers."""
    try:
        parsed = make_url(url)
    except Exception as exc:
        raise ConfigError(f"DATABASE_URL {url!r} is not a database URL: {exc}") from exc
    if parsed.get_backend_name() != "sqlite":
        return create_engine(url, pool_pre_ping=True)
    if parsed.database and parsed.database != ":memory:":
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(
        url,
        connect_args={"timeout": _BUSY_TIMEOUT_MS / 1000, "check_same_thread": False},
        poolclass=NullPool if not parsed.database or parsed.database == ":memory:" else None,
    )
    event.listen(engine, "connect", _sqlite_connect)
    event.listen(engine, "begin", _sqlite_begin)
    return engine


def _sqlite_connect(dbapi_connection: sqlite3.Connection, _record: Any) -> None:
    dbapi_connection.isolation_level = None  # we issue BEGIN ourselves
    cursor = dbapi_connection.cursor()
    cursor.execute(f"PRAGMA busy_timeout={_BUSY_TIMEOUT_MS}")
    _to_wal(cursor)
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def _to_wal(cursor: sqlite3.Cursor) -> None:
    """Switch to WAL. Two processes opening a brand-new file at once can both try, and
    the switch can answer "locked" without waiting: try again for a while."""
    deadline = time.monotonic() + _BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def _sqlite_begin(connection: Any) -> None:
    # Readers (``Store.reading``) take no write lock: in WAL mode they never wait.
    if connection.get_execution_options().get(_READ_ONLY):
        connection.exec_driver_sql("BEGIN")
    else:
        connection.exec_driver_sql("BEGIN IMMEDIATE")


def migrate(engine: Engine) -> None:
    """Bring the schema to the newest migration (idempotent)."""
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "head")


class Store:
    """Sessions on one database."""

    def __init__(self, url: str, *, migrate_schema: bool = True) -> None:
        self.url = url
        self.engine = make_engine(url)
        self._readers = self.engine.execution_options(**{_READ_ONLY: True})
        if migrate_schema:
            migrate(self.engine)

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session whose work is committed at the end of the block (rolled back on error)."""
        with Session(self.engine, expire_on_commit=False) as session:
            try:
                yield session
                session.commit()
            except BaseException:
                session.rollback()
                raise

    @contextmanager
    def reading(self) -> Iterator[Session]:
        """A session for reads only: on SQLite it does not queue for the write lock
        (every ``session`` does, so that a read-then-write never fails as "locked")."""
        with Session(self._readers, expire_on_commit=False) as session:
            try:
                yield session
            finally:
                session.rollback()

    def ping(self) -> None:
        """Raise when the database does not answer (readiness probes)."""
        with self.engine.connect() as connection:
            connection.exec_driver_sql("SELECT 1")

    def dispose(self) -> None:
        self.engine.dispose()
