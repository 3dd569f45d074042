"""Leader election: one worker at a time runs maintenance (the rescuer, and later more).

A lease row in pgq.leases, not an advisory lock: it works through PgBouncer in
transaction mode and can be read with SQL. The leader renews it every maintenance
interval; it lasts three intervals, so when the leader dies another worker takes over
within that time, and at once when the leader stops cleanly (its row and lease are
deleted on the way out).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import psycopg
from psycopg_pool import AsyncConnectionPool

from pgq._queries import QUERIES

log = logging.getLogger("pgq.leader")

LEASE_NAME = "maintenance"

Duty = Callable[[], Awaitable[object]]


class Leadership:
    def __init__(
        self,
        pool: AsyncConnectionPool[psycopg.AsyncConnection[Any]],
        worker_id: str,
        interval: float,
        duties: Sequence[Duty],
    ) -> None:
        self.pool = pool
        self.worker_id = worker_id
        self.interval = interval
        self.ttl = dt.timedelta(seconds=3 * interval)
        self.duties = list(duties)
        self.is_leader = False

    async def run(self) -> None:
        """Every interval: hold (or try to take) the lease; as leader, do each duty."""
        while True:
            # A database outage is logged by the worker; the lease simply lapses meanwhile.
            with contextlib.suppress(psycopg.OperationalError):
                await self.tick()
            await asyncio.sleep(self.interval)

    async def tick(self) -> None:
        """One round: acquire or renew, then run the duties if leading."""
        params = {"name": LEASE_NAME, "worker_id": self.worker_id, "ttl": self.ttl}
        async with self.pool.connection() as conn:
            held = await (await conn.execute(QUERIES["lease_acquire"], params)).fetchone() is not None
        if held != self.is_leader:
            self.is_leader = held
            log.info("worker %s %s the maintenance leader", self.worker_id, "is now" if held else "is no longer")
        if not held:
            return
        for duty in self.duties:
            try:
                await duty()
            except psycopg.OperationalError:
                raise
            except Exception:
                name = getattr(duty, "__qualname__", duty)
                log.exception("maintenance duty %s failed; it runs again next interval", name)
