"""Writes job outcomes in batches: one UPDATE for every outcome that is waiting.

A commit costs a WAL flush, so one statement per finished job caps a worker at the
disk's flush rate. Outcomes are queued here and a single writer takes all of them at
once: while one batch is being written the next one gathers, so a busy worker writes
big batches and an idle one writes a lone outcome at once, with no timer to wait for.

Nothing is lost: the worker learns of each outcome when it is committed (or rejected
as late), a batch that hits a lost connection is retried with backoff, and the worker
keeps heartbeating jobs whose outcome is not written yet, so a long outage ends in a
rescue, never in a silently dropped result.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

import psycopg
from psycopg_pool import AsyncConnectionPool
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    stop_after_delay,
    wait_exponential,
    wait_random,
)

from pgq import _json
from pgq.db import jobs
from pgq.job import Job
from pgq.logs import job_fields
from pgq.worker.executor import Outcome

log = logging.getLogger("pgq.worker")

WRITE_RETRY_SECONDS = 300.0
"""How long a batch keeps being retried through an outage before its jobs are left to the rescuer."""


Progress = tuple[float, str | None]
_Pending = tuple[Job, Outcome, Progress | None]


def _kind(outcome: Outcome) -> str:
    if outcome.succeeded:
        return "succeeded"
    return "cancelled" if outcome.cancelled else "failed"


def _exception(state: RetryCallState) -> BaseException:
    error = state.outcome.exception() if state.outcome else None
    return error or RuntimeError("unknown error")


class Completer:
    """Batches outcomes of one worker into ``job_record_outcomes`` statements."""

    def __init__(
        self,
        pool: AsyncConnectionPool[psycopg.AsyncConnection[Any]],
        worker_id: str,
        *,
        max_batch: int,
        on_outage: Callable[[str, BaseException], None],
        on_recorded: Callable[[Job, Outcome, bool], None],
        on_lost: Callable[[Job, BaseException], None],
        on_written: Callable[[int, float], None] | None = None,
    ) -> None:
        self.pool = pool
        self.worker_id = worker_id
        self.max_batch = max_batch
        self._on_outage = on_outage
        self._on_recorded = on_recorded
        self._on_lost = on_lost
        self._on_written = on_written
        """Told the size and duration of each batch written (the worker's metrics)."""
        self._queue: list[_Pending] = []
        self._ready = asyncio.Event()
        self._closing = False
        self._retrying = AsyncRetrying(
            retry=retry_if_exception_type(psycopg.OperationalError),
            wait=wait_exponential(multiplier=0.1, max=5) + wait_random(0, 0.1),
            stop=stop_after_delay(WRITE_RETRY_SECONDS),
            before_sleep=lambda state: self._on_outage("recording job outcomes", _exception(state)),
            reraise=True,
        )

    @property
    def backlog(self) -> int:
        """Outcomes waiting for the writer (the worker claims nothing while this is a full batch)."""
        return len(self._queue)

    def submit(self, job: Job, outcome: Outcome, progress: Progress | None = None) -> None:
        """Queue an outcome, with the task's latest progress report if it is not written
        yet. ``on_recorded(job, outcome, accepted)`` follows once it is written
        (accepted False: rejected as late); ``on_lost`` if the writes gave up."""
        self._queue.append((job, outcome, progress))
        self._ready.set()

    async def run(self) -> None:
        """The single writer: runs until ``close()``, and writes what is queued before it ends."""
        while not (self._closing and not self._queue):
            await self._ready.wait()
            self._ready.clear()
            await self.flush()

    def close(self) -> None:
        """Stop once everything queued is written (the worker waits for that, with a time limit)."""
        self._closing = True
        self._ready.set()

    def unwritten(self) -> list[int]:
        """Ids of jobs whose outcome is still queued."""
        return [job.id for job, _, _ in self._queue]

    async def flush(self) -> None:
        """Write everything queued now, a batch at a time."""
        while self._queue:
            batch, self._queue = self._queue[: self.max_batch], self._queue[self.max_batch :]
            await self._write_batch(batch)

    async def _write_batch(self, batch: list[_Pending]) -> None:
        began = time.perf_counter()
        try:
            accepted = await self._write(batch)
        except Exception as exc:  # noqa: BLE001 - the worker learns of each job's loss
            if len(batch) > 1 and not isinstance(exc, psycopg.OperationalError):
                # One outcome the database refuses must not sink the others: write
                # them one by one, so only the refused one is left to the rescuer.
                for item in batch:
                    await self._write_batch([item])
                return
            for job, _, _ in batch:
                self._on_lost(job, exc)
            return
        if self._on_written is not None:
            self._on_written(len(batch), time.perf_counter() - began)
        for job, outcome, _ in batch:
            self._on_recorded(job, outcome, job.id in accepted)

    async def _write(self, batch: list[_Pending]) -> set[int]:
        rows = [_row(job, outcome, progress) for job, outcome, progress in batch]
        async for attempt in self._retrying.copy():
            with attempt:
                async with self.pool.connection() as conn:
                    moved = await jobs.record_outcomes(conn, self.worker_id, rows)
        return {m.id for m in moved}


def _row(job: Job, outcome: Outcome, progress: Progress | None) -> jobs.OutcomeRow:
    return jobs.OutcomeRow(
        id=job.id,
        attempt=job.attempt,
        kind=_kind(outcome),
        result=_json.dumps(outcome.result) if outcome.succeeded else None,
        error=None if outcome.error is None else _json.dumps(outcome.error),
        retry_in=outcome.retry_in,
        percent=None if progress is None else progress[0],
        message=None if progress is None else progress[1],
    )


def log_outcome(job: Job, outcome: Outcome) -> None:
    """One line saying how a recorded attempt ended."""
    where, extra = f"job {job.id} {job.task} attempt {job.attempt}/{job.max_attempts}", job_fields(job)
    if outcome.succeeded:
        log.info("%s succeeded", where, extra=extra)
        return
    if outcome.cancelled:
        log.info("%s cancelled while running", where, extra=extra)
        return
    assert outcome.error is not None
    error = f"{outcome.error['type']}: {outcome.error['message']}"
    if outcome.retry_in is not None:
        log.warning("%s failed (%s); retrying in %.1f s", where, error, outcome.retry_in, extra=extra)
    else:
        log.error("%s failed for good: %s", where, error, extra=extra)
