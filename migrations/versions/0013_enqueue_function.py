"""pgq.enqueue(): enqueue from SQL with the Python API's checks, in the caller's transaction.

Revision ID: 0013
Revises: 0012
"""

from __future__ import annotations

from pathlib import Path

from pgq.migrations._sql import run_sql_file

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_sql_file(Path(__file__).with_suffix(".sql"))


def downgrade() -> None:
    raise NotImplementedError("pgq does not downgrade: restore a backup instead")
