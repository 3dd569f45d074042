"""What a client of the event streams holds: a filter and a bounded buffer of changes.

The listener (api/events.py) puts each change into every matching subscription without
ever waiting: a client that does not keep up fills its own buffer only. A full buffer
is emptied and replaced by one ``Resync`` (the client must read the jobs again), so a
stalled client costs at most ``limit`` references, and the others never wait for it.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import json
from typing import Any

DEFAULT_BUFFER = 1000
"""Changes one client may have waiting before they are dropped for a resync."""


@dataclasses.dataclass(frozen=True, slots=True)
class Resync:
    """Changes were or may have been missed: read the jobs again. ``reason`` says why."""

    reason: str


OVERFLOW = Resync("overflow")
"""The client's buffer was full: changes were dropped."""
RECONNECTED = Resync("reconnected")
"""The API's LISTEN connection was re-established: changes may have been missed meanwhile."""
BULK_INSERT = Resync("bulk_insert")
"""More than 100 jobs were inserted in one statement: they are announced as a count only."""


class JobChange:
    """One notification: a job's state after the change, and whether its progress changed.

    ``progress_value`` is the new progress when ``progress_known`` (the trigger leaves it
    out only when it is very large). ``xid`` is the writing transaction. The wire forms
    for the queue-wide streams are rendered once, however many clients receive them.
    """

    __slots__ = (
        "_sse",
        "_ws",
        "attempt",
        "id",
        "progress",
        "progress_known",
        "progress_value",
        "queue",
        "state",
        "task",
        "xid",
    )

    def __init__(
        self,
        *,
        id: int,
        queue: str,
        task: str,
        state: str,
        attempt: int,
        progress: bool = False,
        xid: int | None = None,
        progress_known: bool = False,
        progress_value: dict[str, Any] | None = None,
    ) -> None:
        self.id = id
        self.queue = queue
        self.task = task
        self.state = state
        self.attempt = attempt
        self.progress = progress
        self.xid = xid
        self.progress_known = progress_known
        self.progress_value = progress_value
        self._sse: str | None = None
        self._ws: str | None = None

    def public(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "queue": self.queue,
            "task": self.task,
            "state": self.state,
            "attempt": self.attempt,
            "progress": self.progress,
        }

    def sse(self) -> str:
        if self._sse is None:
            self._sse = sse("job", self.public())
        return self._sse

    def ws(self) -> str:
        if self._ws is None:
            self._ws = _compact({"type": "job", **self.public()})
        return self._ws


Item = JobChange | Resync


def _compact(data: dict[str, Any]) -> str:
    return json.dumps(data, separators=(",", ":"))


def sse(event: str, data: dict[str, Any]) -> str:
    """One Server-Sent Event (the JSON has no newline, so one data line)."""
    return f"event: {event}\ndata: {_compact(data)}\n\n"


def resync_sse(resync: Resync) -> str:
    return sse("resync", {"reason": resync.reason})


def unavailable_sse(message: str) -> str:
    """The last event of a stream whose source of changes (the LISTEN connection) was lost."""
    return sse("unavailable", {"message": message})


def resync_ws(resync: Resync) -> str:
    return _compact({"type": "resync", "reason": resync.reason})


@dataclasses.dataclass(frozen=True, slots=True)
class EventFilter:
    """Which jobs a queue-wide stream wants: ``None`` means any, a set means one of these."""

    queues: frozenset[str] | None = None
    tasks: frozenset[str] | None = None
    states: frozenset[str] | None = None

    def matches(self, change: JobChange) -> bool:
        return (
            (self.queues is None or change.queue in self.queues)
            and (self.tasks is None or change.task in self.tasks)
            and (self.states is None or change.state in self.states)
        )

    def matches_bulk_insert(self, queue: str) -> bool:
        """A bulk insert names only its queue; its jobs are queued, scheduled or waiting."""
        return (self.queues is None or queue in self.queues) and (
            self.states is None or not self.states.isdisjoint({"queued", "scheduled", "waiting"})
        )


class Subscription:
    """One client's bounded buffer; filled by the listener, drained by the client's task.

    Waiting costs one future and one timer (no task per wait): with hundreds of clients
    woken by every change, that is most of the server's work.
    """

    def __init__(self, limit: int = DEFAULT_BUFFER, event_filter: EventFilter | None = None) -> None:
        if limit < 1:
            raise ValueError(f"a subscription buffer must hold at least one change, got {limit}")
        self.limit = limit
        self.filter = event_filter or EventFilter()
        self.dropped = 0
        """Changes dropped because the buffer was full (for tests and logs)."""
        self.peak = 0
        """The most changes that were ever waiting at once."""
        self._changes: collections.deque[JobChange] = collections.deque()
        self._resync: Resync | None = None
        self._waiter: asyncio.Future[None] | None = None

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    def put(self, change: JobChange) -> None:
        if len(self._changes) >= self.limit:
            self.dropped += len(self._changes) + 1
            self.resync(OVERFLOW)
            return
        self._changes.append(change)
        self.peak = max(self.peak, len(self._changes))
        self._wake()

    def resync(self, reason: Resync) -> None:
        """Waiting changes are superseded: the client reads everything again anyway."""
        self._changes.clear()
        if self._resync is None:
            self._resync = reason
        self._wake()

    def interrupt(self) -> None:
        """End a wait in ``next`` now (the client left, or the server is stopping)."""
        self._wake()

    @property
    def waiting(self) -> int:
        return len(self._changes)

    def take(self) -> list[Item]:
        """Everything waiting, a pending resync first."""
        items: list[Item] = [] if self._resync is None else [self._resync]
        items.extend(self._changes)
        self._resync = None
        self._changes.clear()
        return items

    async def next(self, within: float) -> list[Item]:
        """What is waiting, as soon as there is any; empty after ``within`` seconds or an interrupt."""
        if not self._changes and self._resync is None and within > 0:
            loop = asyncio.get_running_loop()
            self._waiter = waiter = loop.create_future()
            timer = loop.call_later(within, self._wake)
            try:
                await waiter
            finally:
                timer.cancel()
                self._waiter = None
        return self.take()
