"""Numbered schema migrations of the job store (alembic), applied on every open."""
