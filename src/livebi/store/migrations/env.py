"""Alembic environment: livebi runs migrations on a connection it opened itself
(:mod:`livebi.store.migrate`), never from alembic.ini."""

from alembic import context

from livebi.store.schema import metadata

connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - only reachable by running alembic by hand
    raise RuntimeError("livebi's migrations run through livebi.store.migrate.upgrade()")

# render_as_batch: SQLite cannot ALTER most things in place; batch mode copies the table.
context.configure(connection=connection, target_metadata=metadata, render_as_batch=True, compare_type=True)
with context.begin_transaction():
    context.run_migrations()
