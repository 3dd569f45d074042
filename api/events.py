"""One LISTEN connection per API process (pgq.listen's client), fanned out to every waiting request and stream.

The triggers on pgq.jobs announce each new job and each change of a job's state or
progress on pgq_job_events (migration 0012 gives the payload). Per-job waiters and
streams subscribe to one job id; queue-wide streams (GET /events, /ws) subscribe with a
filter. Every subscriber has a bounded buffer (api/subscriptions.py): dispatching never
waits for a client. After a reconnect every subscriber gets a resync: a change may have
been missed while the connection was down. ``close()`` (server shutdown) ends every wait.

A connection lost for a moment (a backend terminated, a blip) is reconnected at once and
every stream just gets its resync. One still down after LOST_GRACE seconds (the database
unreachable, or a half-open link found by TCP keepalives or the self-ping) sets ``lost``
until it is back: every wait and stream is woken and ends (a long-poll answers 503, an
event stream sends ``unavailable`` and ends, a WebSocket closes with 1013), and new ones
are refused with 503 at once instead of hanging.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable, Iterator
from typing import Any

from pgq.api.subscriptions import BULK_INSERT, DEFAULT_BUFFER, RECONNECTED, EventFilter, JobChange, Subscription
from pgq.db.events import LISTEN_JOB_EVENTS
from pgq.errors import DatabaseUnavailableError
from pgq.listen import ListenClient

log = logging.getLogger("pgq.api")

LOST_GRACE = 3.0
"""Seconds the LISTEN connection may be down (reconnecting) before waits and streams end."""

LOST_MESSAGE = "the API lost its LISTEN connection to the database; try again when it is back"


def parse_change(data: dict[str, Any]) -> JobChange:
    """A row's notification; KeyError, TypeError or ValueError when it is not one."""
    progress_known = "progress_value" in data
    value = data.get("progress_value")
    if value is not None and not isinstance(value, dict):
        raise TypeError("progress_value is not an object")
    xid = data.get("xid")
    return JobChange(
        id=int(data["id"]),
        queue=str(data["queue"]),
        task=str(data["task"]),
        state=str(data["state"]),
        attempt=int(data["attempt"]),
        progress=bool(data["progress"]),
        xid=None if xid is None else int(xid),
        progress_known=progress_known,
        progress_value=value,
    )


