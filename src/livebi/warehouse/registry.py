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

from pathlib import Path
from typing import Callable, Sequence

from livebi.warehouse.base import Warehouse

SCHEMES = ("duckdb", "sqlite", "postgresql", "postgres")


def open_warehouse(
    name: str,
    url: str,
    *,
    read_only: bool = True,
    allow_privileged_role: bool = False,
    # Progress
    progress_interval: float = 0.25,
    schemas: Sequence[str] | None = None,
    # Engine limits
    duckdb_memory_limit: str = "",
    duckdb_memory_limit_at_most_mb: int = 0,
    duckdb_threads: int = 0,
    duckdb_temp_directory: str | Path | None = None,
    duckdb_max_temp_directory_size: str = "4GB",
    postgres_work_mem: str = "64MB",
    postgres_temp_file_limit: str = "1GB",
    sqlite_hard_heap_limit: int = 0,
    sqlite_function_allowed: Callable[[str], bool] | None = None,
) -> Warehouse:
    """Create the connector for ``url`` (no I/O happens until the first use).

    Args:
        name: the warehouse's name, as clients refer to it.
        url: where the data lives; the scheme picks the connector.
        read_only: open the database read-only (the default; queries are validated SELECTs).
        allow_privileged_role: PostgreSQL: serve with a role that can write (warn, not refuse).
        progress_interval: seconds between progress reports while a query runs.
        schemas: the schemas queries may read, in the order unqualified names resolve
            (None: the engine's default, see the module docstring).
        duckdb_memory_limit, duckdb_threads: DuckDB ``memory_limit`` (empty: a quarter of RAM,
            at most ``duckdb_memory_limit_at_most_mb`` when > 0) and ``threads`` (0: the usable
            CPUs), locked when the database opens.
        duckdb_temp_directory, duckdb_max_temp_directory_size: where and how much DuckDB may
            spill; no directory or an empty size: no spilling.
        postgres_work_mem, postgres_temp_file_limit: per-query PostgreSQL limits (see
            :class:`~livebi.warehouse.postgres.PostgresWarehouse`).
        sqlite_hard_heap_limit: SQLite ``hard_heap_limit`` in bytes (process-wide; 0: off).
        sqlite_function_allowed: which SQL functions SQLite queries may call (None: all but
            extension loading and file access).

    Raises:
        ValueError: the URL's scheme is not supported, or ``schemas`` names a system schema
            (or, for SQLite, anything but ``main``).
    """
    scheme = url.split(":", 1)[0].split("+", 1)[0].lower() if ":" in url else ""
    if scheme == "duckdb":
        from livebi.warehouse.duckdb import DuckDBWarehouse

        return DuckDBWarehouse(
            name, url, read_only=read_only, progress_interval=progress_interval, schemas=schemas,
            memory_limit=duckdb_memory_limit, memory_limit_at_most_mb=duckdb_memory_limit_at_most_mb,
            threads=duckdb_threads,
            temp_directory=duckdb_temp_directory if duckdb_max_temp_directory_size else None,
            max_temp_directory_size=duckdb_max_temp_directory_size or "0B",
        )
    if scheme == "sqlite":
        from livebi.warehouse.sqlite import SQLiteWarehouse

        return SQLiteWarehouse(
            name, url, read_only=read_only, progress_interval=progress_interval, schemas=schemas,
            function_allowed=sqlite_function_allowed, hard_heap_limit=sqlite_hard_heap_limit,
        )
    if scheme in ("postgresql", "postgres"):
        from livebi.warehouse.postgres import PostgresWarehouse

        return PostgresWarehouse(
            name, url, read_only=read_only, progress_interval=progress_interval, schemas=schemas,
            allow_privileged_role=allow_privileged_role,
            work_mem=postgres_work_mem, temp_file_limit=postgres_temp_file_limit,
        )
    shown = url.split("@")[-1] if "@" in url else url  # never echo credentials
    raise ValueError(
        f"unsupported warehouse URL {shown!r} for {name!r}: expected one of "
        "duckdb:///path.duckdb, sqlite:///path.db, postgresql://user@host/db"
    )
