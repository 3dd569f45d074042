"""The app the benchmark's worker processes run: tasks that do nothing, quickly.

``pgq worker --app pgq.bench.tasks:app`` with DATABASE_URL pointing at the bench
database. ``stamp`` returns the wall-clock time at which it started, so latency is
measured from a timestamp taken in the worker, not from database timestamps.
"""

from __future__ import annotations

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
