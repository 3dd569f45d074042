"""What the queue looks like from outside: per-queue statistics and registered workers.

Read by ``App.queue_stats()`` / ``App.list_workers()`` and served by the HTTP API.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any

from pgq._json import row_as_json
from pgq.job import JobState

EXACT_FINAL_COUNT_ROWS = 100_000
"""Below this many rows in pgq.jobs (planner estimate), finished jobs are counted exactly."""


@dataclasses.dataclass(frozen=True, slots=True)
class QueueStats:
    """One queue: jobs per state, the oldest ready job's wait, recent throughput.

    Counts of non-final states are exact (they come from the small partial indexes).
    Counts of final states are exact on a small table and estimated from planner
    statistics on a large one (``final_counts_estimated``); rare pairs may read 0.
    """

    queue: str
    counts: dict[str, int]
    oldest_queued_seconds: float | None
    finished_last_minute: dict[str, int]
    final_counts_estimated: bool
    paused_at: dt.datetime | None = None
    """When the queue was paused (``pgq pause``); None when workers claim from it."""

    @property
    def paused(self) -> bool:
        return self.paused_at is not None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form, for the HTTP API (``paused`` included)."""
        return {**row_as_json(self), "paused": self.paused}

    @classmethod
    def empty_counts(cls) -> dict[str, int]:
        return {s.value: 0 for s in JobState}


@dataclasses.dataclass(frozen=True, slots=True)
class WorkerInfo:
    """One row of ``pgq.workers``: a worker process and when it was last heard from."""

    id: str
    host: str
    pid: int
    queues: list[str]
    concurrency: int
    started_at: dt.datetime
    heartbeat_at: dt.datetime
    seconds_since_heartbeat: float

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form, for the HTTP API."""
        return row_as_json(self)
