"""The worker: claim ready jobs into free slots, run them, record how they ended.

One asyncio loop per process. Wake-ups come from LISTEN (instant), from a finished
job when more work may be waiting, from the next scheduled job's due time, and from
the poll interval, which is the fallback that keeps everything moving when NOTIFY
never arrives (PgBouncer in transaction mode, a broken LISTEN connection).

This class only wires the pieces, each in its own module: ``pacing`` decides when to
claim and how many, ``claim_ahead`` buffers jobs claimed beyond the free slots,
``completer`` writes outcomes in batches, ``heartbeat`` and ``handback`` are services
with a ``run_once``, ``outage`` says what failed, ``shutdown`` stops it all in order.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
import uuid
from collections.abc import Sequence
from typing import Any

import psycopg
from psycopg_pool import AsyncConnectionPool

from pgq.app import App
from pgq.context import JobContext
from pgq.job import Job
from pgq.logs import WORKER_ID, job_fields
from pgq.settings import Settings
from pgq.worker import claims, joblog, observe, shutdown
from pgq.worker.claim_ahead import ClaimAhead
from pgq.worker.completer import Completer, log_outcome
from pgq.worker.executor import Outcome, execute
from pgq.worker.handback import STALE_CLAIMS, HandBack
from pgq.worker.heartbeat import Heartbeat, Identity
from pgq.worker.leader import Leadership
from pgq.worker.listener import Listener
from pgq.worker.metrics import worker_metrics
from pgq.worker.outage import Outage
from pgq.worker.pacing import ClaimPacing
from pgq.worker.progress import ProgressWriter
from pgq.worker.pruner import Pruner
from pgq.worker.rescuer import Rescuer
from pgq.worker.running import Running, RunningJobs
from pgq.worker.scheduler import Scheduler
from pgq.worker.startup import open_pool, worker_settings

log = logging.getLogger("pgq.worker")

_PROGRESS_INTERVAL = 0.5
_MAX_OUTCOME_BATCH = 500
_CLAIMING = "claiming jobs"


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
        metrics_port: int | None = None,
    ) -> None:
        settings = worker_settings(
            app,
            queues=queues,
            concurrency=concurrency,
            poll_interval=poll_interval,
            listen=listen,
            shutdown_timeout=shutdown_timeout,
            heartbeat_interval=heartbeat_interval,
            rescue_after=rescue_after,
            maintenance_interval=maintenance_interval,
            pool_size=pool_size,
            metrics_port=metrics_port,
        )
        self.app = app
        self.settings: Settings = settings
        self.queues = list(settings.queues)
        self.host, self.pid = socket.gethostname(), os.getpid()
        self.id = f"{self.host}:{self.pid}:{uuid.uuid4().hex[:8]}"
        self.jobs = RunningJobs()
        self.metrics = worker_metrics(settings.metrics_port, app.tasks, self.id)  # NO_METRICS without a port
        self.pacing = ClaimPacing(settings.concurrency, settings.poll_interval, _MAX_OUTCOME_BATCH)
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()
        self._hurry = asyncio.Event()
        self._ahead: ClaimAhead[Running] = ClaimAhead(settings.concurrency, self._stale_claims)
        self._completer: Completer | None = None
        self.listener: Listener | None = None
        self._hand_back: HandBack | None = None
        self._pool: AsyncConnectionPool[psycopg.AsyncConnection[Any]] | None = None
        self.outage = Outage(app.dsn)
        self.leadership: Leadership | None = None
        self.jobs_done = 0

    # -- control ------------------------------------------------------------------

    def wake(self) -> None:
        """A NOTIFY arrived: new jobs, or scheduled ones whose due time may be sooner."""
        self.pacing.wake()
        self._wake.set()

    def cancel(self, job_id: int) -> None:
        """A cancel request for ``job_id`` arrived; stop it if it runs here."""
        self.jobs.cancel(job_id)

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
                len(self.jobs),
            )
        self._stopping.set()
        self._wake.set()

    # -- main loop ----------------------------------------------------------------

    async def run(self) -> None:
        """Work until ``stop()`` (or SIGTERM/SIGINT when run in the main thread)."""
        dsn, s = self.app.dsn, self.settings
        WORKER_ID.set(self.id)  # JSON log lines name the worker
        self.loop_lag = observe.start(self)  # a metrics port in use fails here, before anything started
        self._pool = pool = await open_pool(dsn, s)
        identity = Identity(self.id, self.host, self.pid, self.queues, s.concurrency, sorted(self.app.schedules))
        heartbeat = Heartbeat(pool, identity, self.jobs, s.heartbeat_interval, self.outage, self.metrics.heartbeat)
        await heartbeat.run_once()  # registered in pgq.workers before the first claim
        self._hand_back = HandBack(pool, self.id)
        self._completer = Completer(
            pool,
            self.id,
            max_batch=_MAX_OUTCOME_BATCH,
            on_outage=self.outage.failed,
            on_recorded=self._recorded,
            on_lost=self._lost,
            on_written=self.metrics.written,
        )
        scheduler = Scheduler(pool)
        await scheduler.register(self.app.schedules.values(), self.app.tasks)  # in pgq.schedules before it leads
        shutdown.signal_handlers(self.stop, install=True)
        duties = [Rescuer(pool, s.rescue_after, self.outage).run_once, Pruner(pool, s).run_once, scheduler.run_once]
        self.leadership = Leadership(pool, self.id, s.maintenance_interval, duties, self.outage)
        completer = asyncio.create_task(self._completer.run())
        background = [asyncio.create_task(heartbeat.run()), asyncio.create_task(self.leadership.run())]
        if s.listen:
            listen_dsn, direct = self.app.listen_dsn, s.listen_url is not None
            listener = Listener(listen_dsn, self.queues, self.wake, self.cancel, s.poll_interval, allow_pooler=direct)
            self.listener = listener
            background.append(asyncio.create_task(listener.run()))
        background.append(asyncio.create_task(self.loop_lag.run()))
        log.info(
            "worker %s started: queues=%s concurrency=%d wake-up=%s poll=%ss tasks=%s",
            self.id,
            ",".join(self.queues),
            s.concurrency,
            "LISTEN/NOTIFY" if s.listen else "polling only (LISTEN disabled)",
            s.poll_interval,
            ",".join(sorted(self.app.tasks)) or "none",
        )
        try:
            while not self._stopping.is_set():
                sleep_for = await self._fill_slots()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), sleep_for)
                self._wake.clear()
        finally:
            stop = shutdown.Shutdown(self.jobs, self._ahead, self._hand_back, self._hurry, s.shutdown_timeout)
            await stop.run(self._completer, completer, background, pool, self.id)
            self.metrics.close()
            log.info("worker %s stopped after %d job(s)", self.id, self.jobs_done)

    async def _fill_slots(self) -> float:
        """Claim jobs for the free slots and the claim-ahead buffer (and, when pacing
        says so, promote due jobs); return how long to sleep before looking again.

        Any error is logged and backed off from: the worker keeps serving until stopped.
        """
        assert self._pool is not None
        assert self._completer is not None
        pacing, ahead = self.pacing, self._ahead
        self._start_waiting()
        plan = pacing.plan(
            time.monotonic(), ahead_room=ahead.room(), ahead_waiting=len(ahead), backlog=self._completer.backlog
        )
        if plan is None:
            return pacing.poll_interval  # a finished job or a written batch of outcomes wakes the loop
        try:
            began = time.perf_counter()
            jobs = await claims.claim(self._pool, self.queues, plan.limit, self.id)
            self.metrics.claimed(len(jobs), time.perf_counter() - began)
            for job in jobs:
                ahead.add(self._register(job))
            self._start_waiting()
            pacing.claimed(len(jobs), plan)
            if plan.check_due:
                promoted, next_due_in = await claims.promote_due(self._pool, self.queues)
                if pacing.due_checked(time.monotonic(), promoted=promoted, next_due_in=next_due_in):
                    return 0.0
        except Exception as exc:  # noqa: BLE001 - logged with its cause; the loop backs off and goes on
            self.outage.failed(_CLAIMING, exc)
            return pacing.failed()
        self.outage.ok(_CLAIMING)
        return pacing.succeeded(time.monotonic())

    def _register(self, job: Job) -> Running:
        """A claimed job: known to heartbeats and cancel requests before it starts."""
        assert self._pool is not None
        progress = ProgressWriter(self._pool, job, self.id, _PROGRESS_INTERVAL)
        return self.jobs.add(Running(job, JobContext(job, self.id, progress), progress))

    def _stale_claims(self, waiting: list[Running]) -> None:
        """Claimed ahead and left waiting: back to the queue, for other workers."""
        assert self._hand_back is not None
        self._hand_back.soon(self.jobs.forget_all(waiting), STALE_CLAIMS)

    def _start_waiting(self) -> None:
        """Start claimed jobs while there are free slots (none once stopping)."""
        while self.pacing.free_slots() > 0 and not self._stopping.is_set():
            running = self._ahead.pop()
            if running is None:
                return
            job = running.job
            joblog.started(job)
            self.metrics.started(job)
            running.task = asyncio.create_task(self._process(running), name=f"pgq-job-{job.id}")
            self.pacing.started()

    async def _process(self, running: Running) -> None:
        job, ctx, progress = running.job, running.ctx, running.progress
        began = time.perf_counter()
        assert self._pool is not None
        try:
            if job.has_parents:  # a dependent job reads its parents' results
                ctx.parents = await claims.parents_of(self._pool, job.id)
            outcome = await execute(self.app, ctx, self.settings.trace_parent)
        except Exception:
            # A bug in pgq itself, not in the task (execute turns task errors into
            # outcomes): the heartbeat stops covering the job, so it is rescued.
            log.exception("job %d %s: the worker could not run it", job.id, job.task, extra=job_fields(job))
            self.jobs.forget(job.id)
            return
        except BaseException:
            self.jobs.forget(job.id)  # stopped by shutdown, which hands it back
            raise
        finally:
            progress.close()
            more = self.pacing.finished()  # the slot is free; the outcome waits in the completer
            self._start_waiting()
            if more:
                self._wake.set()
        self._ahead.timed(elapsed := time.perf_counter() - began)
        self.metrics.ran(job, elapsed)
        running.executed = True
        assert self._completer is not None
        self._completer.submit(job, outcome, progress.unwritten())

    def _recorded(self, job: Job, outcome: Outcome, accepted: bool) -> None:
        """The completer wrote (or the guard rejected) this outcome."""
        self.outage.ok()
        self._done(job)
        if not accepted:
            joblog.rejected(job)
        else:
            self.metrics.recorded(job, outcome)
            log_outcome(job, outcome)
        if self.pacing.recorded(retry=outcome.retry_in is not None):
            self._wake.set()

    def _lost(self, job: Job, exc: BaseException) -> None:
        """The database stayed unreachable past the write retries: the job stays
        'running' and, no longer heartbeated, is rescued; never lost."""
        joblog.lost(job, exc)
        self._done(job)

    def _done(self, job: Job) -> None:
        """Nothing more to do here for this job: no heartbeat for it, one more job counted."""
        self.jobs.forget(job.id)
        self.jobs_done += 1
