"""Leader election: one worker at a time runs maintenance (the rescuer, the pruner, the
scheduler).

A lease row in pgq.leases, not an advisory lock: it works through PgBouncer in
transaction mode and can be read with SQL. The leader renews it every maintenance
interval; it lasts three intervals, so when the leader dies another worker takes over
within that time, and at once when the leader stops cleanly (its row and lease are
deleted on the way out).

Every interval the leader renews the lease and runs every duty. A duty whose result
has a ``wake_in`` (seconds) asks to run again sooner: the scheduler does, for a
schedule that repeats faster than the interval. Only that duty runs early; the
others, like the rescuer and the pruner (retention), keep to the interval.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol, runtime_checkable

import psycopg
from psycopg_pool import AsyncConnectionPool

from pgq.db import leases
from pgq.worker.outage import Outage

log = logging.getLogger("pgq.leader")

LEASE_NAME = "maintenance"
WHAT = "running maintenance"

Duty = Callable[[], Awaitable[object]]

_MIN_WAKE = 0.05
"""The soonest a duty may ask to run again, so a row it cannot take yet is no busy loop."""


@runtime_checkable
class WakeHint(Protocol):
    """A duty's result that says when the duty wants to run next (None: at the interval)."""

    @property
    def wake_in(self) -> float | None: ...


class Leadership:
    def __init__(
        self,
        pool: AsyncConnectionPool[psycopg.AsyncConnection[Any]],
        worker_id: str,
        interval: float,
        duties: Sequence[Duty],
        outage: Outage | None = None,
    ) -> None:
        self.pool = pool
        self.worker_id = worker_id
        self.interval = interval
        self.ttl = dt.timedelta(seconds=3 * interval)
        self.duties = list(duties)
        self.is_leader = False
        self.outage = outage
        self._wake_at: dict[int, float] = {}
        """Duty index -> loop time at which it asked to run again before the next round."""

    async def run(self) -> None:
        """Every interval: hold (or try to take) the lease; as leader, do each duty.

        Between rounds, a duty that asked to run sooner runs alone at that time.
        """
        loop = asyncio.get_running_loop()
        while True:
            await self._guarded(self.tick)
            next_round = loop.time() + self.interval
            while (now := loop.time()) < next_round:
                early = min(self._wake_at.items(), key=lambda item: item[1], default=None)
                if early is None or early[1] >= next_round:
                    await asyncio.sleep(next_round - now)
                    break
                await asyncio.sleep(max(0.0, early[1] - now))
                await self._guarded(functools.partial(self._run_duty, early[0]))

    async def _guarded(self, step: Callable[[], Awaitable[None]]) -> None:
        """Run one step; a failure is reported (the lease simply lapses meanwhile) and
        the loop goes on: only stopping the worker ends leadership."""
        try:
            await step()
        except Exception as exc:
            if self.outage is not None:
                self.outage.failed(WHAT, exc)
            elif not isinstance(exc, psycopg.OperationalError):
                log.exception("maintenance round failed; it runs again next interval")
            return
        if self.outage is not None:
            self.outage.ok(WHAT)

    async def tick(self) -> None:
        """One round: acquire or renew, then run the duties if leading."""
        async with self.pool.connection() as conn:
            held = await leases.acquire(conn, LEASE_NAME, self.worker_id, self.ttl) is not None
        if held != self.is_leader:
            self.is_leader = held
            log.info("worker %s %s the maintenance leader", self.worker_id, "is now" if held else "is no longer")
        if not held:
            self._wake_at.clear()
            return
        for index in range(len(self.duties)):
            await self._run_duty(index)

    async def _run_duty(self, index: int) -> None:
        """Run one duty; remember when it wants to run again, if it said so."""
        duty = self.duties[index]
        self._wake_at.pop(index, None)
        try:
            result = await duty()
        except psycopg.OperationalError:
            raise
        except Exception:
            name = getattr(duty, "__qualname__", duty)
            log.exception("maintenance duty %s failed; it runs again next interval", name)
            return
        if isinstance(result, WakeHint) and result.wake_in is not None:
            loop = asyncio.get_running_loop()
            self._wake_at[index] = loop.time() + max(_MIN_WAKE, result.wake_in)
