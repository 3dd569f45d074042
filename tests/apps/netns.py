"""Tasks for the network-namespace tests: each execution is recorded in the table
netns_runs (job id, attempt, host, pid), from inside the host that runs it, and returns
the host's label (PGQ_TEST_HOST), so a test can tell which host's outcome stuck."""

from __future__ import annotations

import asyncio
import os

import psycopg

import pgq
from pgq import _db

app = pgq.App()
_conn: psycopg.AsyncConnection[tuple[object, ...]] | None = None
_lock: asyncio.Lock | None = None
HOST = os.environ.get("PGQ_TEST_HOST", "?")
_INSERT = "INSERT INTO netns_runs (job_id, attempt, host, pid) VALUES (%s, %s, %s, %s)"


async def _record() -> None:
    """One row for this execution, over this process's own connection (reopened once if
    a partition broke it)."""
    global _conn, _lock
    if _lock is None:
        _lock = asyncio.Lock()
    job = pgq.current_job().job
    async with _lock:
        for retry in (False, True):
            try:
                if _conn is None or _conn.closed:
                    _conn = await _db.connect_async(os.environ["DATABASE_URL"])
                await _conn.execute(_INSERT, (job.id, job.attempt, HOST, os.getpid()))
                return
            except (psycopg.OperationalError, pgq.DatabaseUnavailableError):
                if _conn is not None:
                    await _conn.close()
                _conn = None
                if retry:
                    raise


@app.task
async def record(n: int = 0) -> str:
    await _record()
    return HOST


@app.task
async def hold(seconds: float) -> str:
    await _record()
    await asyncio.sleep(seconds)
    return HOST
