"""Runs a revision's .sql file as one multi-statement script on the migration connection."""

from __future__ import annotations

from pathlib import Path
from typing import LiteralString

import psycopg
from alembic import op


def run_sql_file(path: Path) -> None:
    raw = op.get_bind().connection.driver_connection
    assert isinstance(raw, psycopg.Connection)
    # A revision file shipped with pgq, never user input.
    script: LiteralString = path.read_text(encoding="utf-8")
    raw.execute(script)
