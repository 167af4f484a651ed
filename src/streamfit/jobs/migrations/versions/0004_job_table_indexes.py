"""Indexes for the server's job table: its sort orders (created, name, status) with the id
that breaks ties, and a status filter sorted by creation, so that a page of 100,000 jobs is
read from an index instead of sorted.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-07
"""

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

_INDEXES = {
    "ix_jobs_created": ["created_at", "id"],
    "ix_jobs_name": ["name", "id"],
    "ix_jobs_status_id": ["status", "id"],
    "ix_jobs_status_created": ["status", "created_at", "id"],
}


def upgrade() -> None:
    for name, columns in _INDEXES.items():
        op.create_index(name, "jobs", columns)


def downgrade() -> None:
    for name in _INDEXES:
        op.drop_index(name, "jobs")
