"""The metadata store's tables, declared once for queries (SQLAlchemy Core).

The DDL itself comes from the Alembic migrations in ``store/migrations/versions``; a test checks
that a store migrated to the head revision matches these declarations exactly, so the two cannot
drift apart.
"""

from __future__ import annotations

from sqlalchemy import JSON, Boolean, Column, DateTime, Float, ForeignKey, Index, Integer, MetaData, String, Table, Text

metadata = MetaData()

users = Table(
    "livebi_users",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("username", String(64), nullable=False, unique=True),
    Column("password_hash", String(255), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

# A user's token version: tokens carry the version they were issued under and older ones are
# refused. No row means version 0.
token_versions = Table(
    "livebi_token_versions",
    metadata,
    Column("user_id", String(32), ForeignKey("livebi_users.id", ondelete="CASCADE"), primary_key=True),
    Column("version", Integer, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

queries = Table(
    "livebi_queries",
    metadata,
    Column("query_id", String(32), primary_key=True),
    Column("user_id", String(32), ForeignKey("livebi_users.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("question", Text),
    Column("sql", Text),
    Column("warehouse", String(128), nullable=False),
    Column("status", String(16), nullable=False),  # running | done | error | cancelled
    Column("engine", String(16)),
    Column("row_count", Integer),
    Column("error", JSON),
    Column("elapsed_ms", Float),
    Column("created_at", DateTime(timezone=True), nullable=False, index=True),
    Column("finished_at", DateTime(timezone=True)),
)

# A question's result as published (bounded by max_result_bytes), so the asker after a reload and
# the users it was shared with can open it later. Deleted with its question (retention).
query_results = Table(
    "livebi_query_results",
    metadata,
    Column("query_id", String(32), ForeignKey("livebi_queries.query_id", ondelete="CASCADE"), primary_key=True),
    Column("result", JSON, nullable=False),
    Column("stored_at", DateTime(timezone=True), nullable=False),
)

# Who a question was shared with (besides its asker, they may read its channel and result).
query_shares = Table(
    "livebi_query_shares",
    metadata,
    Column("query_id", String(32), ForeignKey("livebi_queries.query_id", ondelete="CASCADE"), primary_key=True),
    Column("user_id", String(32), ForeignKey("livebi_users.id", ondelete="CASCADE"), primary_key=True, index=True),
    Column("shared_by", String(32), nullable=False),
    Column("shared_at", DateTime(timezone=True), nullable=False),
)

dashboards = Table(
    "livebi_dashboards",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("owner_id", String(32), ForeignKey("livebi_users.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("title", String(200), nullable=False),
    Column("public", Boolean, nullable=False),
    Column("version", Integer, nullable=False),
    # the whole state (title, description, widgets...) as JSON: rewritten with every edit, in the
    # same transaction as the op log row of that edit
    Column("snapshot", JSON, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

dashboard_members = Table(
    "livebi_dashboard_members",
    metadata,
    Column("dashboard_id", String(32), ForeignKey("livebi_dashboards.id", ondelete="CASCADE"), primary_key=True),
    Column("user_id", String(32), ForeignKey("livebi_users.id", ondelete="CASCADE"), primary_key=True, index=True),
    Column("role", String(16), nullable=False),  # editor | viewer (the owner is on the dashboard row)
    Column("added_at", DateTime(timezone=True), nullable=False),
)

# Append-only log of applied ops: one row per version.
dashboard_ops = Table(
    "livebi_dashboard_ops",
    metadata,
    Column("dashboard_id", String(32), ForeignKey("livebi_dashboards.id", ondelete="CASCADE"), primary_key=True),
    Column("version", Integer, primary_key=True),
    Column("user_id", String(32), nullable=False),
    Column("op", JSON, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

# A user's condition on a dashboard widget's value (live/alerts.py). ``state`` is where the value
# stood at the last evaluation (above | below | unknown), so the alert fires once per crossing
# into its condition, also across restarts and processes.
alerts = Table(
    "livebi_alerts",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("user_id", String(32), ForeignKey("livebi_users.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("dashboard_id", String(32), ForeignKey("livebi_dashboards.id", ondelete="CASCADE"), nullable=False),
    Column("widget_id", String(32), nullable=False),
    Column("column", String(200)),  # None: the result's first numeric column
    Column("aggregate", String(8), nullable=False),  # last | first | max | min | sum | count
    Column("op", String(2), nullable=False),  # > | >= | < | <=
    Column("threshold", Float, nullable=False),
    Column("label", String(200), nullable=False),
    Column("state", String(8), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("last_fired_at", DateTime(timezone=True)),
    Index("ix_livebi_alerts_widget", "dashboard_id", "widget_id"),
)
