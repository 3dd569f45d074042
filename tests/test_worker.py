"""The worker, in-process: outcomes, retries, ordering, scheduling and wake-ups."""

from __future__ import annotations

import asyncio
import time

import psycopg
import pytest
import tenacity

import pgq
import pgq.worker
from tests.helpers import running_worker, wait_final

pytestmark = pytest.mark.anyio


async def test_async_and_sync_tasks_store_their_results(dsn: str) -> None:
    app = pgq.App(dsn)
    threads: list[str] = []

    @app.task
    async def double(x: int) -> int:
        return 2 * x

    @app.task
    def shout(word: str) -> dict[str, str]:
        import threading

        threads.append(threading.current_thread().name)
        return {"word": word.upper(), "job": str(pgq.current_job().job.id)}

    async with app, running_worker(app):
        a = await double.enqueue(x=21)
        b = await shout.enqueue(word="hi")
        done = await wait_final(app, [a.id, b.id])
    assert [j.state for j in done] == ["succeeded", "succeeded"]
    assert done[0].result == 42
    assert done[1].result == {"word": "HI", "job": str(b.id)}
    assert threads == ["pgq-sync-task"]
    assert all(j.attempt == 1 and j.worker_id and j.started_at and j.finished_at for j in done)


async def test_failed_attempt_is_retried_then_succeeds(dsn: str) -> None:
    app = pgq.App(dsn)
    attempts: list[int] = []

    @app.task(max_attempts=3, retry=0.05)
    async def flaky() -> str:
        attempts.append(pgq.current_job().attempt)
        if len(attempts) < 2:
            raise ConnectionError("first try fails")
        return "ok"

    async with app, running_worker(app):
        job = await flaky.enqueue()
        (done,) = await wait_final(app, [job.id])
    assert done.state == "succeeded" and done.result == "ok" and done.attempt == 2
    assert attempts == [1, 2]
    assert [(e["attempt"], e["type"], e["message"]) for e in done.errors] == [(1, "ConnectionError", "first try fails")]
    assert "Traceback" in done.errors[0]["traceback"] and done.errors[0]["at"]


async def test_retry_delay_is_written_to_run_at_not_slept_in_memory(dsn: str) -> None:
    app = pgq.App(dsn)

    @app.task(max_attempts=2, retry=tenacity.wait_fixed(3600))
    async def fails() -> None:
        raise RuntimeError("nope")

    async with app, running_worker(app):
        job = await fails.enqueue()
        for _ in range(100):
            stored = await app.get_job(job.id)
            if stored.state == pgq.JobState.RETRYING:
                break
            await asyncio.sleep(0.05)
    assert stored.state == pgq.JobState.RETRYING
    assert stored.worker_id is None and stored.finished_at is None
    assert stored.started_at is not None
    assert 3590 < (stored.run_at - stored.started_at).total_seconds() < 3610


async def test_exhausted_attempts_end_failed_with_every_error_kept(dsn: str) -> None:
    app = pgq.App(dsn)

    @app.task(max_attempts=3, retry=0)
    def always_fails() -> None:
        raise ValueError(f"attempt {pgq.current_job().attempt} broke")

    async with app, running_worker(app):
        job = await always_fails.enqueue()
        (done,) = await wait_final(app, [job.id])
    assert done.state == "failed" and done.attempt == 3 and done.finished_at is not None
    assert [e["message"] for e in done.errors] == ["attempt 1 broke", "attempt 2 broke", "attempt 3 broke"]
    assert [e["attempt"] for e in done.errors] == [1, 2, 3]


async def test_permanent_error_fails_at_once(dsn: str) -> None:
    app = pgq.App(dsn)

    @app.task(max_attempts=5, retry=0)
    async def bad_input(email: str) -> None:
        raise pgq.PermanentError(f"{email} is not an address")

    async with app, running_worker(app):
        job = await bad_input.enqueue(email="nope")
        (done,) = await wait_final(app, [job.id])
    assert done.state == "failed" and done.attempt == 1
    assert done.errors[0]["type"] == "PermanentError" and done.errors[0]["message"] == "nope is not an address"


async def test_task_can_ask_for_a_retry_with_its_own_delay(dsn: str) -> None:
    app = pgq.App(dsn)

    @app.task(max_attempts=3, retry=3600)
    async def poll_upstream() -> str:
        if pgq.current_job().attempt == 1:
            raise pgq.Retry("not ready yet", delay=0.1)
        return "ready"

    async with app, running_worker(app):
        job = await poll_upstream.enqueue()
        (done,) = await wait_final(app, [job.id])
    assert done.state == "succeeded" and done.attempt == 2
    assert done.errors[0]["type"] == "Retry"


async def test_unknown_task_fails_with_a_clear_error_and_runs_nothing(dsn: str) -> None:
    producer = pgq.App(dsn)  # registers nothing, like a web app enqueueing for workers
    worker_app = pgq.App(dsn)

    @worker_app.task
    async def known() -> None:
        return None

    async with producer, worker_app, running_worker(worker_app):
        job = await producer.enqueue("os.system", {"command": "rm -rf /"})
        (done,) = await wait_final(worker_app, [job.id])
    assert done.state == "failed" and done.attempt == 1
    assert done.errors[0]["type"] == "UnknownTaskError"
    assert "unknown task 'os.system' (registered: known)" in done.errors[0]["message"]


