"""Statements on pgq.leases (the maintenance leader's lease)."""

from __future__ import annotations

import datetime as dt

from pgq._queries import QUERIES
from pgq.db import Conn


async def acquire(conn: Conn, name: str, worker_id: str, ttl: dt.timedelta) -> dt.datetime | None:
    """``lease_acquire``: take or renew; when this holder acquired it, or None when another holds it."""
    cur = await conn.execute(QUERIES["lease_acquire"], {"name": name, "worker_id": worker_id, "ttl": ttl})
    row = await cur.fetchone()
    return None if row is None else row[0]
