"""One LISTEN connection per API process (pgq.listen's client), fanned out to every waiting request.

The trigger jobs_notify_changed announces each change of a job's state or progress on
pgq_job_events. Requests subscribe to one job id and then read the row, so a change
that lands after the read is always delivered. After a reconnect every subscriber gets
a RESYNC marker: a change may have been missed while the connection was down, so the
row must be read again. ``close()`` (server shutdown) ends every wait at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
from collections.abc import Callable, Iterator
from typing import Any, Literal

from pgq._queries import QUERIES
from pgq.errors import DatabaseUnavailableError
from pgq.listen import ListenClient

log = logging.getLogger("pgq.api")


@dataclasses.dataclass(frozen=True, slots=True)
class JobChange:
    """One notification: the job's state after the change, and whether progress changed."""

    id: int
    queue: str
    state: str
    attempt: int
    progress: bool


RESYNC: Literal["resync"] = "resync"
Event = JobChange | Literal["resync"]


class JobEvents:
    """``dsn`` is where to LISTEN (PGQ_LISTEN_URL or DATABASE_URL); ``allow_pooler`` when
    it was given explicitly (a session-pooling PgBouncer is fine, a transaction one is not)."""

    def __init__(
        self,
        dsn: Callable[[], str],
        on_change: Callable[[JobChange], None] | None = None,
        *,
        allow_pooler: bool = False,
    ) -> None:
        self._on_change = on_change
        self._subscribers: dict[int, set[asyncio.Queue[Event]]] = {}
        self._task: asyncio.Task[None] | None = None
        self._client = ListenClient(
            dsn,
            QUERIES["job_events_listen"],
            lambda notify: self._dispatch(notify.payload),
            log=log,
            fallback="wait and events re-read their jobs once it is back",
            application_name="pgq-api-listener",
            on_connect=self._resync_all,  # whatever changed while not listening is read again
            allow_pooler=allow_pooler,
        )
        self._listening = self._client.connected
        self.closing = asyncio.Event()
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
        try:
            await asyncio.wait_for(self._listening.wait(), within)
        except TimeoutError:
            if self._client.refused is not None:
                raise DatabaseUnavailableError(f"cannot LISTEN for job changes: {self._client.refused}") from None
            raise DatabaseUnavailableError("cannot LISTEN for job changes: the database does not answer") from None

    def shutdown_soon(self) -> None:
        """Thread- and signal-safe: end every wait and stream (the server is stopping)."""
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self.closing.set)

    async def close(self) -> None:
        self.closing.set()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    # -- subscribing --------------------------------------------------------------------

    @contextlib.contextmanager
    def subscribe(self, job_id: int) -> Iterator[asyncio.Queue[Event]]:
        changes: asyncio.Queue[Event] = asyncio.Queue()
        self._subscribers.setdefault(job_id, set()).add(changes)
        try:
            yield changes
        finally:
            subscribers = self._subscribers.get(job_id)
            if subscribers is not None:
                subscribers.discard(changes)
                if not subscribers:
                    del self._subscribers[job_id]

    @property
    def subscriber_count(self) -> int:
        return sum(len(s) for s in self._subscribers.values())

    # -- the listener ------------------------------------------------------------------

    def _dispatch(self, payload: str) -> None:
        try:
            data: dict[str, Any] = json.loads(payload)
            change = JobChange(
                id=int(data["id"]),
                queue=str(data["queue"]),
                state=str(data["state"]),
                attempt=int(data["attempt"]),
                progress=bool(data["progress"]),
            )
        except (ValueError, KeyError, TypeError):
            log.warning("ignoring a malformed pgq_job_events payload: %.200s", payload)
            return
        if self._on_change is not None:
            self._on_change(change)
        for changes in self._subscribers.get(change.id, ()):
            changes.put_nowait(change)

    def _resync_all(self) -> None:
        for subscribers in self._subscribers.values():
            for changes in subscribers:
                changes.put_nowait(RESYNC)
