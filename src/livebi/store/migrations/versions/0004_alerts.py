"""Alerts: a user's condition on a dashboard widget's value, and where it stands.

Revision ID: 0004_alerts
Revises: 0003_dashboards_and_shares
"""

import sqlalchemy as sa
from alembic import op

revision = "0004_alerts"
down_revision = "0003_dashboards_and_shares"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "livebi_alerts",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("user_id", sa.String(32), sa.ForeignKey("livebi_users.id", ondelete="CASCADE"), nullable=False),
        sa.Column("dashboard_id", sa.String(32), sa.ForeignKey("livebi_dashboards.id", ondelete="CASCADE"), nullable=False),
        sa.Column("widget_id", sa.String(32), nullable=False),
        sa.Column("column", sa.String(200)),
        sa.Column("aggregate", sa.String(8), nullable=False),
        sa.Column("op", sa.String(2), nullable=False),
        sa.Column("threshold", sa.Float, nullable=False),
        sa.Column("label", sa.String(200), nullable=False),
        sa.Column("state", sa.String(8), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_fired_at", sa.DateTime(timezone=True)),
    )
    op.create_index("ix_livebi_alerts_user_id", "livebi_alerts", ["user_id"])
    op.create_index("ix_livebi_alerts_widget", "livebi_alerts", ["dashboard_id", "widget_id"])


def downgrade() -> None:
    op.drop_table("livebi_alerts")
