"""The store's identity: one row with an id, written when the store is created (or migrated).

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-07
"""

import time
import uuid

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    table = op.create_table(
        "store_identity",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("created_at", sa.Float, nullable=False),
    )
    op.bulk_insert(table, [{"id": uuid.uuid4().hex, "created_at": time.time()}])


def downgrade() -> None:
    op.drop_table("store_identity")
