"""Dashboards (snapshot, members, append-only op log), stored results and query shares.

Revision ID: 0003_dashboards_and_shares
Revises: 0002_token_versions
"""

import sqlalchemy as sa
from alembic import op

revision = "0003_dashboards_and_shares"
down_revision = "0002_token_versions"
branch_labels = None
depends_on = None

_USERS = "livebi_users.id"


def upgrade() -> None:
    op.create_table(
        "livebi_query_results",
        sa.Column("query_id", sa.String(32), sa.ForeignKey("livebi_queries.query_id", ondelete="CASCADE"), primary_key=True),
        sa.Column("result", sa.JSON, nullable=False),
        sa.Column("stored_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "livebi_query_shares",
        sa.Column("query_id", sa.String(32), sa.ForeignKey("livebi_queries.query_id", ondelete="CASCADE"), primary_key=True),
        sa.Column("user_id", sa.String(32), sa.ForeignKey(_USERS, ondelete="CASCADE"), primary_key=True),
        sa.Column("shared_by", sa.String(32), nullable=False),
        sa.Column("shared_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_livebi_query_shares_user_id", "livebi_query_shares", ["user_id"])
    op.create_table(
        "livebi_dashboards",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("owner_id", sa.String(32), sa.ForeignKey(_USERS, ondelete="CASCADE"), nullable=False),
        sa.Column("title", sa.String(200), nullable=False),
        sa.Column("public", sa.Boolean, nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("snapshot", sa.JSON, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_livebi_dashboards_owner_id", "livebi_dashboards", ["owner_id"])
    op.create_table(
        "livebi_dashboard_members",
        sa.Column("dashboard_id", sa.String(32), sa.ForeignKey("livebi_dashboards.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("user_id", sa.String(32), sa.ForeignKey(_USERS, ondelete="CASCADE"), primary_key=True),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("added_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_livebi_dashboard_members_user_id", "livebi_dashboard_members", ["user_id"])
    op.create_table(
        "livebi_dashboard_ops",
        sa.Column("dashboard_id", sa.String(32), sa.ForeignKey("livebi_dashboards.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("version", sa.Integer, primary_key=True),
        sa.Column("user_id", sa.String(32), nullable=False),
        sa.Column("op", sa.JSON, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    for table in ("livebi_dashboard_ops", "livebi_dashboard_members", "livebi_dashboards",
                  "livebi_query_shares", "livebi_query_results"):
        op.drop_table(table)
