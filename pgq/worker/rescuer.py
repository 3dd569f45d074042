"""The rescuer: jobs whose worker went silent get another attempt, or fail.

A worker that is SIGKILLed, loses its host or hangs stops heartbeating, and its
`running` jobs would wait forever. The leader runs ``run_once()`` every maintenance
interval: such a job goes to `retrying` (due at once; the lost attempt counts, so a
job that kills every worker it touches still ends `failed`), to `failed` when it was
the last attempt, or to `cancelled` when a cancel was waiting. A rescued attempt
that turns out to be alive can no longer record anything: completion writes are
guarded by (id, attempt, worker, state running).

After an outage the dead may only be slow: every worker's heartbeat is late, and its
queued outcomes are still being retried. So once the database is back, the rescuer
judges no one until every live worker has had a full rescue lease of database to
heartbeat in (at least twice), counted from the moment the slowest pool may reconnect
(``Outage.settled_in``): a job that finished during the outage is then recorded, not
rescued.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from typing import Any

import psycopg
from psycopg_pool import AsyncConnectionPool

from pgq.db import jobs, workers
from pgq.worker.outage import Outage

log = logging.getLogger("pgq.rescuer")

_BATCH = 500


@dataclasses.dataclass(frozen=True, slots=True)
class RescueReport:
    jobs: list[tuple[int, str]]
    """(job id, the state it was moved to), in id order."""
    dead_workers: list[str]
    held_back: float = 0.0
    """Seconds until the rescuer judges again after an outage (0: it judged now)."""


class Rescuer:
    def __init__(
        self,
        pool: AsyncConnectionPool[psycopg.AsyncConnection[Any]],
        rescue_after: float,
        outage: Outage | None = None,
    ) -> None:
        self.pool = pool
        self.rescue_after = rescue_after
        self.lease = dt.timedelta(seconds=rescue_after)
        self.outage = outage
        self._said_held = False

    async def run_once(self) -> RescueReport:
        """Rescue every stale job (in batches of 500) and remove dead workers' rows,
        unless the database came back less than a rescue lease ago."""
        if self.outage is not None and (wait := self.outage.settled_in(self.rescue_after)) > 0:
            if not self._said_held:
                self._said_held = True
                log.warning(
                    "rescue held back for %.1f s: the database was unreachable, so every worker's heartbeat "
                    "is late; live workers get time to reconnect and a full rescue lease (%s s) to check in",
                    wait,
                    self.rescue_after,
                )
            return RescueReport(jobs=[], dead_workers=[], held_back=wait)
        self._said_held = False
        rescued: list[tuple[int, str]] = []
        async with self.pool.connection() as conn:
            while True:
                rows = await jobs.rescue_stale(conn, self.lease, _BATCH)
                for row in rows:
                    log.warning(
                        "job %d rescued from silent worker %s: now %s",
                        *(row.id, row.lost_worker, row.state),
                        extra={"job_id": row.id},
                    )
                rescued.extend((row.id, row.state) for row in rows)
                if len(rows) < _BATCH:
                    break
            dead = await workers.prune_dead(conn, self.lease)
        if dead:
            log.warning("removed %d dead worker(s): %s", len(dead), ", ".join(dead))
        return RescueReport(jobs=rescued, dead_workers=dead)
