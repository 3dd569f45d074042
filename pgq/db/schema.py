"""The schema's own bookkeeping: which alembic revision the database is at."""

from __future__ import annotations

from pgq._db import SCHEMA_HEAD
from pgq._queries import QUERIES
from pgq.db.driver import Op

__all__ = ["SCHEMA_HEAD", "revision"]


def revision() -> Op[str | None]:
    """``schema_version_get``: the database's pgq revision (None: the table is empty)."""
    rows = yield QUERIES["schema_version_get"], {}
    return str(rows[0]["version_num"]) if rows else None
