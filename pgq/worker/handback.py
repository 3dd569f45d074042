"""Hand-back: jobs this worker will not finish go back to their queue at once.

Two cases: jobs interrupted by shutdown, and jobs claimed ahead that waited too long
for a slot (the slots are busy with slower jobs). The attempt is not counted, so a
deploy never uses up a job's attempts; a job with a pending cancel request ends
`cancelled` instead of running again. If the database cannot be reached the jobs stay
`running` and the rescuer takes them after the rescue lease: delayed, never lost.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from typing import Any

import psycopg
from psycopg_pool import AsyncConnectionPool

from pgq.db import jobs
from pgq.worker.outage import describe

log = logging.getLogger("pgq.worker")

AT_SHUTDOWN = "unfinished at shutdown"
STALE_CLAIMS = "claimed ahead, the slots are busy with slower jobs"
UNSTARTED_AT_SHUTDOWN = "claimed ahead, not started before shutdown"


@dataclasses.dataclass(frozen=True, slots=True)
class HandBackReport:
    queued: list[int]
    cancelled: list[int]
    """A cancel request was pending: ended instead of queued."""


class HandBack:
    def __init__(self, pool: AsyncConnectionPool[psycopg.AsyncConnection[Any]], worker_id: str) -> None:
        self.pool = pool
        self.worker_id = worker_id
        self._background: set[asyncio.Task[Any]] = set()

    async def run_once(
        self, job_ids: list[int], why: str = AT_SHUTDOWN, level: int = logging.WARNING
    ) -> HandBackReport:
        """Put these jobs (still running on this worker) back to 'queued'; log what happened."""
        try:
            async with self.pool.connection() as conn:
                moved = await jobs.requeue_unfinished(conn, job_ids, self.worker_id)
        except Exception as exc:  # noqa: BLE001 - the rescuer takes them; say so
            log.error("could not hand back jobs %s (%s); they stay running until rescued", job_ids, describe(exc))
            return HandBackReport(queued=[], cancelled=[])
        queued = [m.id for m in moved if m.state == "queued"]
        cancelled = [m.id for m in moved if m.state == "cancelled"]
        if queued:
            log.log(level, "handed %d job(s) back to their queue (%s): %s", len(queued), why, _ids(queued))
        if cancelled:
            log.info("job(s) %s cancelled: a cancel request was pending when they stopped", _ids(cancelled))
        return HandBackReport(queued=queued, cancelled=cancelled)

    def soon(self, job_ids: list[int], why: str, level: int = logging.INFO) -> None:
        """Hand back in the background (from a callback that cannot wait); ``drain`` waits."""
        task = asyncio.create_task(self.run_once(job_ids, why, level))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def drain(self) -> None:
        """Wait for the background hand-backs (before the pool closes)."""
        await asyncio.gather(*self._background)


def _ids(job_ids: list[int]) -> str:
    return ", ".join(str(job_id) for job_id in job_ids)
