"""Queue-wide settings, the rows of ``pgq.queues``: limits across all workers, and pause.

Both live in the row the claim function already reads, so a queue with neither pays
nothing for them. Running jobs (and jobs a worker already claimed ahead) finish when a
queue is paused; resuming notifies the queue's workers, so they claim at once.
"""

from __future__ import annotations

import dataclasses
import datetime as dt

from pgq.names import check_queue_name
from pgq.spec import seconds, whole


@dataclasses.dataclass(frozen=True, slots=True)
class QueueLimits:
    """A row of pgq.queues: limits that hold across every worker of the queue."""

    queue: str
    max_running: int | None = None
    """At most this many jobs of the queue run at once, on all workers together."""
    rate_limit: int | None = None
    """At most this many job starts within any ``rate_period``."""
    rate_period: dt.timedelta | None = None

    def checked(self) -> QueueLimits:
        """These limits, validated (ValueError naming the field), with the period as a timedelta."""
        check_queue_name(self.queue)
        if self.max_running is not None:
            whole("max_running", self.max_running, 1, 1_000_000)
        if (self.rate_limit is None) != (self.rate_period is None):
            raise ValueError("rate_limit and rate_period go together: give both, or neither to remove the rate limit")
        period = None
        if self.rate_limit is not None and self.rate_period is not None:
            whole("rate_limit", self.rate_limit, 1, 10_000)
            period = seconds(self.rate_period)
            if not period:
                raise ValueError("rate_period must be longer than zero")
        return dataclasses.replace(self, rate_period=period)


@dataclasses.dataclass(frozen=True, slots=True)
class QueuePause:
    """Whether a queue is paused, and since when (a row of pgq.queues)."""

    queue: str
    paused_at: dt.datetime | None = None
    """When the queue was paused; None when it is not paused."""

    @property
    def paused(self) -> bool:
        return self.paused_at is not None
