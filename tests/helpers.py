"""Shared test helpers: run an in-process worker until jobs are final, read the table."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Iterable
from pathlib import Path
from typing import Any

import psycopg

import pgq
from pgq.worker import Worker


@contextlib.asynccontextmanager
async def running_worker(app: pgq.App, **options: Any) -> AsyncIterator[Worker]:
    """A worker running in this event loop for the duration of the block."""
    options.setdefault("poll_interval", 0.2)
    options.setdefault("concurrency", 4)
    worker = Worker(app, **options)
    task = asyncio.create_task(worker.run())
    try:
        yield worker
    finally:
        worker.stop()
        await asyncio.wait_for(task, 30)


async def wait_final(app: pgq.App, job_ids: Iterable[int], timeout: float = 20) -> list[pgq.Job]:
    """Wait until every job is in a final state; return them in the given order."""
    ids = list(job_ids)
    deadline = time.monotonic() + timeout
    while True:
        jobs = [await app.get_job(i) for i in ids]
        if all(j.is_final for j in jobs):
            return jobs
        if time.monotonic() > deadline:
            raise AssertionError(f"jobs not final after {timeout}s: {[(j.id, j.state.value) for j in jobs]}")
        await asyncio.sleep(0.05)


def count_rows(dsn: str, where: str = "true", params: Iterable[Any] = ()) -> int:
    query = "SELECT count(*) FROM pgq.jobs WHERE " + where  # test-only helper, fixed fragments
    with psycopg.connect(dsn) as conn:
        row = conn.execute(query, tuple(params)).fetchone()
    assert row is not None
    return int(row[0])


def read_runs(folder: Path) -> list[int]:
    """Job ids executed, one entry per execution, from every worker process's log."""
    runs: list[int] = []
    for log in folder.glob("*.log"):
        runs.extend(int(line.split()[0]) for line in log.read_text().splitlines() if line.strip())
    return runs
