"""CPU time of the processes a bench workload keeps busy, read from /proc (Linux).

Workers: the user + system time of the worker processes the bench started (their own
threads included, not their start-up: sampled once they are idle and again when the
last job has finished). Postgres: the same for the server processes that serve the
bench database's connections (the backends of ``pg_stat_activity``), which works
only when the server runs on this machine; the server's shared background processes
(WAL writer, checkpointer) are not counted. Unavailable figures are None.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

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
