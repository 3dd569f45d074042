"""app.wait() / job.wait(): the final job as soon as it is final, woken by one shared LISTEN."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

import psycopg
import pytest

import pgq
from pgq import waiting
from tests.helpers import WorkerProcesses, running_worker, wait_until

pytestmark = pytest.mark.anyio


def make_app(dsn: str, **settings: object) -> pgq.App:
    app = pgq.App(dsn, settings=pgq.Settings(**settings))  # type: ignore[arg-type]

    @app.task
    async def slow(seconds: float) -> str:
        await asyncio.sleep(seconds)
        return f"slept {seconds}"

    @app.task
    async def broken() -> None:
        raise pgq.PermanentError("the printer is on fire")

    return app


async def listening(app: pgq.App) -> waiting.JobWaiter:
    """The app's waiter with LISTEN active, so a test knows what wakes it."""
    waiter = waiting.waiter_for(app)
    waiter.start()
    deadline = time.monotonic() + 10
    while not waiter.listening:
        assert time.monotonic() < deadline, "LISTEN never came up"
        await asyncio.sleep(0.01)
    return waiter


def waiter_sessions(dsn: str) -> int:
    with psycopg.connect(dsn) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity"
            " WHERE datname = current_database() AND application_name = 'pgq-waiter'"
        ).fetchone()
    assert row is not None
    return int(row[0])


async def test_wait_returns_the_final_job_woken_by_the_notification_not_a_poll(dsn: str) -> None:
    async with make_app(dsn) as app:
        waiter = await listening(app)
        waiter.poll_interval = waiter.safety_interval = 30  # only a notification can wake it in time
        async with running_worker(app):
            job = await app.enqueue("slow", {"seconds": 0.3})
            started = time.monotonic()
            done = await app.wait(job.id, timeout=20)
            elapsed = time.monotonic() - started
    assert done.state is pgq.JobState.SUCCEEDED
    assert done.result == "slept 0.3"
    assert 0.25 < elapsed < 5
    # One read before waiting, one after the final state's notification: the claim
    # (running) was announced too, but a waiter is only woken by a final state.
    assert waiter.reads == 2


async def test_job_wait_on_the_job_enqueue_returned(dsn: str) -> None:
    async with make_app(dsn) as app, running_worker(app):
        job = await app.tasks["slow"].enqueue(seconds=0.05)
        done = await job.wait(timeout=20)
        assert done.id == job.id
        assert done.result == "slept 0.05"
        assert (await done.wait(timeout=1)) == done  # the job wait returned is bound too


async def test_a_failed_job_is_returned_with_its_error(dsn: str) -> None:
    async with make_app(dsn) as app, running_worker(app):
        job = await app.enqueue("broken")
        done = await job.wait(timeout=20)
    assert done.state is pgq.JobState.FAILED
    assert done.result is None
    assert "the printer is on fire" in done.errors[-1]["message"]


async def test_a_cancelled_job_is_final_too(dsn: str) -> None:
    async with make_app(dsn) as app:
        job = await app.enqueue("slow", {"seconds": 1}, delay=60)
        waiter = asyncio.create_task(job.wait(timeout=20))
        await asyncio.sleep(0.2)
        await app.cancel(job.id)
        assert (await waiter).state is pgq.JobState.CANCELLED


async def test_a_timeout_raises_a_typed_error_naming_the_job_and_the_timeout(dsn: str) -> None:
    async with make_app(dsn) as app:
        job = await app.enqueue("slow", {"seconds": 1})  # no worker: stays queued
        started = time.monotonic()
        with pytest.raises(pgq.WaitTimeoutError) as caught:
            await app.wait(job.id, timeout=0.3)
        assert 0.3 <= time.monotonic() - started < 3
        assert isinstance(caught.value, pgq.PgqError)
        assert isinstance(caught.value, TimeoutError)
        assert str(caught.value) == f"job {job.id} (slow) is still queued after waiting 0.3s"
        assert (caught.value.job_id, caught.value.timeout) == (job.id, 0.3)
        assert caught.value.job.state is pgq.JobState.QUEUED
        with pytest.raises(pgq.WaitTimeoutError):
            job.wait_sync(timeout=0.1)


async def test_unknown_ids_and_bad_arguments_are_refused_clearly(dsn: str) -> None:
    async with make_app(dsn) as app:
        with pytest.raises(pgq.JobNotFoundError):
            await app.wait(987654, timeout=1)
        with pytest.raises(pgq.JobNotFoundError):
            app.wait_sync(987654, timeout=1)
        job = await app.enqueue("slow", {"seconds": 1})
        for bad in (0, -1, float("nan"), float("inf")):
            with pytest.raises(ValueError, match="timeout must be a positive finite number"):
                await app.wait(job.id, timeout=bad)
        with pytest.raises(TypeError, match="timeout must be a number"):
            await app.wait(job.id, timeout="5")  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="a job id is an integer"):
            await app.wait("1", timeout=1)  # type: ignore[arg-type]
        with pytest.raises(pgq.JobNotFoundError):  # no bigint holds it: never sent to the database
            await app.wait(2**70, timeout=1)
        listed = (await app.list_jobs())[0]  # not returned by enqueue: no App attached
        with pytest.raises(pgq.ConfigError, match=rf"use app.wait\({job.id}\)"):
            await listed.wait(timeout=1)


