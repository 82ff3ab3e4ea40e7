"""The ingest service: rows into a warehouse table, then the change signal, through one code path.

``POST /api/tables/{table}/rows`` (:mod:`livebi.transports.ingest`) and the demo's live simulator
(:mod:`livebi.demo.live`, as the system: ``user=None``) both call :meth:`IngestService.insert`:

1. **Who**: the user must be allowed to query the warehouse (``warehouse_access``) and be listed
   for it in ``ingest_access``; a warehouse not listed there takes no rows (``ingest_disabled``).
2. **Where**: the table is looked up by name in the warehouse's schema (never interpolated), and
   its columns, nullability and defaults are read from the engine's catalogue (cached until the
   schema is re-read).
3. **What**: every row is checked and converted in a worker thread
   (:func:`~livebi.warehouse.row_values.prepare_rows`); any problem fails the whole request
   with one entry per problem, ``{"row", "column", "message"}``, and nothing is written.
4. All rows go in **one transaction** (:mod:`livebi.warehouse.writers`): a constraint the engine
   enforces fails them all.
5. Only after the commit, ``on_change(warehouse, {table})`` tells the live service (the table's
   bare name, lower case). A failing callback is logged and counted; the rows stay written and
   the request still succeeds, since retrying it would insert them twice.

Errors are :class:`IngestError` with a code, an HTTP status and, for bad rows, ``details``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any, Awaitable, Callable, Mapping, Sequence

from ..auth import User
from ..permissions import WarehouseAccess
from ..protocol import ErrorCode, ProtocolError
from ..warehouse.base import Table, Warehouse, WarehouseError
from ..warehouse.row_values import MAX_PROBLEMS, RowsInvalid, TargetTable, prepare_rows
from ..warehouse.writers import TableWriter, writer_for

log = logging.getLogger(__name__)

#: ``on_change(warehouse, tables)``: rows of ``tables`` (bare lower-case names) changed.
OnChange = Callable[[str, set[str]], Awaitable[None]]

#: HTTP status of each error code.
STATUS = {
    "invalid_body": 400,
    "invalid_rows": 400,
    "not_a_table": 400,
    "forbidden": 403,
    "unknown_warehouse": 404,
    "unknown_table": 404,
    "ingest_disabled": 409,
    "rows_rejected": 409,
    "too_large": 413,
    "warehouse_unavailable": 503,
}


class IngestError(Exception):
    """An insert that did not happen; nothing was written."""

    def __init__(self, code: str, message: str, *, details: list[dict[str, Any]] | None = None,
                 total: int | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.details = details or []
        self.total = total

    @property
    def status(self) -> int:
        return STATUS.get(self.code, 400)

    def body(self) -> dict[str, Any]:
        """The JSON answer: ``detail`` (the message, as every REST error has), ``code`` and,
        for bad rows, ``details`` and ``problems`` (their total, of which at most
        :data:`~livebi.warehouse.row_values.MAX_PROBLEMS` are listed)."""
        body: dict[str, Any] = {"detail": self.message, "code": self.code}
        if self.code == "invalid_rows":
            body["details"] = self.details
            body["problems"] = self.total if self.total is not None else len(self.details)
        return body


class IngestService:
    """Inserts rows for users (and the system) and signals each change once.

    Args:
        warehouses: the server's warehouses by name (DuckDB ones listed in ``access`` must have
            been opened read-write, see :func:`~livebi.warehouse.writers.opens_read_write`).
        access: warehouse name -> usernames allowed to insert (the ``ingest_access`` setting).
        on_change: awaited after each committed insert with ``(warehouse, {table})``.
        writer_urls: PostgreSQL writer URLs by warehouse (``ingest_urls``).
        warehouse_access: who may query which warehouse; ingest needs that too (None: everyone).
        max_rows: most rows per call (``ingest_max_rows``).
        on_internal_error: counts failures that are logged but not raised (a broken callback).

    Raises:
        ValueError: ``access`` or ``writer_urls`` name warehouses that are not configured, or a
            writer URL is given for a warehouse that is not PostgreSQL.
    """

    def __init__(
        self,
        warehouses: Mapping[str, Warehouse],
        access: Mapping[str, Sequence[str]],
        on_change: OnChange,
        *,
        writer_urls: Mapping[str, str] | None = None,
        warehouse_access: WarehouseAccess | None = None,
        max_rows: int = 10_000,
        statement_timeout_s: float = 30.0,
        on_internal_error: Callable[[], None] | None = None,
    ) -> None:
        writer_urls = dict(writer_urls or {})
        for setting, names in (("ingest_access", access), ("ingest_urls", writer_urls)):
            unknown = [name for name in names if name not in warehouses]
            if unknown:
                raise ValueError(f"{setting} names warehouses that are not configured: {', '.join(map(repr, unknown))} "
                                 f"(configured: {', '.join(warehouses)})")
        for name in writer_urls:
            if warehouses[name].dialect != "postgres":
                raise ValueError(f"ingest_urls names {name!r}, a {warehouses[name].dialect} warehouse: writer URLs are for PostgreSQL")
        self.warehouses = warehouses
        self.access = {name: frozenset(users) for name, users in access.items()}
        self.max_rows = max_rows
        self._on_change = on_change
        #: write_guard(warehouse, tables): an async context around each write (the live
        #: service's, so its change detector does not report livebi's own writes twice)
        self.write_guard: Callable[[str, set[str]], contextlib.AbstractAsyncContextManager[Any]] = (
            lambda warehouse, tables: contextlib.nullcontext())
        self._warehouse_access = warehouse_access
        self._on_internal_error = on_internal_error or (lambda: None)
        self._writers: dict[str, TableWriter] = {}
        self._refusals: dict[str, str] = {}  # listed warehouses that still cannot be written, and why
        for name in self.access:
            try:
                self._writers[name] = writer_for(warehouses[name], url=writer_urls.get(name),
                                                 statement_timeout_s=statement_timeout_s)
            except WarehouseError as exc:
                self._refusals[name] = exc.message
                log.warning("ingest into warehouse %s is refused: %s", name, exc.message)
        self._targets: dict[tuple[str, str], tuple[Table, TargetTable]] = {}

    def writable(self, warehouse: str) -> bool:
        """Whether rows can go into ``warehouse`` at all (listed, with a writer)."""
        return warehouse in self._writers

    # -- the one way in ----------------------------------------------------------------------

    async def insert(self, user: User | None, warehouse: str | None, table: str, rows: Any) -> dict[str, Any]:
        """Insert ``rows`` into ``table`` of ``warehouse`` in one transaction, then signal it.

        Args:
            user: the caller; None is the system (the demo simulator), which may write into any
                warehouse listed in ``ingest_access``.
            warehouse: its name; None: the user's default warehouse.
            rows: a list of JSON objects (column -> value).

        Returns:
            ``{"warehouse", "table", "inserted"}`` (the table's name as the schema spells it).

        Raises:
            IngestError: see :data:`STATUS` for the codes; nothing was written.
        """
        name = self.authorize(user, warehouse)
        writer = self._writers[name]
        if not isinstance(rows, list):
            raise IngestError("invalid_body", "rows must be a JSON array of row objects")
        if not rows:
            raise IngestError("invalid_body", f"rows is empty: send 1 to {self.max_rows} rows")
        if len(rows) > self.max_rows:
            raise IngestError("too_large", f"{len(rows)} rows; at most {self.max_rows} per request (ingest_max_rows)")
        found, target = await self._target(name, writer, table)
        try:
            batches = await asyncio.to_thread(prepare_rows, target, rows, writer.dialect, max_problems=MAX_PROBLEMS)
        except RowsInvalid as exc:
            raise IngestError("invalid_rows", str(exc), details=exc.problems, total=exc.total) from None
        # Shielded: a caller that goes away (a dropped client, shutdown) cannot leave rows
        # committed in the engine's thread without their change signal.
        inserted = await asyncio.shield(self._write(name, writer, found, target, batches))
        return {"warehouse": name, "table": found.name, "inserted": inserted}

    async def _write(self, name: str, writer: TableWriter, found: Table, target: TargetTable, batches: list) -> int:
        try:
            async with self.write_guard(name, {found.name.lower()}):
                inserted = await writer.insert(target, batches)
        except WarehouseError as exc:
            self._targets.pop((name, found.name.lower()), None)  # the table may have changed
            raise IngestError(exc.code, exc.message) from None
        await self._signal(name, found.name.lower())
        return inserted

    def authorize(self, user: User | None, warehouse: str | None) -> str:
        """The warehouse ``user`` may insert into when naming ``warehouse`` (None: the default);
        cheap, so the API checks it before reading a request's body.

        Raises:
            IngestError: ``unknown_warehouse``, ``forbidden`` or ``ingest_disabled``.
        """
        name = self._resolve(user, warehouse)
        self._writer_for(user, name)
        return name

    # -- steps -------------------------------------------------------------------------------

    def _resolve(self, user: User | None, warehouse: str | None) -> str:
        if user is None:
            name = warehouse if warehouse is not None else next(iter(self.warehouses), "")
            if name not in self.warehouses:
                raise IngestError("unknown_warehouse", f"no warehouse named {name!r}")
            return name
        if self._warehouse_access is None:
            name = warehouse if warehouse is not None else next(iter(self.warehouses), "")
            if name not in self.warehouses:
                raise IngestError("unknown_warehouse", f"no warehouse named {name!r}; available: {', '.join(self.warehouses)}")
            return name
        try:
            return self._warehouse_access.resolve(user, warehouse)
        except ProtocolError as exc:
            code = "forbidden" if exc.code is ErrorCode.forbidden else "unknown_warehouse"
            raise IngestError(code, exc.message) from None

    def _writer_for(self, user: User | None, name: str) -> TableWriter:
        allowed = self.access.get(name)
        if allowed is None:
            raise IngestError("ingest_disabled", f"warehouse {name!r} takes no rows: ingest_access does not list it")
        if user is not None and user.username not in allowed:
            raise IngestError("forbidden", f"you may not insert rows into warehouse {name!r}")
        writer = self._writers.get(name)
        if writer is None:
            raise IngestError("ingest_disabled", self._refusals.get(name, f"warehouse {name!r} cannot be written"))
        return writer

    async def _target(self, name: str, writer: TableWriter, table: str) -> tuple[Table, TargetTable]:
        """The table named ``table`` and its writable columns (cached per schema read)."""
        try:
            schema = await self.warehouses[name].schema()
        except WarehouseError as exc:
            raise IngestError("warehouse_unavailable", exc.message) from None
        found = schema.table(table)
        if found is None:
            raise IngestError("unknown_table", f"no table named {table!r} in warehouse {name!r}")
        key = (name, found.name.lower())
        cached = self._targets.get(key)
        if cached is not None and cached[0] is found:  # the same schema read: still current
            return cached
        try:
            target = await writer.describe(found)
        except WarehouseError as exc:
            raise IngestError(exc.code, exc.message) from None
        self._targets[key] = (found, target)
        return found, target

    async def _signal(self, warehouse: str, table: str) -> None:
        try:
            await self._on_change(warehouse, {table})
        except Exception:  # the rows are committed: report the broken listener, not a failed insert
            log.exception("the change signal for %s.%s failed after the rows were written", warehouse, table)
            self._on_internal_error()

    async def close(self) -> None:
        """Close the writers' own connections (before the warehouses close)."""
        for name, writer in self._writers.items():
            try:
                await writer.close()
            except Exception:  # one writer must not keep the others open
                log.exception("closing the ingest writer of %s failed", name)
                self._on_internal_error()
