"""Token versions, for revoking a user's tokens (logout, password change).

Development stores from before this migration may already have the table (it was first created
with create_all): it is then left as it is.

Revision ID: 0002_token_versions
Revises: 0001_baseline
"""

import sqlalchemy as sa
from alembic import op

revision = "0002_token_versions"
down_revision = "0001_baseline"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if "livebi_token_versions" in sa.inspect(op.get_bind()).get_table_names():
        return
    op.create_table(
        "livebi_token_versions",
        sa.Column("user_id", sa.String(32), sa.ForeignKey("livebi_users.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("livebi_token_versions")
