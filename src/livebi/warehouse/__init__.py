"""Warehouses: connectors picked by URL, SQL safety, and the interface they share.

``open_warehouse(name, url)`` returns a :class:`Warehouse`; ``validate_select(sql, dialect=...,
schema=...)`` must approve every query before ``Warehouse.execute`` runs it.
"""

from livebi.warehouse.base import (
    Column,
    ColumnKind,
    ForeignKey,
    Progress,
    ProgressCallback,
    QueryResult,
    QueryTimeout,
    Schema,
    Table,
    Warehouse,
    WarehouseError,
)
from livebi.warehouse.registry import open_warehouse
from livebi.warehouse.safety import UnsafeSQL, validate_select

__all__ = [
    "Column",
    "ColumnKind",
    "ForeignKey",
    "Progress",
    "ProgressCallback",
    "QueryResult",
    "QueryTimeout",
    "Schema",
    "Table",
    "UnsafeSQL",
    "Warehouse",
    "WarehouseError",
    "open_warehouse",
    "validate_select",
]
