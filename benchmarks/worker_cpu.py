"""The worker's own CPU per job while it drains no-op jobs: a number the machine's load
barely moves (unlike a drain rate on a shared 2-core machine), for comparing two
versions of the worker in one run.

    DATABASE_URL=postgresql://postgres@127.0.0.1/postgres .venv/bin/python -m benchmarks.worker_cpu

Enqueues --jobs no-op jobs into a throwaway database, then runs one in-process worker
(--concurrency) until they are all final, and prints JSON: CPU seconds of this process
per 1,000 jobs during the drain, and the wall-clock drain rate. To compare versions,
run it with PYTHONPATH pointing at each checkout in turn, alternating.
"""

from __future__ import annotations

import asyncio
import json
import time

import psycopg

from benchmarks import command_line
from pgq.app import App
from pgq.bench.database import fresh_database
from pgq.bench.workloads import prefill
from pgq.worker import Worker


async def _drain(dsn: str, jobs: int, concurrency: int) -> dict[str, float]:
    app = App(dsn)

    @app.task(max_attempts=1)
    async def noop() -> None:
        """Nothing: what is measured is the worker around the task."""

    async with app:
        await prefill(app, jobs, 5000)
        worker = Worker(app, concurrency=concurrency, poll_interval=0.5)
        cpu, wall = time.process_time(), time.perf_counter()
        task = asyncio.create_task(worker.run())
        async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
            while True:
                row = await (await conn.execute("SELECT count(*) FROM pgq.jobs WHERE finished_at IS NULL")).fetchone()
                if row is not None and row[0] == 0:
                    break
                await asyncio.sleep(0.05)
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        worker.stop()
        await task
    return {"jobs": jobs, "cpu_ms_per_1000_jobs": round(1000 * 1000 * cpu / jobs, 1), "rate": round(jobs / wall, 1)}


def main() -> None:
    options = command_line.parse(__doc__, jobs=5000, concurrency=10)
    with fresh_database(command_line.server_dsn(), "pgq_worker_cpu") as dsn:
        print(json.dumps(asyncio.run(_drain(dsn, options.jobs, options.concurrency))))


if __name__ == "__main__":
    main()
