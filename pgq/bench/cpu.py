"""CPU time of the processes a bench workload keeps busy, read from /proc (Linux).

``Meter`` does the same for the enqueue workloads, which run in the bench process
itself: its CPU time, and that of the database's backends.

Workers: the user + system time of the worker processes the bench started (their own
threads included, not their start-up: sampled once they are idle and again when the
last job has finished). Postgres: the same for the server processes that serve the
bench database's connections (the backends of ``pg_stat_activity``), which works
only when the server runs on this machine; the server's shared background processes
(WAL writer, checkpointer) are not counted. Unavailable figures are None.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable
from pathlib import Path
from types import TracebackType
from typing import Any

import psycopg

from pgq.bench.queries import BENCH_QUERIES

TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU of one process so far; None if it cannot be read."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) / TICK


def sample(pids: Iterable[int]) -> dict[int, float]:
    """CPU seconds so far of each readable process among ``pids``."""
    return {pid: s for pid in pids if (s := cpu_seconds(pid)) is not None}


def used(before: dict[int, float], after: dict[int, float]) -> float | None:
    """CPU seconds spent between two samples (a process first seen after counts whole)."""
    if not after:
        return None
    return sum(s - before.get(pid, 0.0) for pid, s in after.items())


def per_job_us(seconds: float | None, jobs: int) -> float | None:
    """Microseconds of CPU per job."""
    return None if seconds is None or jobs <= 0 else round(seconds / jobs * 1e6, 1)


class Meter:
    """CPU of this process (the producer: enqueue workloads run in the bench process)
    and of the database's backends, from entering to leaving; ``per_job(n)`` gives the
    figures a workload reports (``client_cpu_us_per_job``, ``postgres_cpu_us_per_job``)."""

    def __init__(self, dsn: str) -> None:
        self._dsn = dsn
        self._conn: psycopg.AsyncConnection[Any] | None = None
        self._client = 0.0
        self._backends: dict[int, float] = {}
        self.client_seconds = 0.0
        self.postgres_seconds: float | None = None

    async def _sample(self) -> dict[int, float]:
        assert self._conn is not None
        rows = await (await self._conn.execute(BENCH_QUERIES["bench_backend_pids"])).fetchall()
        return sample(int(row[0]) for row in rows)

    async def __aenter__(self) -> Meter:
        self._conn = await psycopg.AsyncConnection.connect(self._dsn, autocommit=True)
        self._backends = await self._sample()
        self._client = time.process_time()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.client_seconds = time.process_time() - self._client
        assert self._conn is not None
        try:
            self.postgres_seconds = used(self._backends, await self._sample())
        finally:
            await self._conn.close()

    def per_job(self, jobs: int) -> dict[str, float | None]:
        return {
            "client_cpu_us_per_job": per_job_us(self.client_seconds, jobs),
            "postgres_cpu_us_per_job": per_job_us(self.postgres_seconds, jobs),
        }