async def test_many_concurrent_waiters_share_one_listen_connection(dsn: str) -> None:
    async with make_app(dsn) as app:
        waiter = await listening(app)
        jobs = [await app.enqueue("slow", {"seconds": 0.2}) for _ in range(40)]
        async_waits = [asyncio.create_task(app.wait(j.id, timeout=30)) for j in jobs]
        sync_results: list[pgq.Job] = []
        threads = [
            threading.Thread(target=lambda j=j: sync_results.append(app.wait_sync(j.id, timeout=30))) for j in jobs[:5]
        ]
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + 10
        while waiter.waiters < 45:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.02)
        assert await asyncio.to_thread(waiter_sessions, dsn) == 1
        async with running_worker(app, concurrency=40):
            done = await asyncio.gather(*async_waits)
            for thread in threads:
                await asyncio.to_thread(thread.join, 30)
        assert {j.state for j in done} == {pgq.JobState.SUCCEEDED}
        assert len(sync_results) == 5
        assert waiter.connections == 1
        assert waiter.waiters == 0
    # app.close() closed the listener's connection; its backend leaves pg_stat_activity
    # a moment after the client has gone (CI once saw it still there).
    await asyncio.to_thread(wait_until, lambda: waiter_sessions(dsn) == 0, 5, "the waiter's backend to exit")


async def test_waits_poll_every_second_when_listen_cannot_connect(dsn: str, caplog: pytest.LogCaptureFixture) -> None:
    # LISTEN goes to a port where nothing answers: it keeps retrying, waits poll meanwhile.
    async with make_app(dsn, listen_url="postgresql://postgres@127.0.0.1:9/nowhere?connect_timeout=1") as app:
        waiter = waiting.waiter_for(app)
        async with running_worker(app):
            job = await app.enqueue("slow", {"seconds": 1.5})
            done = await app.wait(job.id, timeout=20)
        assert done.state is pgq.JobState.SUCCEEDED
        assert not waiter.listening
        assert waiter.connections == 0
        assert 2 <= waiter.reads <= 5  # about one read a second
    assert "LISTEN is not working" in caplog.text
    assert "waits read their jobs every 1s" in caplog.text


async def test_listen_off_polls_without_a_listener(dsn: str) -> None:
    async with make_app(dsn, listen=False) as app, running_worker(app):
        job = await app.enqueue("slow", {"seconds": 0.1})
        assert (await job.wait(timeout=20)).state is pgq.JobState.SUCCEEDED
        assert waiting.waiter_for(app).connections == 0
        assert await asyncio.to_thread(waiter_sessions, dsn) == 0


def test_wait_sync_with_a_worker_process(dsn: str, tmp_path: Path) -> None:
    workers = WorkerProcesses(dsn, tmp_path)
    try:
        with pgq.App(dsn, settings=pgq.Settings()) as app:
            workers("--concurrency", "2")
            job = app.enqueue_sync("sync_sleepy", {"seconds": 0.2})
            done = job.wait_sync(timeout=30)
            assert (done.state, done.result) == (pgq.JobState.SUCCEEDED, 0.2)
            again = app.enqueue_sync("noop", {"n": 7})
            assert app.wait_sync(again.id, timeout=30).result == 7
            waiter = waiting.waiter_for(app)
            wait_until(lambda: waiter.listening, 10, "LISTEN")
            assert waiter_sessions(dsn) == 1
        wait_until(lambda: waiter_sessions(dsn) == 0, 5, "the waiter's backend to exit")
    finally:
        workers.kill_all()


def test_one_app_waits_from_two_event_loops_in_turn(dsn: str, tmp_path: Path) -> None:
    """A script that calls asyncio.run() twice: the listener belongs to no event loop."""
    workers = WorkerProcesses(dsn, tmp_path)
    try:
        workers("--concurrency", "2")
        app = pgq.App(dsn, settings=pgq.Settings())

        async def one(n: int) -> object:
            job = await app.enqueue("noop", {"n": n})
            return (await job.wait(timeout=30)).result

        assert asyncio.run(one(1)) == 1
        assert asyncio.run(one(2)) == 2
        assert waiting.waiter_for(app).connections == 1
        app.close_sync()
    finally:
        workers.kill_all()
