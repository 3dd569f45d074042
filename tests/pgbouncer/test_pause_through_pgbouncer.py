"""Pausing and resuming a queue through PgBouncer in transaction mode: the pause holds
across pooled server connections, and resuming wakes the worker over its direct LISTEN."""

from __future__ import annotations

import asyncio
import time

import pytest

import pgq
from tests.helpers import running_worker, wait_final
from tests.pgbouncer.test_through_pgbouncer import _app

pytestmark = pytest.mark.anyio


async def test_a_paused_queue_runs_nothing_until_resumed_through_pgbouncer(bouncer_dsn: str, dsn: str) -> None:
    app = _app(bouncer_dsn, listen_url=dsn, poll_interval=30.0)  # only a NOTIFY can wake it in time
    async with app:
        paused = await app.pause_queue("default")
        assert paused.paused
        assert [q.queue for q in await app.paused_queues()] == ["default"]
        jobs = await app.enqueue_many([{"task": "noop", "args": {"n": i}} for i in range(20)])
        async with running_worker(app, concurrency=4):
            await asyncio.sleep(1.0)  # claims through every pooled connection find nothing
            assert {(await app.get_job(j.id)).state for j in jobs} == {pgq.JobState.QUEUED}
            resumed_at = time.monotonic()
            assert not (await app.resume_queue("default")).paused
            done = await wait_final(app, [j.id for j in jobs], timeout=10)
            took = time.monotonic() - resumed_at
    assert all(j.state is pgq.JobState.SUCCEEDED for j in done)
    assert took < 5.0  # woken by the resume's NOTIFY, not by the 30 s poll
    assert await app.paused_queues() == []
