"""Tuning jobs, and the link from each trial to the job that runs it. (Optuna's own tables
are made by streamfit.jobs.tuning.study when a tuning job first needs them.)

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "tuning_jobs",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("owner", sa.String(320), nullable=False),
        sa.Column("spec", sa.JSON, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("study", sa.String(200), nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("ended_at", sa.Float),
        sa.Column("trials", sa.Integer, nullable=False),
        sa.Column("completed", sa.Integer, nullable=False),
        sa.Column("failed", sa.Integer, nullable=False),
        sa.Column("best_trial", sa.Integer),
        sa.Column("best_job_id", sa.Integer, sa.ForeignKey("jobs.id")),
        sa.Column("best_value", sa.Float),
        sa.Column("best_params", sa.JSON),
        sa.Column("stop_requested", sa.Boolean, nullable=False),
        sa.Column("lease_until", sa.Float),
        sa.Column("version", sa.Integer, nullable=False),
    )
    op.create_index("ix_tuning_jobs_status", "tuning_jobs", ["status"])
    op.create_table(
        "tuning_trials",
        sa.Column("tuning_id", sa.Integer, sa.ForeignKey("tuning_jobs.id"), primary_key=True),
        sa.Column("trial", sa.Integer, primary_key=True),
        sa.Column("job_id", sa.Integer, sa.ForeignKey("jobs.id"), nullable=False, unique=True),
    )


def downgrade() -> None:
    op.drop_table("tuning_trials")
    op.drop_index("ix_tuning_jobs_status", table_name="tuning_jobs")
    op.drop_table("tuning_jobs")
