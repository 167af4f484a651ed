"""The initial schema: submissions, jobs, events, notifications.

Revision ID: 0001
Revises:
Create Date: 2026-11-23
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "submissions",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("n_jobs", sa.Integer, nullable=False),
        sa.Column("owner", sa.String(320), nullable=False),
        sa.Column("digest", sa.JSON),
    )
    op.create_table(
        "jobs",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("owner", sa.String(320), nullable=False),
        sa.Column("submission", sa.String(32), sa.ForeignKey("submissions.id"), nullable=False),
        sa.Column("spec", sa.JSON, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("final", sa.Boolean, nullable=False),
        sa.Column("attempt", sa.Integer, nullable=False),
        sa.Column("max_attempts", sa.Integer, nullable=False),
        sa.Column("failures", sa.JSON, nullable=False),
        sa.Column("backend", sa.String(32)),
        sa.Column("backend_ref", sa.String(200)),
        sa.Column("failure_kind", sa.String(16)),
        sa.Column("failure_reason", sa.Text),
        sa.Column("stop_requested", sa.Boolean, nullable=False),
        sa.Column("priority", sa.Integer, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("launched_at", sa.Float),
        sa.Column("started_at", sa.Float),
        sa.Column("ended_at", sa.Float),
        sa.Column("next_attempt_at", sa.Float, nullable=False),
        sa.Column("output_uri", sa.Text),
        sa.Column("checkpoint_uri", sa.Text),
        sa.Column("metrics", sa.JSON),
        sa.Column("tags", sa.JSON, nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
    )
    op.create_index("ix_jobs_due", "jobs", ["status", "next_attempt_at"])
    op.create_index("ix_jobs_submission", "jobs", ["submission"])
    op.create_index("ix_jobs_owner", "jobs", ["owner"])
    op.create_table(
        "events",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("job_id", sa.Integer, sa.ForeignKey("jobs.id"), nullable=False),
        sa.Column("at", sa.Float, nullable=False),
        sa.Column("from_status", sa.String(16)),
        sa.Column("to_status", sa.String(16), nullable=False),
        sa.Column("attempt", sa.Integer, nullable=False),
        sa.Column("failure_kind", sa.String(16)),
        sa.Column("detail", sa.Text),
        sa.Column("final", sa.Boolean, nullable=False),
        sa.Column("notified", sa.Boolean, nullable=False),
    )
    op.create_index("ix_events_job", "events", ["job_id"])
    op.create_index("ix_events_at", "events", ["at"])
    op.create_index("ix_events_unnotified", "events", ["final", "notified"])
    op.create_table(
        "notifications",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("key", sa.String(64), nullable=False),
        sa.Column("channel", sa.String(16), nullable=False),
        sa.Column("recipient", sa.Text, nullable=False),
        sa.Column("job_id", sa.Integer, sa.ForeignKey("jobs.id")),
        sa.Column("submission", sa.String(32), sa.ForeignKey("submissions.id")),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("last_error", sa.Text),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("next_try_at", sa.Float, nullable=False),
        sa.Column("sent_at", sa.Float),
        sa.UniqueConstraint("key", "channel", "recipient", name="uq_notification_once"),
    )
    op.create_index("ix_notifications_due", "notifications", ["status", "next_try_at"])


def downgrade() -> None:
    for table in ("notifications", "events", "jobs", "submissions"):
        op.drop_table(table)
