"""An index to find any job (finished ones too) by its idempotency key, for the dashboard.

Revision ID: 0011
Revises: 0008
"""

from __future__ import annotations

from pathlib import Path

from pgq.migrations._sql import run_sql_file

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_sql_file(Path(__file__).with_suffix(".sql"))


def downgrade() -> None:
    raise NotImplementedError("pgq does not downgrade: restore a backup instead")
