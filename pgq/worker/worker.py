"""The worker: claim ready jobs into free slots, run them, record how they ended.

One asyncio loop per process. Wake-ups come from LISTEN (instant), from a finished
job when more work may be waiting, from the next scheduled job's due time, and from
the poll interval, which is the fallback that keeps everything moving when NOTIFY
never arrives (PgBouncer in transaction mode, a broken LISTEN connection).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import signal
import socket
import threading
import time
import uuid
from collections.abc import Sequence
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_delay, wait_exponential, wait_random

from pgq import _db, _json
from pgq._queries import QUERIES
from pgq.app import App
from pgq.errors import ConfigError
from pgq.job import Job
from pgq.settings import Settings
from pgq.worker.executor import Outcome, execute
from pgq.worker.listener import Listener

log = logging.getLogger("pgq.worker")

_PROMOTE_BATCH = 1000
_WRITE_RETRY_SECONDS = 300.0


def _new_worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


@dataclasses.dataclass(slots=True)
class _Running:
    job: Job
    task: asyncio.Task[None]


class Worker:
    """Runs the jobs of ``app`` from ``queues`` (default: every queue its tasks name)."""

    def __init__(
        self,
        app: App,
        *,
        queues: Sequence[str] | None = None,
        concurrency: int | None = None,
        poll_interval: float | None = None,
        listen: bool | None = None,
        shutdown_timeout: float | None = None,
        heartbeat_interval: float | None = None,
    ) -> None:
        if not app.tasks:
            raise ConfigError("the app has no tasks registered: a worker for it could only fail jobs")
        base = app.settings
        settings = dataclasses.replace(
            base,
            queues=tuple(queues) if queues else (base.queues or app.task_queues()),
            concurrency=concurrency if concurrency is not None else base.concurrency,
            poll_interval=poll_interval if poll_interval is not None else base.poll_interval,
            listen=listen if listen is not None else base.listen,
            shutdown_timeout=shutdown_timeout if shutdown_timeout is not None else base.shutdown_timeout,
            heartbeat_interval=heartbeat_interval if heartbeat_interval is not None else base.heartbeat_interval,
        )  # replace() runs Settings validation on the merged values
        self.app = app
        self.settings: Settings = settings
        self.queues = list(settings.queues)
        self.id = _new_worker_id()
        self._running: dict[int, _Running] = {}
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()
        self._hurry = asyncio.Event()
        self._more_work = True
        self._pool: AsyncConnectionPool[psycopg.AsyncConnection[Any]] | None = None
        self.jobs_done = 0

    # -- control ------------------------------------------------------------------

    def wake(self) -> None:
        """Something may be claimable: a NOTIFY arrived or a slot freed up."""
        self._more_work = True
        self._wake.set()

    def stop(self) -> None:
        """Stop claiming; running jobs get shutdown_timeout seconds to finish.

        A second call (a second Ctrl-C) stops waiting and hands the jobs back now.
        """
        if self._stopping.is_set():
            log.warning("worker %s: stopping now, without waiting for running jobs", self.id)
            self._hurry.set()
        else:
            log.info(
                "worker %s stopping: waiting up to %s s for %d running job(s)",
                self.id,
                self.settings.shutdown_timeout,
                len(self._running),
            )
        self._stopping.set()
        self._wake.set()

    # -- main loop ----------------------------------------------------------------

    async def run(self) -> None:
        """Work until ``stop()`` (or SIGTERM/SIGINT when run in the main thread)."""
        dsn = self.app.dsn
        conn = await _db.connect_async(dsn)
        try:
            await _db.check_schema_async(conn)
        finally:
            await conn.close()
        self._pool = AsyncConnectionPool(
            dsn,
            min_size=1,
            max_size=max(2, min(self.settings.concurrency + 1, 10)),
            open=False,
            kwargs={"autocommit": True},
            name="pgq-worker",
        )
        await self._pool.open(wait=True, timeout=30)
        self._signal_handlers(install=True)
        background: list[asyncio.Task[None]] = [asyncio.create_task(self._heartbeat_loop())]
        if self.settings.listen:
            listener = Listener(dsn, self.queues, self.wake, self.settings.poll_interval)
            background.append(asyncio.create_task(listener.run()))
            mode = "LISTEN/NOTIFY"
        else:
            mode = "polling only (LISTEN disabled)"
        log.info(
            "worker %s started: queues=%s concurrency=%d wake-up=%s poll=%ss tasks=%s",
            self.id,
            ",".join(self.queues),
            self.settings.concurrency,
            mode,
            self.settings.poll_interval,
            ",".join(sorted(self.app.tasks)) or "none",
        )
        try:
            while not self._stopping.is_set():
                sleep_for = await self._fill_slots()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), sleep_for)
                self._wake.clear()
        finally:
            await self._shutdown(background)

    async def _fill_slots(self) -> float:
        """Claim jobs into free slots; return how long to sleep before looking again."""
        poll = self.settings.poll_interval
        free = self.settings.concurrency - len(self._running)
        if free <= 0:
            return poll
        try:
            jobs, next_due_in = await self._claim(free)
        except psycopg.OperationalError as exc:
            log.warning("claiming failed (%s); retrying in %s s", _db.unavailable(self.app.dsn, exc), poll)
            return poll
        for job in jobs:
            self._start(job)
        # A full batch means more may be waiting: look again as soon as a slot frees.
        self._more_work = len(jobs) == free
        if next_due_in is not None:
            return max(0.0, min(poll, next_due_in))
        return poll

    async def _claim(self, limit: int) -> tuple[list[Job], float | None]:
        """Promote due jobs, claim, and read the next due time: one round trip."""
        assert self._pool is not None
        async with self._pool.connection() as conn, conn.pipeline():
            promote = conn.cursor()
            claim = conn.cursor(row_factory=dict_row)
            due = conn.cursor()
            await promote.execute(QUERIES["job_promote_due"], {"limit": _PROMOTE_BATCH})
            await claim.execute(QUERIES["job_claim"], {"queues": self.queues, "limit": limit, "worker_id": self.id})
            await due.execute(QUERIES["job_next_due_in"], {"queues": self.queues})
            rows = await claim.fetchall()
            due_row = await due.fetchone()
        jobs = sorted((Job(**r) for r in rows), key=lambda j: (j.priority, j.run_at, j.id))
        return jobs, (due_row[0] if due_row else None)

    def _start(self, job: Job) -> None:
        log.info("job %d %s started (attempt %d/%d)", job.id, job.task, job.attempt, job.max_attempts)
        task = asyncio.create_task(self._process(job), name=f"pgq-job-{job.id}")
        self._running[job.id] = _Running(job, task)

    async def _process(self, job: Job) -> None:
        try:
            outcome = await execute(self.app, job, self.id)
            await self._record(job, outcome)
            if outcome.retry_in is not None:
                self._wake.set()  # recompute the next due time, which may now be this retry
        except Exception:
            # The database stayed unreachable past the write retries: the job stays
            # 'running' and its heartbeat stops, so it is rescued, never lost.
            log.exception("job %d %s: could not record its outcome", job.id, job.task)
        finally:
            self._running.pop(job.id, None)
            self.jobs_done += 1
            if self._more_work:
                self._wake.set()

    async def _record(self, job: Job, outcome: Outcome) -> None:
        """Write the outcome, guarded by (id, attempt, worker); retried on lost connections."""
        if outcome.succeeded:
            query = QUERIES["job_set_succeeded"]
            params: dict[str, Any] = {"result": Jsonb(outcome.result, dumps=_json.dumps)}
        else:
            query = QUERIES["job_set_failed"]
            params = {
                "error": Jsonb(outcome.error, dumps=_json.dumps),
                "retry_in": None if outcome.retry_in is None else f"{outcome.retry_in} seconds",
            }
        params.update(id=job.id, attempt=job.attempt, worker_id=self.id)
        assert self._pool is not None
        pool = self._pool
        async for attempt in AsyncRetrying(
            retry=retry_if_exception_type(psycopg.OperationalError),
            wait=wait_exponential(multiplier=0.1, max=5) + wait_random(0, 0.1),
            stop=stop_after_delay(_WRITE_RETRY_SECONDS),
            reraise=True,
        ):
            with attempt:
                async with pool.connection() as conn:
                    row = await (await conn.execute(query, params)).fetchone()
        if row is None:
            log.warning(
                "job %d attempt %d: outcome not recorded, the job is no longer running on this worker "
                "(cancelled, rescued or handed back meanwhile)",
                job.id,
                job.attempt,
            )
        else:
            self._log_outcome(job, outcome)

    @staticmethod
    def _log_outcome(job: Job, outcome: Outcome) -> None:
        where = f"job {job.id} {job.task} attempt {job.attempt}/{job.max_attempts}"
        if outcome.succeeded:
            log.info("%s succeeded", where)
            return
        assert outcome.error is not None
        error = f"{outcome.error['type']}: {outcome.error['message']}"
        if outcome.retry_in is not None:
            log.warning("%s failed (%s); retrying in %.1f s", where, error, outcome.retry_in)
        else:
            log.error("%s failed for good: %s", where, error)

    async def _heartbeat_loop(self) -> None:
        while True:
            await asyncio.sleep(self.settings.heartbeat_interval)
            if not self._running or self._pool is None:
                continue
            try:
                async with self._pool.connection() as conn:
                    await conn.execute(QUERIES["job_heartbeat"], {"ids": list(self._running), "worker_id": self.id})
            except psycopg.OperationalError as exc:
                log.warning("heartbeat failed (%s); will try again", _db.unavailable(self.app.dsn, exc))

    # -- shutdown -----------------------------------------------------------------

    def _signal_handlers(self, *, install: bool) -> None:
        """SIGTERM/SIGINT stop the worker (only the main thread may handle signals)."""
        if threading.current_thread() is not threading.main_thread():
            return
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            if install:
                loop.add_signal_handler(sig, self.stop)
            else:
                loop.remove_signal_handler(sig)

    async def _shutdown(self, background: list[asyncio.Task[None]]) -> None:
        pending: set[asyncio.Task[Any]] = {r.task for r in self._running.values()}
        if pending:
            hurry: asyncio.Task[Any] = asyncio.create_task(self._hurry.wait())
            deadline = time.monotonic() + self.settings.shutdown_timeout
            while pending and not hurry.done() and (remaining := deadline - time.monotonic()) > 0:
                done, _ = await asyncio.wait({*pending, hurry}, timeout=remaining, return_when=asyncio.FIRST_COMPLETED)
                pending.difference_update(done)
            hurry.cancel()
            unfinished = [job_id for job_id, r in self._running.items() if r.task in pending]
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
            if unfinished:
                await self._hand_back(unfinished)
        for task in background:
            task.cancel()
        await asyncio.gather(*background, return_exceptions=True)
        self._signal_handlers(install=False)
        if self._pool is not None:
            await self._pool.close()
        log.info("worker %s stopped after %d job(s)", self.id, self.jobs_done)

    async def _hand_back(self, job_ids: list[int]) -> None:
        """Put jobs interrupted by shutdown back to 'queued', attempt not counted."""
        assert self._pool is not None
        try:
            async with self._pool.connection() as conn:
                rows = await (
                    await conn.execute(QUERIES["job_requeue_unfinished"], {"ids": job_ids, "worker_id": self.id})
                ).fetchall()
            log.warning(
                "handed %d unfinished job(s) back to their queue: %s", len(rows), ", ".join(str(r[0]) for r in rows)
            )
        except psycopg.OperationalError as exc:
            log.error(
                "could not hand back jobs %s (%s); they stay running until rescued",
                job_ids,
                _db.unavailable(self.app.dsn, exc),
            )
