"""Job change notifications name the task and carry progress and transaction; new jobs notify too.

Revision ID: 0012
Revises: 0007
"""

from __future__ import annotations

from pathlib import Path

from pgq.migrations._sql import run_sql_file

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_sql_file(Path(__file__).with_suffix(".sql"))


def downgrade() -> None:
    raise NotImplementedError("pgq does not downgrade: restore a backup instead")
