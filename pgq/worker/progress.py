"""Progress reports from running tasks, written to the job row at a bounded rate.

A task may report in a tight loop; the row gets at most one write per
``min_interval`` seconds, and the latest value always arrives: a report that comes
too soon is held and written when the interval is over, and when the job ends first,
the latest report travels with the outcome (``latest``) and is written in the same
statement. Sync tasks report from their thread; the write happens on the worker's
event loop.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from typing import Any

import psycopg
from psycopg_pool import AsyncConnectionPool

from pgq.db import jobs
from pgq.job import Job
from pgq.logs import job_fields

log = logging.getLogger("pgq.worker")


class ProgressWriter:
    def __init__(
        self,
        pool: AsyncConnectionPool[psycopg.AsyncConnection[Any]],
        job: Job,
        worker_id: str,
        min_interval: float,
    ) -> None:
        self.pool = pool
        self.loop = asyncio.get_running_loop()
        self.job = job
        self.worker_id = worker_id
        self.min_interval = min_interval
        self._pending: tuple[float, str | None] | None = None
        self.latest: tuple[float, str | None] | None = None
        """The last report of the task (None: it reported nothing)."""
        self._written: tuple[float, str | None] | None = None
        self._last_write = -math.inf
        self._flush: asyncio.TimerHandle | None = None

    async def report(self, percent: float, message: str | None) -> None:
        """On the worker loop: write now, or hold it until the interval is over."""
        self.latest = self._pending = (percent, message)
        wait = self._last_write + self.min_interval - time.monotonic()
        if wait <= 0:
            await self._write()
        elif self._flush is None:
            self._flush = self.loop.call_later(wait, lambda: asyncio.ensure_future(self._write()))

    def report_threadsafe(self, percent: float, message: str | None) -> None:
        """From a sync task's thread: hand the report to the loop, do not wait."""
        self.latest = (percent, message)  # known before the task returns, whatever the loop does
        asyncio.run_coroutine_threadsafe(self.report(percent, message), self.loop)

    async def _write(self) -> None:
        self._flush = None
        if self._pending is None:
            return
        report, self._pending = self._pending, None
        percent, message = report
        self._last_write = time.monotonic()
        try:
            async with self.pool.connection() as conn:
                await jobs.set_progress(conn, self.job.id, self.job.attempt, self.worker_id, percent, message)
            self._written = report
        except psycopg.OperationalError as exc:
            log.warning(
                "job %d: progress not written (%s)", self.job.id, type(exc).__name__, extra=job_fields(self.job)
            )

    def unwritten(self) -> tuple[float, str | None] | None:
        """The latest report unless it is known to be in the row (for the outcome write)."""
        return None if self.latest is self._written else self.latest

    def close(self) -> None:
        """The job ended: a held report is not written on its own; the outcome carries
        ``latest`` (a write in flight that lands after the outcome changes nothing)."""
        if self._flush is not None:
            self._flush.cancel()
            self._flush = None
