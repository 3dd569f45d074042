"""The heartbeat: every interval, refresh this worker's row and the jobs it holds.

One statement (``worker_heartbeat``) registers the worker, refreshes the heartbeat of
each job it still owns and reports which of them have a cancel request. What it learns
goes back to the jobs: a cancel request is delivered (a missed NOTIFY is caught here),
and a job that is no longer ours (rescued after missed heartbeats) is stopped, since
its outcome would be rejected anyway.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

import psycopg
from psycopg_pool import AsyncConnectionPool

from pgq.db import workers
from pgq.worker.outage import Outage
from pgq.worker.running import RunningJobs

WHAT = "sending the heartbeat"


@dataclasses.dataclass(frozen=True, slots=True)
class Identity:
    """What a worker's row in pgq.workers says about it."""

    id: str
    host: str
    pid: int
    queues: Sequence[str]
    concurrency: int
    schedules: Sequence[str] = ()
    """The schedules its app declares (a schedule no live worker declares is orphaned)."""


@dataclasses.dataclass(frozen=True, slots=True)
class HeartbeatReport:
    owned: list[int]
    """Jobs refreshed (still running on this worker)."""
    cancel_requested: list[int]
    lost: list[int]
    """Jobs held here that the database no longer gives to this worker."""


class Heartbeat:
    def __init__(
        self,
        pool: AsyncConnectionPool[psycopg.AsyncConnection[Any]],
        identity: Identity,
        jobs: RunningJobs,
        interval: float,
        outage: Outage,
        on_beat: Callable[[bool], None] | None = None,
    ) -> None:
        self.pool = pool
        self.on_beat = on_beat
        """Told of each beat: True when the database took it (the worker's metrics)."""
        self.identity = identity
        self.jobs = jobs
        self.interval = interval
        self.outage = outage

    async def run(self) -> None:
        """Beat every interval until cancelled. A failed beat is reported and the next
        one comes an interval later: the rescue lease (at least two intervals) allows
        for one miss."""
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.run_once()
            except Exception as exc:  # noqa: BLE001 - reported; the next beat tries again
                self.outage.failed(WHAT, exc)
                if self.on_beat is not None:
                    self.on_beat(False)

    async def run_once(self) -> HeartbeatReport:
        me = self.identity
        ids = self.jobs.ids()
        async with self.pool.connection() as conn:
            rows = await workers.heartbeat(
                conn,
                worker_id=me.id,
                host=me.host,
                pid=me.pid,
                queues=me.queues,
                concurrency=me.concurrency,
                schedules=me.schedules,
                job_ids=ids,
            )
        self.outage.ok(WHAT)
        if self.on_beat is not None:
            self.on_beat(True)
        owned = {row.id: row.cancel_requested for row in rows}
        cancels = [job_id for job_id in ids if owned.get(job_id)]
        lost = [job_id for job_id in ids if job_id not in owned]
        for job_id in cancels:
            self.jobs.cancel(job_id)
        for job_id in lost:
            self.jobs.taken(job_id)
        return HeartbeatReport(owned=sorted(owned), cancel_requested=cancels, lost=lost)
