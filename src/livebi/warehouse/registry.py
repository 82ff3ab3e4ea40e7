"""Pick a warehouse connector by URL scheme.

- ``duckdb:///abs/path.duckdb`` (or ``duckdb:////abs/path.duckdb``): :class:`DuckDBWarehouse`;
  ``duckdb:///:memory:`` an in-memory database (tests).
- ``sqlite:///relative.db``, ``sqlite:////absolute.db`` (SQLAlchemy's convention):
  :class:`SQLiteWarehouse`.
- ``postgresql://user@host/db`` or ``postgres://...``: :class:`PostgresWarehouse`.

``schemas`` names the schemas a warehouse exposes (the ``warehouse_schemas`` setting); by
default DuckDB and SQLite expose ``main`` and PostgreSQL ``public`` (or the URL's
``?search_path=``).

Connectors are imported lazily so that a deployment without, say, asyncpg installed can still
serve DuckDB.
"""

from __future__ import annotations

from typing import Sequence

from livebi.warehouse.base import Warehouse

SCHEMES = ("duckdb", "sqlite", "postgresql", "postgres")


def open_warehouse(
    name: str,
    url: str,
    *,
    read_only: bool = True,
    progress_interval: float = 0.25,
    schemas: Sequence[str] | None = None,
) -> Warehouse:
    """Create the connector for ``url`` (no I/O happens until the first use).

    Args:
        name: the warehouse's name, as clients refer to it.
        url: where the data lives; the scheme picks the connector.
        read_only: open the database read-only (the default; queries are validated SELECTs).
        progress_interval: seconds between progress reports while a query runs.
        schemas: the schemas queries may read, in the order unqualified names resolve
            (None: the engine's default, see the module docstring).

    Raises:
        ValueError: the URL's scheme is not supported, or ``schemas`` names a system schema
            (or, for SQLite, anything but ``main``).
    """
    scheme = url.split(":", 1)[0].split("+", 1)[0].lower() if ":" in url else ""
    if scheme == "duckdb":
        from livebi.warehouse.duckdb import DuckDBWarehouse

        return DuckDBWarehouse(name, url, read_only=read_only, progress_interval=progress_interval, schemas=schemas)
    if scheme == "sqlite":
        from livebi.warehouse.sqlite import SQLiteWarehouse

        return SQLiteWarehouse(name, url, read_only=read_only, progress_interval=progress_interval, schemas=schemas)
    if scheme in ("postgresql", "postgres"):
        from livebi.warehouse.postgres import PostgresWarehouse

        return PostgresWarehouse(name, url, read_only=read_only, progress_interval=progress_interval, schemas=schemas)
    shown = url.split("@")[-1] if "@" in url else url  # never echo credentials
    raise ValueError(
        f"unsupported warehouse URL {shown!r} for {name!r}: expected one of "
        "duckdb:///path.duckdb, sqlite:///path.db, postgresql://user@host/db"
    )