async def test_arguments_that_do_not_fit_the_task_fail_permanently(dsn: str) -> None:
    app = pgq.App(dsn)

    @app.task
    async def greet(name: str) -> str:
        return name

    async with pgq.App(dsn) as producer, running_worker(app):
        job = await producer.enqueue("greet", {"nmae": "x"})
        (done,) = await wait_final(app, [job.id])
    assert done.state == "failed" and done.attempt == 1
    assert "do not fit task 'greet'" in done.errors[0]["message"]


async def test_result_that_is_not_json_fails_the_job_clearly(dsn: str) -> None:
    app = pgq.App(dsn)

    @app.task
    async def returns_set() -> object:
        return {1, 2}

    async with app, running_worker(app):
        job = await returns_set.enqueue()
        (done,) = await wait_final(app, [job.id])
    assert (
        done.state == "failed"
        and "not JSON" in done.errors[0]["message"]
        and "the result is a set" in done.errors[0]["message"]
    )


async def test_async_task_over_its_timeout_is_cancelled_and_retried(dsn: str) -> None:
    app = pgq.App(dsn)
    cancelled: list[int] = []

    @app.task(timeout=0.2, max_attempts=2, retry=0)
    async def hangs() -> None:
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            cancelled.append(pgq.current_job().attempt)
            raise

    async with app, running_worker(app):
        job = await hangs.enqueue()
        (done,) = await wait_final(app, [job.id])
    assert done.state == "failed" and done.attempt == 2
    assert [e["type"] for e in done.errors] == ["JobTimeoutError", "JobTimeoutError"]
    assert cancelled == [1, 2]


async def test_sync_task_over_its_timeout_is_recorded_as_timed_out(dsn: str) -> None:
    app = pgq.App(dsn)

    @app.task(timeout=0.2, max_attempts=1)
    def blocks() -> None:
        time.sleep(1)

    async with app, running_worker(app):
        job = await blocks.enqueue()
        (done,) = await wait_final(app, [job.id])
    assert done.state == "failed" and done.errors[0]["type"] == "JobTimeoutError"
    assert "cannot be killed" in done.errors[0]["traceback"]


async def test_delayed_job_does_not_run_early(dsn: str) -> None:
    app = pgq.App(dsn)
    started: list[float] = []

    @app.task
    async def later() -> None:
        started.append(time.monotonic())

    async with app, running_worker(app, poll_interval=5):
        t0 = time.monotonic()
        job = await app.enqueue("later", delay=1.0)
        await asyncio.sleep(0.7)
        assert (await app.get_job(job.id)).state == pgq.JobState.SCHEDULED
        (done,) = await wait_final(app, [job.id])
    assert done.state == "succeeded"
    # Woken for the due time, not at the 5 s poll.
    assert 0.95 <= started[0] - t0 < 2.5
    assert done.started_at is not None and done.started_at >= done.run_at


async def test_jobs_are_claimed_by_priority_then_run_at_then_id(dsn: str) -> None:
    app = pgq.App(dsn)
    order: list[str] = []

    @app.task
    async def step(name: str) -> None:
        order.append(name)

    async with app:
        await app.enqueue("step", {"name": "low-a"}, priority=5)
        await app.enqueue("step", {"name": "high-a"}, priority=-1)
        await app.enqueue("step", {"name": "normal-a"})
        await app.enqueue("step", {"name": "high-b"}, priority=-1)
        await app.enqueue("step", {"name": "normal-b"})
        async with running_worker(app, concurrency=1):
            jobs = await app.list_jobs()
            await wait_final(app, [j.id for j in jobs])
    assert order == ["high-a", "high-b", "normal-a", "normal-b", "low-a"]


async def test_listen_wakes_an_idle_worker_well_before_its_poll(dsn: str) -> None:
    app = pgq.App(dsn)

    @app.task
    async def ping() -> None:
        return None

    async with app, running_worker(app, poll_interval=30) as worker:
        await asyncio.sleep(0.5)  # idle, with LISTEN connected
        latencies = []
        for _ in range(5):
            job = await ping.enqueue()
            (done,) = await wait_final(app, [job.id])
            assert done.started_at is not None
            latencies.append((done.started_at - done.created_at).total_seconds())
    assert worker.settings.poll_interval == 30
    assert max(latencies) < 1.0, latencies


async def test_worker_without_listen_still_processes_everything_by_polling(dsn: str) -> None:
    app = pgq.App(dsn)

    @app.task
    async def work(n: int) -> int:
        return n

    async with app, running_worker(app, listen=False, poll_interval=0.1, concurrency=5):
        jobs = await app.enqueue_many([{"task": "work", "args": {"n": i}} for i in range(50)])
        done = await wait_final(app, [j.id for j in jobs])
    assert [j.result for j in done] == list(range(50))


