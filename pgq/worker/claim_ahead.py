"""Claiming ahead: short jobs claimed beyond the free slots wait here for one.

With short jobs a worker at concurrency C would otherwise spend each claim's round
trip idle, C jobs per trip. Claiming a few more lets the next round trip overlap the
running jobs. A waiting job is 'running' in the table while another worker might
have started it, so the buffer only holds what the slots would start within
``WAIT`` seconds at the pace of recently finished jobs (none for slow jobs, none before
a job has been timed), and hands everything back when it has waited ``MAX_WAIT``: the
pace comes from finished jobs, so a turn to slow jobs shows only as slots that do not
free up.
"""

from __future__ import annotations

import asyncio
import collections
import time
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")

WAIT = 0.002
"""Claim ahead only as many jobs as the slots would start within this many seconds."""
MAX_FACTOR = 5
"""… and never more than this many times the concurrency."""
MAX_WAIT = 0.1
"""Jobs that waited this long (the slots are stuck on slower jobs) go back to the queue."""


def largest_claim(concurrency: int) -> int:
    """The most jobs one claim of a worker at ``concurrency`` can take (free slots plus
    the buffer): `pgq bench` gives its raw-SQL drain the same batch."""
    return concurrency * (1 + MAX_FACTOR)


class ClaimAhead(Generic[T]):
    """The buffer of one worker, and the pace of its jobs."""

    def __init__(self, concurrency: int, on_stale: Callable[[list[T]], None]) -> None:
        self.concurrency = concurrency
        self._on_stale = on_stale
        self._waiting: collections.deque[tuple[float, T]] = collections.deque()
        self._avg_run: float | None = None
        self._check: asyncio.TimerHandle | None = None

    def __len__(self) -> int:
        return len(self._waiting)

    def room(self) -> int:
        """How many claimed jobs may wait here for a slot."""
        if self._avg_run is None:
            return 0
        return min(MAX_FACTOR * self.concurrency, int(WAIT * self.concurrency / max(self._avg_run, 1e-6)))

    def timed(self, seconds: float) -> None:
        """A job ran this long (a moving average, so the pace follows recent jobs)."""
        self._avg_run = seconds if self._avg_run is None else self._avg_run + 0.1 * (seconds - self._avg_run)

    def add(self, item: T) -> None:
        self._waiting.append((time.monotonic(), item))
        if self._check is None:
            self._check = asyncio.get_running_loop().call_later(MAX_WAIT, self._watch)

    def pop(self) -> T | None:
        return self._waiting.popleft()[1] if self._waiting else None

    def take_all(self) -> list[T]:
        """Empty the buffer (the worker stops) and stop watching it."""
        if self._check is not None:
            self._check.cancel()
            self._check = None
        items = [item for _, item in self._waiting]
        self._waiting.clear()
        return items

    def _watch(self) -> None:
        self._check = None
        if not self._waiting:
            return
        waited = time.monotonic() - self._waiting[0][0]
        if waited < MAX_WAIT:
            self._check = asyncio.get_running_loop().call_later(MAX_WAIT - waited, self._watch)
            return
        self._avg_run = max(self._avg_run or 0.0, waited)  # no claiming ahead until jobs speed up again
        self._on_stale(self.take_all())
