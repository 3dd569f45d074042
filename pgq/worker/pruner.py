"""The pruner: finished jobs leave the table after their retention, in small batches.

Run by the leader every maintenance interval. Deleting in batches of 1,000 (oldest
first, skipping locked rows) keeps every transaction short, so pruning never blocks
workers or holds back vacuum. Only final states are ever touched: the state is part
of each DELETE's condition.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import psycopg
from psycopg_pool import AsyncConnectionPool

from pgq.db import jobs, workflows
from pgq.settings import Settings

log = logging.getLogger("pgq.pruner")

_BATCH = 1000
_MAX_BATCHES = 50
"""Per state and run: at most 50,000 rows, so one run never takes long; the next continues."""


_MANUAL_VACUUM_DEAD_ROWS = 10_000


@dataclasses.dataclass(frozen=True, slots=True)
class PruneReport:
    deleted: dict[str, int]
    """Jobs deleted per final state."""
    results_cleared: int
    vacuumed: bool = False
    """Autovacuum is off on this server, so the pruner ran VACUUM itself."""


class Pruner:
    def __init__(self, pool: AsyncConnectionPool[psycopg.AsyncConnection[Any]], settings: Settings) -> None:
        self.pool = pool
        self.retention = {
            "succeeded": settings.retention_succeeded,
            "cancelled": settings.retention_cancelled,
            "failed": settings.retention_failed,
        }
        self.result_ttl = settings.result_ttl
        self._vacuum_denied = False

    async def run_once(self) -> PruneReport:
        deleted: dict[str, int] = {}
        async with self.pool.connection() as conn:
            for state, keep in self.retention.items():
                if keep is not None:
                    older_than = dt.timedelta(seconds=keep)
                    deleted[state] = await _batches(functools.partial(jobs.prune_finished, conn, state, older_than))
            if any(deleted.values()):
                shortest = min(keep for keep in self.retention.values() if keep is not None)
                await workflows.prune_empty(conn, dt.timedelta(seconds=shortest))
            cleared = 0
            if self.result_ttl is not None:
                older_than = dt.timedelta(seconds=self.result_ttl)
                cleared = await _batches(functools.partial(jobs.clear_old_results, conn, older_than))
            vacuumed = await self._vacuum_if_nobody_does(conn)
        if any(deleted.values()) or cleared:
            log.info("pruned finished jobs %s; cleared %d old results", deleted, cleared)
        return PruneReport(deleted=deleted, results_cleared=cleared, vacuumed=vacuumed)

    async def _vacuum_if_nobody_does(self, conn: psycopg.AsyncConnection[Any]) -> bool:
        """With autovacuum off server-wide, dead rows would pile up forever: vacuum here."""
        if self._vacuum_denied:
            return False
        need = await jobs.needs_manual_vacuum(conn, _MANUAL_VACUUM_DEAD_ROWS)
        if not need.needed:
            return False
        if not need.allowed:
            self._vacuum_denied = True
            log.warning("autovacuum is off and this worker may not VACUUM pgq.jobs: the table will bloat")
            return False
        await jobs.vacuum(conn)
        log.info("autovacuum is off on this server: vacuumed pgq.jobs")
        return True


async def _batches(statement: Callable[[int], Awaitable[int]]) -> int:
    """Run a batched statement until a batch comes back short; rows affected in all."""
    total = 0
    for _ in range(_MAX_BATCHES):
        count = await statement(_BATCH)
        total += count
        if count < _BATCH:
            break
    return total
