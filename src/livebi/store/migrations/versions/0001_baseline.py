"""Baseline: the schema of livebi 0.1.0 (users and question history), the last release
before migrations. Stores of that release are stamped at this revision, not re-created.

Revision ID: 0001_baseline
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001_baseline"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "livebi_users",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("username", sa.String(64), nullable=False, unique=True),
        sa.Column("password_hash", sa.String(255), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "livebi_queries",
        sa.Column("query_id", sa.String(32), primary_key=True),
        sa.Column("user_id", sa.String(32), sa.ForeignKey("livebi_users.id", ondelete="CASCADE"), nullable=False),
        sa.Column("question", sa.Text),
        sa.Column("sql", sa.Text),
        sa.Column("warehouse", sa.String(128), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("engine", sa.String(16)),
        sa.Column("row_count", sa.Integer),
        sa.Column("error", sa.JSON),
        sa.Column("elapsed_ms", sa.Float),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True)),
    )
    op.create_index("ix_livebi_queries_user_id", "livebi_queries", ["user_id"])
    op.create_index("ix_livebi_queries_created_at", "livebi_queries", ["created_at"])


def downgrade() -> None:
    op.drop_table("livebi_queries")
    op.drop_table("livebi_users")