class JobEvents:
    """``dsn`` is where to LISTEN (PGQ_LISTEN_URL or DATABASE_URL); ``allow_pooler`` when
    it was given explicitly (a session-pooling PgBouncer is fine, a transaction one is not)."""

    def __init__(
        self,
        dsn: Callable[[], str],
        on_change: Callable[[JobChange], None] | None = None,
        *,
        allow_pooler: bool = False,
        buffer: int = DEFAULT_BUFFER,
    ) -> None:
        self._on_change = on_change
        self.buffer = buffer
        """Changes each subscriber may have waiting (see api/subscriptions.py)."""
        self._by_job: dict[int, set[Subscription]] = {}
        self._all: set[Subscription] = set()
        self._task: asyncio.Task[None] | None = None
        self._client = ListenClient(
            dsn,
            LISTEN_JOB_EVENTS,
            lambda notify: self._dispatch(notify.payload),
            log=log,
            fallback="wait and events re-read their jobs once it is back",
            application_name="pgq-api-listener",
            on_connect=self._connected,
            on_disconnect=self._disconnected,
            allow_pooler=allow_pooler,
        )
        self._listening = self._client.connected
        self.closing = asyncio.Event()
        self.lost = asyncio.Event()
        """Set while the LISTEN connection, once established, has been down for LOST_GRACE seconds."""
        self._lost_timer: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    # -- lifecycle --------------------------------------------------------------------

    def start(self) -> None:
        """Start listening in the background (idempotent; also called lazily by a first waiter)."""
        if self._client.refused is None and (self._task is None or self._task.done()):
            self._loop = asyncio.get_running_loop()
            self._task = asyncio.create_task(self._client.run(), name="pgq-api-job-events")

    async def listening(self, within: float = 10.0) -> None:
        """Start if needed and wait until LISTEN is active; 503 if the database cannot be reached."""
        self.start()
        if self._client.refused is not None:
            raise DatabaseUnavailableError(f"cannot LISTEN for job changes: {self._client.refused}")
        if self.lost.is_set():
            raise DatabaseUnavailableError(LOST_MESSAGE)
        try:
            await asyncio.wait_for(self._listening.wait(), within)
        except TimeoutError:
            if self._client.refused is not None:
                raise DatabaseUnavailableError(f"cannot LISTEN for job changes: {self._client.refused}") from None
            raise DatabaseUnavailableError("cannot LISTEN for job changes: the database does not answer") from None

    def shutdown_soon(self) -> None:
        """Thread- and signal-safe: end every wait and stream (the server is stopping)."""
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._stop)

    def _stop(self) -> None:
        self.closing.set()
        self._interrupt_all()

    async def close(self) -> None:
        self._stop()
        if self._lost_timer is not None:
            self._lost_timer.cancel()
            self._lost_timer = None
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    # -- subscribing --------------------------------------------------------------------

    @contextlib.contextmanager
    def subscribe(self, job_id: int) -> Iterator[Subscription]:
        """The changes of one job, from now on."""
        subscription = Subscription(self.buffer)
        self._by_job.setdefault(job_id, set()).add(subscription)
        try:
            yield subscription
        finally:
            subscribers = self._by_job.get(job_id)
            if subscribers is not None:
                subscribers.discard(subscription)
                if not subscribers:
                    del self._by_job[job_id]

    @contextlib.contextmanager
    def subscribe_all(self, event_filter: EventFilter) -> Iterator[Subscription]:
        """The changes of every job that ``event_filter`` matches, from now on."""
        subscription = Subscription(self.buffer, event_filter)
        self._all.add(subscription)
        try:
            yield subscription
        finally:
            self._all.discard(subscription)

    @property
    def subscriber_count(self) -> int:
        return sum(len(s) for s in self._by_job.values()) + len(self._all)

    @property
    def queue_wide(self) -> frozenset[Subscription]:
        """The queue-wide subscriptions now open (for tests and diagnostics)."""
        return frozenset(self._all)

    # -- the listener ------------------------------------------------------------------

    def _dispatch(self, payload: str) -> None:
        try:
            data: dict[str, Any] = json.loads(payload)
            if "inserted" in data:  # a bulk insert: a count per queue, not one per job
                queue = str(data["queue"])
                for subscription in self._all:
                    if subscription.filter.matches_bulk_insert(queue):
                        subscription.resync(BULK_INSERT)
                return
            change = parse_change(data)
        except (ValueError, KeyError, TypeError):
            log.warning("ignoring a malformed pgq_job_events payload: %.200s", payload)
            return
        if self._on_change is not None:
            self._on_change(change)
        for subscription in self._by_job.get(change.id, ()):
            subscription.put(change)
        for subscription in self._all:
            if subscription.filter.matches(change):
                subscription.put(change)

    def _connected(self) -> None:
        if self._lost_timer is not None:
            self._lost_timer.cancel()
            self._lost_timer = None
        self.lost.clear()
        self._resync_all()  # whatever changed while not listening is read again

    def _disconnected(self) -> None:
        if not self.closing.is_set() and self._lost_timer is None:
            self._lost_timer = asyncio.get_running_loop().call_later(LOST_GRACE, self._lost)

    def _lost(self) -> None:
        self._lost_timer = None
        if not self.closing.is_set():
            self.lost.set()
            self._interrupt_all()

    def _interrupt_all(self) -> None:
        for subscribers in self._by_job.values():
            for subscription in subscribers:
                subscription.interrupt()
        for subscription in self._all:
            subscription.interrupt()

    def _resync_all(self) -> None:
        for subscribers in self._by_job.values():
            for subscription in subscribers:
                subscription.resync(RECONNECTED)
        for subscription in self._all:
            subscription.resync(RECONNECTED)
