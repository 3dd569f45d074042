"""Shared test helpers: run an in-process worker until jobs are final, read the table."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterable
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


def wait_until(predicate: Callable[[], object], timeout: float, what: str, interval: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


class WorkerProcesses:
    """Real `pgq worker --app tests.apps.basic:app` (or ``app=``) processes, each logging to a file.

    Fault tests pass short intervals through ``env`` (PGQ_HEARTBEAT_INTERVAL, ...);
    every process still alive at the end of the test is killed.
    """

    def __init__(self, dsn: str, folder: Path) -> None:
        self.dsn = dsn
        self.logs = folder
        self.run_log = folder / "runs"
        self.run_log.mkdir()
        self.procs: list[subprocess.Popen[bytes]] = []

    def __call__(
        self, *args: str, env: dict[str, str] | None = None, app: str = "tests.apps.basic:app"
    ) -> subprocess.Popen[bytes]:
        full_env = {
            **os.environ,
            "DATABASE_URL": self.dsn,
            "PYTHONPATH": str(Path(__file__).resolve().parent.parent),
            "PGQ_TEST_RUN_LOG": str(self.run_log),
            **(env or {}),
        }
        with open(self.log_path(len(self.procs)), "wb") as out:  # the child keeps its own copy
            proc = subprocess.Popen(
                [sys.executable, "-m", "pgq", "worker", "--app", app, *args],
                env=full_env,
                cwd=Path(__file__).resolve().parent.parent,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        self.procs.append(proc)
        return proc

    def log_path(self, index: int) -> Path:
        return self.logs / f"worker{index}.log"

    def all_logs(self) -> str:
        return "".join(self.log_path(i).read_text() for i in range(len(self.procs)))

    def kill_all(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
            proc.wait(10)


def success_params(job_id: int, attempt: int, worker_id: str, result: str = "1") -> dict[str, Any]:
    """Parameters of job_record_outcomes that record one success (``result`` is JSON text)."""
    return {
        "worker_id": worker_id,
        "ids": [job_id],
        "attempts": [attempt],
        "kinds": ["succeeded"],
        "results": [result],
        "errors": [None],
        "retry_in": [None],
        "percents": [None],
        "messages": [None],
    }
