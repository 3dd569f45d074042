"""Job change notifications (pgq_job_events) and (queue, state) statistics for the API.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

from pathlib import Path

from pgq.migrations._sql import run_sql_file

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_sql_file(Path(__file__).with_suffix(".sql"))


def downgrade() -> None:
    raise NotImplementedError("pgq does not downgrade: restore a backup instead")
