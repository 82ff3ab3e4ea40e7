"""Bring a metadata store's schema up to date with its Alembic migrations.

Called by :meth:`MetadataStore.open` on every start, so an operator never runs a migration by
hand. Three kinds of store are handled:

- a new, empty database: every revision runs, from the baseline up;
- a store of the release before Alembic (0.1.0: ``livebi_users`` and ``livebi_queries``, no
  ``alembic_version`` table): it is stamped at the baseline revision, which describes exactly
  that schema, and the later revisions add what came since, nothing lost;
- a store already under Alembic: the missing revisions run.

On PostgreSQL the upgrade holds a transaction-level advisory lock, so several nodes starting at
once migrate one after the other instead of racing.
"""

from __future__ import annotations

from importlib import resources

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

BASELINE = "0001_baseline"
#: Any key: two livebi processes migrating the same PostgreSQL store take turns on it.
_PG_LOCK_KEY = 0x6C6976656269  # "livebi"


def alembic_config(connection: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(resources.files("livebi.store") / "migrations"))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def head_revision() -> str:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def current_revision(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


def _upgrade(connection: Connection) -> None:
    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_LOCK_KEY})
    config = alembic_config(connection)
    tables = set(inspect(connection).get_table_names())
    if "alembic_version" not in tables and "livebi_users" in tables:
        command.stamp(config, BASELINE)  # a store of the release before Alembic
    command.upgrade(config, "head")


async def upgrade(engine: AsyncEngine) -> None:
    """Run every missing migration on the store behind ``engine`` (in one transaction where the
    backend allows DDL in transactions: PostgreSQL and SQLite both do)."""
    async with engine.begin() as connection:
        await connection.run_sync(_upgrade)