async def test_worker_serves_only_its_queues(dsn: str) -> None:
    app = pgq.App(dsn)

    @app.task(queue="a")
    async def in_a() -> None:
        return None

    async with app:
        other = await app.enqueue("in_a", queue="b")
        mine = await in_a.enqueue()
        async with running_worker(app):
            await wait_final(app, [mine.id])
            await asyncio.sleep(0.3)
            assert (await app.get_job(other.id)).state == pgq.JobState.QUEUED


async def test_shutdown_hands_unfinished_jobs_back_to_queued(dsn: str) -> None:
    app = pgq.App(dsn)

    @app.task
    async def slow() -> None:
        await asyncio.sleep(30)

    async with app:
        job = await slow.enqueue()
        async with running_worker(app, shutdown_timeout=0.2):
            for _ in range(100):
                if (await app.get_job(job.id)).state == pgq.JobState.RUNNING:
                    break
                await asyncio.sleep(0.05)
        back = await app.get_job(job.id)
    assert back.state == pgq.JobState.QUEUED and back.attempt == 0 and back.worker_id is None


async def test_sync_tasks_reuse_threads(dsn: str) -> None:
    app = pgq.App(dsn)
    idents: list[int] = []

    @app.task
    def where() -> None:
        import threading

        idents.append(threading.get_ident())

    async with app, running_worker(app, concurrency=2):
        jobs = await app.enqueue_many([{"task": "where"} for _ in range(40)])
        await wait_final(app, [j.id for j in jobs])
    assert len(idents) == 40
    assert len(set(idents)) <= 10


async def test_second_stop_hands_running_jobs_back_without_waiting(dsn: str) -> None:
    app = pgq.App(dsn)

    @app.task
    async def slow() -> None:
        await asyncio.sleep(60)

    async with app:
        job = await slow.enqueue()
        worker = pgq.worker.Worker(app, shutdown_timeout=60, poll_interval=0.1)
        run = asyncio.create_task(worker.run())
        while (await app.get_job(job.id)).state != pgq.JobState.RUNNING:
            await asyncio.sleep(0.05)
        started = time.monotonic()
        worker.stop()
        await asyncio.sleep(0.2)
        worker.stop()
        await asyncio.wait_for(run, 10)
        assert time.monotonic() - started < 5
        assert (await app.get_job(job.id)).state == pgq.JobState.QUEUED


def test_worker_refuses_an_app_without_tasks(dsn: str) -> None:
    with pytest.raises(pgq.ConfigError, match="no tasks registered"):
        pgq.worker.Worker(pgq.App(dsn))


def test_current_job_outside_a_task_is_a_lookup_error() -> None:
    with pytest.raises(LookupError, match="outside a running task"):
        pgq.current_job()


async def test_a_tasks_own_timeout_error_is_not_mistaken_for_the_job_timeout(dsn: str) -> None:
    app = pgq.App(dsn)

    @app.task(timeout=30, max_attempts=1)
    async def calls_upstream() -> None:
        raise TimeoutError("upstream did not answer")

    async with app, running_worker(app):
        job = await calls_upstream.enqueue()
        (done,) = await wait_final(app, [job.id])
    assert (done.errors[0]["type"], done.errors[0]["message"]) == ("TimeoutError", "upstream did not answer")


async def test_huge_error_texts_are_cut_to_keep_rows_small(dsn: str) -> None:
    app = pgq.App(dsn)

    @app.task(max_attempts=1)
    async def recurses(depth: int = 0) -> None:
        def dive(n: int) -> None:
            if n == 0:
                raise RuntimeError("x" * 50_000)
            dive(n - 1)

        dive(300)

    async with app, running_worker(app):
        job = await recurses.enqueue()
        (done,) = await wait_final(app, [job.id])
    error = done.errors[0]
    assert len(error["message"]) <= 2_010
    assert error["message"].endswith("[cut]")
    assert len(error["traceback"]) <= 10_010
    assert "RuntimeError" in error["traceback"]


async def test_listen_reconnects_after_its_connection_is_killed(dsn: str, caplog: pytest.LogCaptureFixture) -> None:
    app = pgq.App(dsn)

    @app.task
    async def ping() -> None:
        return None

    async with app, running_worker(app, poll_interval=30):
        await asyncio.sleep(0.5)
        async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as admin:
            killed = await (
                await admin.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid() AND query LIKE '%LISTEN pgq_jobs%'"
                )
            ).fetchall()
        assert killed == [(True,)]
        await asyncio.sleep(1.5)  # the first reconnect waits 0.2-0.7 s
        job = await ping.enqueue()
        (done,) = await wait_final(app, [job.id], timeout=5)
    assert done.started_at is not None
    assert (done.started_at - done.created_at).total_seconds() < 1.0
    messages = [r.getMessage() for r in caplog.records]
    assert any("LISTEN is not working" in m for m in messages)
    assert any("LISTEN connection restored" in m for m in messages)
