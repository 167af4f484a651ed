"""The jobs that resume a multi-fidelity trial at its later rungs (its first job, rung 0,
stays in tuning_trials).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "tuning_promotions",
        sa.Column("tuning_id", sa.Integer, sa.ForeignKey("tuning_jobs.id"), primary_key=True),
        sa.Column("trial", sa.Integer, primary_key=True),
        sa.Column("rung", sa.Integer, primary_key=True),
        sa.Column("job_id", sa.Integer, sa.ForeignKey("jobs.id"), nullable=False, unique=True),
    )


def downgrade() -> None:
    op.drop_table("tuning_promotions")
