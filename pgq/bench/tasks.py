"""The app the benchmark's worker processes run: tasks that do nothing, quickly.

``pgq worker --app pgq.bench.tasks:app`` with DATABASE_URL pointing at the bench
database. ``stamp`` returns the wall-clock time at which it started, so latency is
measured from a timestamp taken in the worker, not from database timestamps.
``noop_sync`` and ``slow`` are the threads and mixed scenarios' jobs.
"""

from __future__ import annotations

import asyncio
import time

from pgq.app import App

app = App()


@app.task(max_attempts=1)
async def noop() -> None:
    """The drain workload's job: nothing to do but be claimed and completed."""


@app.task(max_attempts=1)
async def stamp(enqueued_at: float) -> float:
    """Latency probes: the producer passes its clock, the worker answers with its own."""
    del enqueued_at  # read back from the row's args
    return time.time()


@app.task(max_attempts=1)
def noop_sync() -> None:
    """The threads scenario's job: a plain function, run on one of the worker's threads."""


@app.task(max_attempts=1)
async def slow(seconds: float = 1.0) -> None:
    """The mixed scenario's 1 %: a job that holds its slot for a second."""
    await asyncio.sleep(seconds)
