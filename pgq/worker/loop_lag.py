"""Event-loop lag: how late the worker's loop runs, and who blocked it.

An async task that calls a slow sync function (``time.sleep``, a blocking HTTP client,
heavy CPU work) stops every other job of the worker, its heartbeat and its claims. Two
halves watch for it:

- on the loop, a timer every ``INTERVAL`` seconds measures how late it fired (the lag,
  observed into the metrics) and stamps that the loop is alive;
- on a daemon thread, a watchdog notices when that stamp is older than the warning
  threshold *while* the loop is still held, looks at which asyncio task the loop is
  running (a job's task is named ``pgq-job-<id>``) and where its thread is in the code,
  and logs one warning naming the job, its task and that line.

The watchdog wakes a few times a second and reads two attributes: nothing per job.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import sys
import threading
import time
import traceback
from collections.abc import Callable

from pgq.job import Job
from pgq.logs import WORKER_ID, job_fields
from pgq.worker.metrics import NoMetrics

log = logging.getLogger("pgq.worker")

INTERVAL = 0.1
"""Seconds between the loop's lag samples."""
JOB_TASK_PREFIX = "pgq-job-"


class LoopLag:
    def __init__(
        self,
        metrics: NoMetrics,
        find_job: Callable[[int], Job | None],
        warn_after: float = 0.2,
        interval: float = INTERVAL,
    ) -> None:
        self.metrics = metrics
        self.find_job = find_job
        self.warn_after = warn_after
        self.interval = interval
        self.max_lag = 0.0
        """The largest lag seen (for tests and the bench)."""
        self._alive = time.monotonic()
        self._stop = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread = 0

    async def run(self) -> None:
        """Sample the lag until cancelled, with the watchdog thread alongside."""
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        self._alive = time.monotonic()
        # In a copy of the loop's context: its log lines name the worker, like the loop's.
        context = contextvars.copy_context()
        watchdog = threading.Thread(target=context.run, args=(self._watch,), name="pgq-loop-watchdog", daemon=True)
        watchdog.start()
        try:
            while True:
                due = time.monotonic() + self.interval
                await asyncio.sleep(self.interval)
                now = time.monotonic()
                self._alive = now
                lag = max(now - due, 0.0)
                self.max_lag = max(self.max_lag, lag)
                self.metrics.loop_lag(lag)
        finally:
            self._stop.set()

    def _watch(self) -> None:
        reported = 0.0  # the stamp of the stall already reported
        while not self._stop.wait(self.interval):
            alive = self._alive
            held = time.monotonic() - alive - self.interval
            if held >= self.warn_after and alive != reported:
                reported = alive
                self.metrics.loop_blocked()
                self._report(held)

    def _report(self, held: float) -> None:
        """Name what holds the loop: the asyncio task it runs, and that thread's line of code."""
        loop = self._loop
        current = asyncio.current_task(loop) if loop is not None else None
        name = current.get_name() if current is not None else ""
        frame = sys._current_frames().get(self._loop_thread)
        where = ""
        if frame is not None:
            summary = traceback.extract_stack(frame)
            user = [f for f in summary if "/asyncio/" not in f.filename and "/pgq/" not in f.filename] or summary
            last = user[-1]
            where = f" at {last.filename}:{last.lineno} in {last.name}"
        job = None
        if name.startswith(JOB_TASK_PREFIX) and name[len(JOB_TASK_PREFIX) :].isdigit():
            job = self.find_job(int(name[len(JOB_TASK_PREFIX) :]))
        if job is None:
            log.warning("the event loop has been blocked for %.2f s%s (task %s)", held, where, name or "unknown")
            return
        log.warning(
            "job %d %s has blocked the event loop for %.2f s%s: a sync call in an async task stops every "
            "other job of this worker; make it async, or make the task a plain def (it then runs in a thread)",
            job.id,
            job.task,
            held,
            where,
            extra={**job_fields(job), "worker_id": WORKER_ID.get()},
        )
