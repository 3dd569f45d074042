"""Hung tasks hit their timeout; running jobs can be cancelled, async and sync."""

from __future__ import annotations

import asyncio
import time

import pytest

import pgq
from tests.faults import FAST
from tests.helpers import WorkerProcesses, count_rows, running_worker, wait_final, wait_until

pytestmark = pytest.mark.slow


@pytest.mark.anyio
async def test_hung_tasks_time_out_are_retried_and_cannot_overwrite_the_retry(dsn: str) -> None:
    app = pgq.App(dsn)

    @app.task(timeout=0.3, retry=0.05)
    async def hangs_once() -> int:
        attempt = pgq.current_job().attempt
        if attempt == 1:
            await asyncio.Event().wait()  # never set
        return attempt

    @app.task(timeout=0.3, retry=0.05)
    def sync_hangs_once() -> int:
        attempt = pgq.current_job().attempt
        if attempt == 1:
            time.sleep(1.5)  # a thread cannot be killed: it finishes later, in vain
        return attempt

    async with app, running_worker(app):
        jobs = [await hangs_once.enqueue(), await sync_hangs_once.enqueue()]
        done = await wait_final(app, [j.id for j in jobs])
        await asyncio.sleep(1.5)  # the hung sync attempt returns meanwhile
        after = [await app.get_job(j.id) for j in jobs]
    for job in (*done, *after):
        assert job.state == pgq.JobState.SUCCEEDED and job.attempt == 2 and job.result == 2
        assert [(e["attempt"], e["type"]) for e in job.errors] == [(1, "JobTimeoutError")]
    assert done == after


@pytest.mark.parametrize("mode", ["listen", "no-listen"])
def test_cancel_running_async_and_sync_jobs_ends_cancelled(dsn: str, start_worker: WorkerProcesses, mode: str) -> None:
    start_worker(*(["--no-listen"] if mode == "no-listen" else []), env=FAST)
    with pgq.App(dsn) as app:
        jobs = [app.enqueue_sync("until_cancelled"), app.enqueue_sync("sync_until_cancelled")]
        wait_until(lambda: count_rows(dsn, "state = 'running'") == 2, 20, "both running")
        requested = [app.cancel_sync(j.id) for j in jobs]
        assert all(j.state == pgq.JobState.RUNNING and j.cancel_requested_at for j in requested)
        started = time.monotonic()
        wait_until(lambda: count_rows(dsn, "state = 'cancelled'") == 2, 10, "both cancelled")
        took = time.monotonic() - started
        final = [app.get_job_sync(j.id) for j in jobs]
    assert all(j.result is None and j.finished_at and j.errors[-1]["type"] == "JobCancelledError" for j in final)
    # With LISTEN the request arrives at once; without, at the next heartbeat (0.2 s).
    assert took < 2
    assert count_rows(dsn, "state = 'running'") == 0
