"""The worker: claim ready jobs into free slots, run them, record how they ended.

One asyncio loop per process. Wake-ups come from LISTEN (instant), from a finished
job when more work may be waiting, from the next scheduled job's due time, and from
the poll interval, which is the fallback that keeps everything moving when NOTIFY
never arrives (PgBouncer in transaction mode, a broken LISTEN connection).

When jobs are short, a claim also takes a few jobs beyond the free slots (the
claim-ahead buffer, bounded by the pace of recent jobs), so the next round trip
overlaps the running jobs; outcomes are written in batches by the completer.
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
from psycopg_pool import AsyncConnectionPool

from pgq import _db
from pgq._queries import QUERIES
from pgq.app import App
from pgq.context import JobContext
from pgq.errors import ConfigError
from pgq.job import Job
from pgq.settings import Settings
from pgq.worker.claim_ahead import ClaimAhead
from pgq.worker.completer import Completer
from pgq.worker.executor import Outcome, execute
from pgq.worker.leader import Leadership
from pgq.worker.listener import Listener
from pgq.worker.progress import ProgressWriter
from pgq.worker.pruner import Pruner
from pgq.worker.rescuer import Rescuer
from pgq.worker.scheduler import Scheduler

log = logging.getLogger("pgq.worker")

_PROMOTE_BATCH = 1000
_PROGRESS_INTERVAL = 0.5
_MAX_OUTCOME_BATCH = 500
_FINAL_WRITE_SECONDS = 10.0


@dataclasses.dataclass(slots=True)
class _Running:
    job: Job
    ctx: JobContext
    progress: ProgressWriter
    task: asyncio.Task[None] | None = None
    """None while the job waits in the claim-ahead buffer for a slot."""
    executed: bool = False
    """The task has returned; only the outcome write is left."""


class _Outage:
    """Says once that the database is unreachable and once that it is back."""

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        self.since: float | None = None

    def failed(self, what: str, exc: BaseException) -> None:
        sqlstate = getattr(exc, "sqlstate", None) or ""
        if sqlstate.startswith("40"):  # deadlock or serialization failure: the database is fine
            log.warning("%s: transaction rolled back (%s), retrying", what, type(exc).__name__)
            return
        if self.since is None:
            self.since = time.monotonic()
            reason = _db.unavailable(self.dsn, exc)
            log.warning("database unreachable while %s (%s); retrying with backoff", what, reason)

    def ok(self) -> None:
        if self.since is not None:
            log.warning("database reachable again after %.1f s", time.monotonic() - self.since)
            self.since = None


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
        rescue_after: float | None = None,
        maintenance_interval: float | None = None,
        pool_size: int | None = None,
    ) -> None:
        if not app.tasks:
            raise ConfigError("the app has no tasks registered: a worker for it could only fail jobs")
        base = app.settings
        given: dict[str, Any] = {
            "concurrency": concurrency,
            "poll_interval": poll_interval,
            "listen": listen,
            "shutdown_timeout": shutdown_timeout,
            "heartbeat_interval": heartbeat_interval,
            "rescue_after": rescue_after,
            "maintenance_interval": maintenance_interval,
            "pool_size": pool_size,
        }
        settings = dataclasses.replace(
            base,
            queues=tuple(queues) if queues else (base.queues or app.task_queues()),
            **{name: value for name, value in given.items() if value is not None},
        )  # replace() runs Settings validation on the merged values
        self.app = app
        self.settings: Settings = settings
        self.queues = list(settings.queues)
        self.host, self.pid = socket.gethostname(), os.getpid()
        self.id = f"{self.host}:{self.pid}:{uuid.uuid4().hex[:8]}"
        self._running: dict[int, _Running] = {}
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()
        self._hurry = asyncio.Event()
        self._more_work = True
        self._executing = 0
        self._ahead: ClaimAhead[_Running] = ClaimAhead(settings.concurrency, self._stale_claims)
        self._hand_backs: set[asyncio.Task[None]] = set()
        self._check_due = True
        self._due_check_at = 0.0
        self._completer: Completer | None = None
        self._completer_task: asyncio.Task[None] | None = None
        self._pool: AsyncConnectionPool[psycopg.AsyncConnection[Any]] | None = None
        self._outage = _Outage(app.dsn)
        self._claim_backoff = 0.0
        self.leadership: Leadership | None = None
        self.jobs_done = 0

    # -- control ------------------------------------------------------------------

    def wake(self) -> None:
        """A NOTIFY arrived: new jobs, or scheduled ones whose due time may be sooner."""
        self._more_work = True
        self._check_due = True
        self._wake.set()

    def cancel(self, job_id: int) -> None:
        """A cancel request for ``job_id`` arrived; stop it if it runs here."""
        running = self._running.get(job_id)
        if running is not None and not running.ctx.cancel_requested:
            log.info("job %d %s: cancel requested, stopping it", job_id, running.job.task)
            running.ctx.request_cancel()

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
        prepare = await _db.open_checked_async(dsn, self.settings.prepared_statements)
        self._pool = pool = AsyncConnectionPool(
            dsn,
            min_size=1,
            max_size=self.settings.pool_size or min(self.settings.concurrency + 2, 10),
            open=False,
            kwargs=_db.pool_kwargs(prepare, "pgq-worker"),
            name="pgq-worker",
        )
        await pool.open(wait=True, timeout=30)
        await self._heartbeat()  # registered in pgq.workers before the first claim
        self._completer = Completer(
            pool,
            self.id,
            max_batch=_MAX_OUTCOME_BATCH,
            on_outage=self._outage.failed,
            on_recorded=self._recorded,
            on_lost=self._lost,
        )
        scheduler = Scheduler(pool)
        await scheduler.register(self.app.schedules.values(), self.app.tasks)  # in pgq.schedules before it leads
        self._signal_handlers(install=True)
        duties = [
            Rescuer(pool, self.settings.rescue_after).run_once,
            Pruner(pool, self.settings).run_once,
            scheduler.run_once,
        ]
        self.leadership = Leadership(pool, self.id, self.settings.maintenance_interval, duties)
        self._completer_task = asyncio.create_task(self._completer.run())
        background: list[asyncio.Task[None]] = [
            asyncio.create_task(self._heartbeat_loop()),
            asyncio.create_task(self.leadership.run()),
        ]
        if self.settings.listen:
            listen_dsn, direct = self.app.listen_dsn, self.settings.listen_url is not None
            listener = Listener(
                listen_dsn, self.queues, self.wake, self.cancel, self.settings.poll_interval, allow_pooler=direct
            )
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
        """Claim jobs for the free slots and the claim-ahead buffer; return how long to
        sleep before looking again.

        Promotion of scheduled and retrying jobs whose time has come, and the lookup of
        the next due time, run when a NOTIFY, a recorded retry or the due timer asks
        for them, after the claim (a woken worker starts its jobs first), not on the
        claims a busy worker makes each time a slot frees.
        """
        poll = self.settings.poll_interval
        self._start_waiting()
        room = self.settings.concurrency - self._executing + self._ahead.room() - len(self._ahead)
        assert self._completer is not None
        if room <= 0 or self._completer.backlog >= _MAX_OUTCOME_BATCH:
            return poll  # a finished job or a written batch of outcomes wakes the loop
        check_due = self._check_due or time.monotonic() >= self._due_check_at
        try:
            jobs = await self._claim(room)
            for job in jobs:
                self._ahead.add(self._register(job))
            self._start_waiting()
            # A full batch means more may be waiting: look again as soon as a slot frees.
            self._more_work = len(jobs) == room
            if check_due:
                promoted, next_due_in = await self._promote_due()
                sleep_for = poll if next_due_in is None else max(0.0, min(poll, next_due_in))
                self._due_check_at = time.monotonic() + sleep_for
                self._check_due = False
                if promoted:
                    self._more_work = True
                    return 0.0
        except psycopg.OperationalError as exc:
            self._outage.failed("claiming jobs", exc)
            # Back off from 50 ms up to the poll interval while the outage lasts.
            self._claim_backoff = min(poll, max(0.05, self._claim_backoff * 2))
            return self._claim_backoff
        self._outage.ok()
        self._claim_backoff = 0.0
        return max(0.0, self._due_check_at - time.monotonic())

    async def _claim(self, limit: int) -> list[Job]:
        assert self._pool is not None
        async with self._pool.connection() as conn:
            cur = conn.cursor(row_factory=dict_row)
            await cur.execute(QUERIES["job_claim"], {"queues": self.queues, "limit": limit, "worker_id": self.id})
            rows = await cur.fetchall()
        return sorted((Job(**r) for r in rows), key=lambda j: (j.priority, j.run_at, j.id))

    async def _promote_due(self) -> tuple[bool, float | None]:
        """Queue the due scheduled and retrying jobs; say whether there were any, and in
        how many seconds the next one is due (None: none), in one round trip."""
        assert self._pool is not None
        async with self._pool.connection() as conn, conn.pipeline():
            promote = await conn.execute(QUERIES["job_promote_due"], {"limit": _PROMOTE_BATCH})
            due = await conn.execute(QUERIES["job_next_due_in"], {"queues": self.queues})
            promoted, due_row = await promote.fetchall(), await due.fetchone()
        return bool(promoted), (due_row[0] if due_row else None)

    def _register(self, job: Job) -> _Running:
        """A claimed job: known to heartbeats and cancel requests before it starts."""
        assert self._pool is not None
        progress = ProgressWriter(self._pool, job, self.id, _PROGRESS_INTERVAL)
        running = self._running[job.id] = _Running(job, JobContext(job, self.id, progress), progress)
        return running

    def _forget(self, waiting: list[_Running]) -> list[int]:
        """Drop claimed-ahead jobs that will not start here; return their ids to hand back."""
        return [self._running.pop(r.job.id).job.id for r in waiting]

    def _stale_claims(self, waiting: list[_Running]) -> None:
        """Claimed ahead and left waiting: back to the queue, for other workers."""
        why = "claimed ahead, the slots are busy with slower jobs"
        task = asyncio.create_task(self._hand_back(self._forget(waiting), why, logging.INFO))
        self._hand_backs.add(task)
        task.add_done_callback(self._hand_backs.discard)

    def _start_waiting(self) -> None:
        """Start claimed jobs while there are free slots (none once stopping)."""
        while self._executing < self.settings.concurrency and not self._stopping.is_set():
            running = self._ahead.pop()
            if running is None:
                return
            job = running.job
            log.info("job %d %s started (attempt %d/%d)", job.id, job.task, job.attempt, job.max_attempts)
            running.task = asyncio.create_task(self._process(running), name=f"pgq-job-{job.id}")
            self._executing += 1

    async def _process(self, running: _Running) -> None:
        job, ctx, progress = running.job, running.ctx, running.progress
        began = time.perf_counter()
        try:
            outcome = await execute(self.app, ctx)
        except Exception:
            # A bug in pgq itself, not in the task (execute turns task errors into
            # outcomes): the heartbeat stops covering the job, so it is rescued.
            log.exception("job %d %s: the worker could not run it", job.id, job.task)
            self._running.pop(job.id, None)
            return
        except BaseException:
            self._running.pop(job.id, None)  # stopped by shutdown, which hands it back
            raise
        finally:
            progress.close()
            self._executing -= 1  # the slot is free; the outcome waits in the completer
            self._start_waiting()
            if self._more_work:
                self._wake.set()
        self._ahead.timed(time.perf_counter() - began)
        running.executed = True
        assert self._completer is not None
        self._completer.submit(job, outcome)

    def _recorded(self, job: Job, outcome: Outcome, accepted: bool) -> None:
        """The completer wrote (or the guard rejected) this outcome."""
        self._outage.ok()
        self._done(job)
        if not accepted:
            log.warning(
                "job %d attempt %d: late outcome rejected, the job is no longer running on this worker "
                "(rescued, cancelled or handed back meanwhile)",
                job.id,
                job.attempt,
            )
        else:
            self._log_outcome(job, outcome)
        if outcome.retry_in is not None:
            self._check_due = True  # the next due time may now be this retry's
            self._wake.set()
        elif self._more_work:
            self._wake.set()  # a claim held back by a full outcome backlog may go ahead

    def _lost(self, job: Job, exc: BaseException) -> None:
        """The database stayed unreachable past the write retries: the job stays
        'running' and, no longer heartbeated, is rescued; never lost."""
        log.error("job %d %s: could not record its outcome (%s); it will be rescued", job.id, job.task, exc)
        self._done(job)

    def _done(self, job: Job) -> None:
        """Nothing more to do here for this job: no heartbeat for it, one more job counted."""
        self._running.pop(job.id, None)
        self.jobs_done += 1

    @staticmethod
    def _log_outcome(job: Job, outcome: Outcome) -> None:
        where = f"job {job.id} {job.task} attempt {job.attempt}/{job.max_attempts}"
        if outcome.succeeded:
            log.info("%s succeeded", where)
            return
        if outcome.cancelled:
            log.info("%s cancelled while running", where)
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
            try:
                await self._heartbeat()
            except psycopg.OperationalError as exc:
                self._outage.failed("sending the heartbeat", exc)

    async def _heartbeat(self) -> None:
        """Refresh this worker's row and its jobs; stop jobs cancelled or taken from it."""
        assert self._pool is not None
        ids = list(self._running)
        params = {
            "worker_id": self.id,
            "host": self.host,
            "pid": self.pid,
            "queues": self.queues,
            "concurrency": self.settings.concurrency,
            "schedules": sorted(self.app.schedules),
            "ids": ids,
        }
        async with self._pool.connection() as conn:
            rows = await (await conn.execute(QUERIES["worker_heartbeat"], params)).fetchall()
        self._outage.ok()
        owned = {job_id: cancel for job_id, cancel in rows}
        for job_id in ids:
            if owned.get(job_id):
                self.cancel(job_id)
                continue
            running = self._running.get(job_id)
            if job_id not in owned and running and not running.executed and not running.ctx.cancel_requested:
                log.warning(
                    "job %d attempt %d is no longer owned by this worker (rescued after missed heartbeats); "
                    "stopping it, its outcome would be rejected",
                    job_id,
                    running.job.attempt,
                )
                running.ctx.request_cancel()

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
        if waiting := self._ahead.take_all():  # claimed ahead, never started: back at once
            why = "claimed ahead, not started before shutdown"
            await self._hand_back(self._forget(waiting), why, logging.INFO)
        await asyncio.gather(*self._hand_backs)
        pending: set[asyncio.Task[Any]] = {r.task for r in self._running.values() if r.task is not None}
        if pending:
            hurry: asyncio.Task[Any] = asyncio.create_task(self._hurry.wait())
            deadline = time.monotonic() + self.settings.shutdown_timeout
            while pending and not hurry.done() and (remaining := deadline - time.monotonic()) > 0:
                done, _ = await asyncio.wait({*pending, hurry}, timeout=remaining, return_when=asyncio.FIRST_COMPLETED)
                pending.difference_update(done)
            hurry.cancel()
            # Jobs that ran to the end keep their outcome (it is in the completer);
            # only the interrupted ones go back to the queue.
            unfinished = [job_id for job_id, r in self._running.items() if r.task in pending and not r.executed]
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
            if unfinished:
                await self._hand_back(unfinished)
        await self._finish_writes()
        for task in background:
            task.cancel()
        await asyncio.gather(*background, return_exceptions=True)
        self._signal_handlers(install=False)
        if self._pool is not None:
            try:
                async with self._pool.connection(timeout=5) as conn:
                    await conn.execute(QUERIES["worker_deregister"], {"worker_id": self.id})
            except (psycopg.OperationalError, TimeoutError) as exc:
                log.warning("could not remove this worker's row (%s); the leader will", type(exc).__name__)
            await self._pool.close()
        log.info("worker %s stopped after %d job(s)", self.id, self.jobs_done)

    async def _finish_writes(self) -> None:
        """Let the completer write the outcomes it holds, for a bounded time."""
        if self._completer is None or self._completer_task is None:
            return
        self._completer.close()
        try:
            await asyncio.wait_for(asyncio.shield(self._completer_task), _FINAL_WRITE_SECONDS)
        except TimeoutError:
            self._completer_task.cancel()
            log.error(
                "could not record the outcome of jobs %s before stopping; they stay running until rescued",
                self._completer.unwritten(),
            )

    async def _hand_back(
        self, job_ids: list[int], why: str = "unfinished at shutdown", level: int = logging.WARNING
    ) -> None:
        """Put jobs back to 'queued', attempt not counted: interrupted by shutdown, or
        claimed ahead and not started. One with a pending cancel request ends cancelled."""
        assert self._pool is not None
        try:
            async with self._pool.connection() as conn:
                rows = await (
                    await conn.execute(QUERIES["job_requeue_unfinished"], {"ids": job_ids, "worker_id": self.id})
                ).fetchall()
            queued = [str(job_id) for job_id, state, _ in rows if state == "queued"]
            cancelled = [str(job_id) for job_id, state, _ in rows if state == "cancelled"]
            if queued:
                log.log(level, "handed %d job(s) back to their queue (%s): %s", len(queued), why, ", ".join(queued))
            if cancelled:
                log.info("job(s) %s cancelled: a cancel request was pending when they stopped", ", ".join(cancelled))
        except psycopg.OperationalError as exc:
            log.error(
                "could not hand back jobs %s (%s); they stay running until rescued",
                job_ids,
                _db.unavailable(self.app.dsn, exc),
            )
