"""The worker's services driven directly through run_once, against a real database."""

from __future__ import annotations

import psycopg
import pytest
from psycopg_pool import AsyncConnectionPool

import pgq
from pgq.context import JobContext
from pgq.worker import claims
from pgq.worker.handback import HandBack
from pgq.worker.heartbeat import Heartbeat, Identity
from pgq.worker.outage import Outage
from pgq.worker.progress import ProgressWriter
from pgq.worker.running import Running, RunningJobs

pytestmark = pytest.mark.anyio

WORKER = "test-host:1:services"


def _app(dsn: str) -> pgq.App:
    app = pgq.App(dsn)

    @app.task
    async def work() -> None:
        """Never run here: the jobs are claimed by the test itself."""

    return app


async def _claimed(app: pgq.App, pool: AsyncConnectionPool[psycopg.AsyncConnection], n: int) -> RunningJobs:
    for _ in range(n):
        await app.enqueue("work")
    jobs = RunningJobs()
    for job in await claims.claim(pool, ["default"], n, WORKER):
        progress = ProgressWriter(pool, job, WORKER, 0.5)
        jobs.add(Running(job, JobContext(job, WORKER, progress), progress))
    assert len(jobs) == n
    return jobs


async def test_heartbeat_refreshes_its_jobs_delivers_cancels_and_stops_jobs_taken_from_it(dsn: str) -> None:
    app = _app(dsn)
    async with app, AsyncConnectionPool(dsn, min_size=1, max_size=2, kwargs={"autocommit": True}) as pool:
        jobs = await _claimed(app, pool, 3)
        kept, cancelled, taken = jobs.ids()
        await app.cancel(cancelled)
        async with pool.connection() as conn:  # as a rescue would: no longer this worker's
            await conn.execute("UPDATE pgq.jobs SET state = 'retrying', worker_id = NULL WHERE id = %s", (taken,))
        identity = Identity(WORKER, "test-host", 1, ["default"], 3)
        report = await Heartbeat(pool, identity, jobs, 1.0, Outage(dsn)).run_once()
        assert report.owned == sorted([kept, cancelled])
        assert report.cancel_requested == [cancelled] and report.lost == [taken]
        states = {i: (r.ctx.cancel_requested if (r := jobs.get(i)) else None) for i in (kept, cancelled, taken)}
        assert states == {kept: False, cancelled: True, taken: True}
        async with pool.connection() as conn:
            row = await (await conn.execute("SELECT count(*) FROM pgq.workers WHERE id = %s", (WORKER,))).fetchone()
        assert row == (1,)


async def test_hand_back_requeues_uncounted_and_ends_a_job_with_a_pending_cancel(dsn: str) -> None:
    app = _app(dsn)
    async with app, AsyncConnectionPool(dsn, min_size=1, max_size=2, kwargs={"autocommit": True}) as pool:
        jobs = await _claimed(app, pool, 2)
        back, cancelled = jobs.ids()
        await app.cancel(cancelled)
        report = await HandBack(pool, WORKER).run_once(jobs.ids())
        assert (report.queued, report.cancelled) == ([back], [cancelled])
        requeued = await app.get_job(back)
        assert (requeued.state, requeued.attempt, requeued.worker_id) == ("queued", 0, None)
        assert (await app.get_job(cancelled)).state == "cancelled"
        again = await HandBack(pool, WORKER).run_once(jobs.ids())  # no longer ours: nothing happens
        assert (again.queued, again.cancelled) == ([], [])
