"""Alembic's entry: how migrations reach the database.

The application migrates through ``orchestrator.store.migrate``, which hands over an
open connection (``config.attributes["connection"]``) inside its own transaction, so
the migration and the caller's SQLite ``BEGIN IMMEDIATE`` are one unit. The ``alembic``
command line (``alembic.ini`` at the repository root) has no connection: it opens one on
``sqlalchemy.url`` or ``DATABASE_URL``. Offline mode (``alembic upgrade head --sql``)
prints the SQL instead.

Autogenerate renders our ``UTCDateTime`` as ``sa.DateTime(timezone=True)`` and
SQLModel's ``AutoString`` as ``sa.String``: migrations must not import the models,
whose types may move on while old migrations stay as they were.
"""

from __future__ import annotations

from logging.config import fileConfig
from typing import Any

from alembic import context
from alembic.autogenerate.api import AutogenContext
from sqlalchemy import Connection
from sqlalchemy.engine import make_url
from sqlmodel import SQLModel
from sqlmodel.sql.sqltypes import AutoString

import orchestrator.models
from orchestrator.config import load_settings
from orchestrator.store import make_engine

config = context.config
if config.config_file_name is not None:  # the `alembic` command: log what it does
    fileConfig(config.config_file_name, disable_existing_loggers=False)
target_metadata = SQLModel.metadata

# Any fixed number: the key of the PostgreSQL advisory lock that lets one process at a
# time migrate (several workers start together and each brings the schema up to date).
_MIGRATION_LOCK = 0x46_4D_4D_47  # "FMMG"


def render_item(type_: str, obj: Any, autogen_context: AutogenContext) -> str | bool:
    """Render our column types as plain SQLAlchemy types (``False``: Alembic's default)."""
    if type_ != "type":
        return False
    if isinstance(obj, orchestrator.models.UTCDateTime):
        return "sa.DateTime(timezone=True)"
    if isinstance(obj, AutoString):
        return f"sa.String(length={obj.length})" if obj.length else "sa.String()"
    return False


def _options(dialect_name: str) -> dict[str, Any]:
    return {
        "target_metadata": target_metadata,
        "render_item": render_item,
        "render_as_batch": dialect_name == "sqlite",
        "compare_type": True,
    }


def _url() -> str:
    # Only the developer's `alembic` command gets here; the application passes a connection.
    # Settings reads DATABASE_URL (or falls back to the embedded SQLite file).
    return config.get_main_option("sqlalchemy.url") or load_settings().db_url


def run_migrations_offline() -> None:
    """Emit the migrations as SQL on standard output (``alembic upgrade head --sql``)."""
    url = _url()
    context.configure(
        url=url,
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
        **_options(make_url(url).get_backend_name()),
    )
    with context.begin_transaction():
        context.run_migrations()


def _migrate(connection: Connection) -> None:
    context.configure(connection=connection, **_options(connection.dialect.name))
    with context.begin_transaction():
        if connection.dialect.name == "postgresql":
            # Held until the transaction ends; the next process then sees the new head.
            context.execute(f"SELECT pg_advisory_xact_lock({_MIGRATION_LOCK})")
        context.run_migrations()


def run_migrations_online() -> None:
    """Migrate on the caller's connection, or on a new one to ``DATABASE_URL``."""
    connection = config.attributes.get("connection")
    if connection is not None:
        _migrate(connection)
        return
    engine = make_engine(_url())
    try:
        with engine.begin() as own:
            _migrate(own)
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
