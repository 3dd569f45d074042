"""What follows a cancel request: a retried job runs afresh, and a job whose worker stops
while a cancel request is pending ends cancelled instead of going back to the queue."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time

import pytest

import pgq
from tests.helpers import count_rows, running_worker, wait_final

pytestmark = pytest.mark.anyio


async def test_a_job_cancelled_while_running_and_retried_runs_to_success(dsn: str) -> None:
    app = pgq.App(dsn)
    first_run = asyncio.Event()
    runs: list[int] = []

    @app.task(max_attempts=3, retry=0.05)
    async def long_then_short() -> str:
        runs.append(pgq.current_job().attempt)
        if len(runs) == 1:
            first_run.set()
            await asyncio.sleep(30)  # cancelled here
        elif len(runs) == 2:
            raise ConnectionError("a failure on the retried run is retried, not a cancel")
        return "done"

    async with app, running_worker(app, heartbeat_interval=0.2, rescue_after=5):
        job = await long_then_short.enqueue()
        await asyncio.wait_for(first_run.wait(), 10)
        await app.cancel(job.id)
        (cancelled,) = await wait_final(app, [job.id])
        assert cancelled.state == pgq.JobState.CANCELLED
        await app.retry(job.id)
        await asyncio.sleep(0.5)  # several heartbeats while the retried job runs
        (done,) = await wait_final(app, [job.id])
    assert done.state == pgq.JobState.SUCCEEDED and done.result == "done"
    assert done.cancel_requested_at is None
    assert runs == [1, 2, 3]


async def test_a_job_with_a_pending_cancel_request_ends_cancelled_when_its_worker_stops(dsn: str) -> None:
    app = pgq.App(dsn)
    started = threading.Event()

    @app.task
    def stubborn() -> None:  # a sync task that never checks for cancel requests
        started.set()
        time.sleep(2)

    async with app:
        async with running_worker(app, shutdown_timeout=0.2, listen=False, heartbeat_interval=5) as worker:
            job = await stubborn.enqueue()
            assert await asyncio.to_thread(started.wait, 10)
            await app.cancel(job.id)  # no LISTEN, no heartbeat before the stop: still pending
            worker.stop()
        stopped = await app.get_job(job.id)
    assert stopped.state == pgq.JobState.CANCELLED and stopped.finished_at is not None
    assert count_rows(dsn, "state = 'queued'") == 0


async def test_a_task_that_swallows_its_cancel_request_finishes_and_its_timeout_still_works(dsn: str) -> None:
    # The request cancels the job's own asyncio task (there is no child task): a task
    # that catches it and goes on must not leave that task cancelled for what follows,
    # its awaits after the catch included, nor turn its timeout into a cancel.
    app = pgq.App(dsn)
    started = asyncio.Event()

    @app.task(timeout=1.0, max_attempts=1)
    async def stubborn(wait_after: float) -> str:
        started.set()
        with contextlib.suppress(asyncio.CancelledError):  # swallowed: it carries on
            await asyncio.sleep(30)
        await asyncio.sleep(wait_after)
        return "carried on"

    async with app, running_worker(app, heartbeat_interval=0.2):
        job = await stubborn.enqueue(wait_after=0.05)
        await asyncio.wait_for(started.wait(), 10)
        await app.cancel(job.id)
        (finished,) = await wait_final(app, [job.id])
        started.clear()
        slow = await stubborn.enqueue(wait_after=5)
        await asyncio.wait_for(started.wait(), 10)
        await app.cancel(slow.id)
        (timed_out,) = await wait_final(app, [slow.id])
    assert finished.state == pgq.JobState.SUCCEEDED and finished.result == "carried on"
    # It ran into its timeout (a failure, which ends cancelled since a cancel was requested).
    assert timed_out.state == pgq.JobState.CANCELLED
    assert timed_out.errors[-1]["type"] == "JobTimeoutError"
