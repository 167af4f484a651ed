"""Fair share: each job's share (its owner's until now), the time up to which its run has been
charged to that share, and each share's decayed usage.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # SQLite adds a NOT NULL column only with a default; the jobs already there belong to
    # their owner's share. (SQLite keeps the empty default: every insert names the share.)
    op.add_column("jobs", sa.Column("share", sa.String(320), nullable=False, server_default=""))
    op.execute("UPDATE jobs SET share = owner")
    if op.get_bind().dialect.name != "sqlite":
        op.alter_column("jobs", "share", server_default=None)
    op.add_column("jobs", sa.Column("charged_at", sa.Float))
    op.create_index("ix_jobs_share_queue", "jobs", ["status", "share", "priority", "created_at"])
    op.create_index("ix_jobs_charged", "jobs", ["charged_at"])
    op.create_table(
        "share_usage",
        sa.Column("share", sa.String(320), primary_key=True),
        sa.Column("usage", sa.Float, nullable=False),
        sa.Column("at", sa.Float, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("share_usage")
    op.drop_index("ix_jobs_charged", "jobs")
    op.drop_index("ix_jobs_share_queue", "jobs")
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("charged_at")
        batch.drop_column("share")
