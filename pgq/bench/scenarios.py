"""The scenarios users run, each a drain measured with CPU per job and event-loop lag.

Every scenario puts its jobs in a paused queue, starts its worker processes (the bench
worker: ``pgq worker`` plus a lag probe, see ``worker_main``), waits until they have
registered, reads the CPU time so far of the workers and of the database's backends,
resumes the queue and waits for the last job. The rate is from the first start to the
last finish (database clock); CPU per job and lag cover the time from the resume to
the last finish, start-up excluded. See ``cpu`` for what the CPU figures count.

- ``threads``: sync no-op tasks (run on the worker's threads), 1 process.
- ``mixed``: 99 % no-op jobs and 1 % that sleep a second, 1 process.
- ``concurrency``: no-op jobs at concurrency 10, 50 and 200 on 1 process.
- ``processes``: no-op jobs on 1, 2, 4 and 8 processes at ``--concurrency`` each.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import psycopg

from pgq.app import App
from pgq.bench import cpu, lag
from pgq.bench.queries import BENCH_QUERIES
from pgq.bench.raw import drained_seconds
from pgq.bench.stats import Result
from pgq.bench.workers import check_alive, worker_processes
from pgq.spec import JobSpec

SCENARIOS = ("threads", "mixed", "concurrency", "processes")
CONCURRENCIES = (10, 50, 200)
PROCESSES = (1, 2, 4, 8)
_QUEUE = "default"
_WAIT_SECONDS = 600.0


def mixed_tasks(n: int) -> list[str]:
    """n task names, one in a hundred ``slow`` (the 1st, 101st, …), the rest ``noop``."""
    return ["slow" if i % 100 == 0 else "noop" for i in range(n)]


async def _prefill(app: App, tasks: Sequence[str], batch: int) -> None:
    for offset in range(0, len(tasks), batch):
        await app.enqueue_many([JobSpec(task) for task in tasks[offset : offset + batch]])


async def _wait_registered(conn: psycopg.AsyncConnection[Any], procs: list[Any]) -> None:
    pids = [p.pid for p in procs]
    deadline = time.monotonic() + 60
    while True:
        row = await (await conn.execute(BENCH_QUERIES["bench_workers_registered"], {"pids": pids})).fetchone()
        if row is not None and row[0] >= len(pids):
            break
        check_alive(procs)
        if time.monotonic() > deadline:
            raise TimeoutError(f"{len(pids)} bench worker processes did not register within 60 s")
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.3)  # past start-up: registration comes before the first idle wait


async def _backends(conn: psycopg.AsyncConnection[Any]) -> list[int]:
    return [int(r[0]) for r in await (await conn.execute(BENCH_QUERIES["bench_backend_pids"])).fetchall()]


async def measured_drain(
    app: App,
    dsn: str,
    name: str,
    tasks: Sequence[str],
    processes: int,
    concurrency: int,
    note: str,
    batch: int = 5000,
) -> Result:
    """Drain ``tasks`` (task names, enqueued paused) with ``processes`` × ``concurrency``."""
    n = len(tasks)
    await app.pause_queue(_QUEUE)
    await _prefill(app, tasks, batch)
    with tempfile.TemporaryDirectory(prefix="pgq-bench-lag-") as lag_dir:
        async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
            with worker_processes(dsn, processes, concurrency, lag_dir=Path(lag_dir)) as procs:
                await _wait_registered(conn, procs)
                workers_before = cpu.sample(p.pid for p in procs)
                backends_before = cpu.sample(await _backends(conn))
                start = time.time()
                await app.resume_queue(_QUEUE)
                deadline = time.monotonic() + _WAIT_SECONDS
                while (done := await drained_seconds(conn))[0] < n:
                    check_alive(procs)
                    if time.monotonic() > deadline:
                        raise TimeoutError(f"only {done[0]} of {n} jobs finished in {_WAIT_SECONDS:.0f} s")
                    await asyncio.sleep(0.02)
                end = time.time()
                workers_cpu = cpu.used(workers_before, cpu.sample(p.pid for p in procs))
                postgres_cpu = cpu.used(backends_before, cpu.sample(await _backends(conn)))
            # The processes have stopped: their lag samples are written.
            lags = lag.summary(lag.read_samples(Path(lag_dir)), start, end)
    extra = {
        "worker_cpu_us_per_job": cpu.per_job_us(workers_cpu, n),
        "postgres_cpu_us_per_job": cpu.per_job_us(postgres_cpu, n),
        **lags,
    }
    return Result(name, n, done[1], note=note, extra=extra)


async def run_scenarios(app: App, dsn: str, which: Sequence[str], jobs: int, concurrency: int, run: Any) -> None:
    """Each selected scenario through ``run`` (the runner's: reset the table, keep the
    result), ``jobs`` jobs per drain."""
    if "threads" in which:
        await run(
            lambda: measured_drain(
                app, dsn, "threads", ["noop_sync"] * jobs, 1, concurrency, f"sync tasks, 1 x {concurrency}"
            )
        )
    if "mixed" in which:
        note = f"1 % of jobs sleep 1 s, 1 x {concurrency}"
        await run(lambda: measured_drain(app, dsn, "mixed", mixed_tasks(jobs), 1, concurrency, note))
    if "concurrency" in which:
        for c in CONCURRENCIES:
            await run(
                lambda c=c: measured_drain(app, dsn, f"concurrency_{c}", ["noop"] * jobs, 1, c, f"1 process x {c}")
            )
    if "processes" in which:
        for p in PROCESSES:
            await run(
                lambda p=p: measured_drain(
                    app, dsn, f"processes_{p}", ["noop"] * jobs, p, concurrency, f"{p} process(es) x {concurrency}"
                )
            )
