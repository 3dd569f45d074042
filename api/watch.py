"""Following one job: ``GET /jobs/{id}/wait`` (long-poll) and ``GET /jobs/{id}/events`` (SSE).

Both are woken by the shared listener (api/events.py), never by a sleep loop. Each
subscribes before reading the row, so no change between the read and the wait is lost.

The event stream tells each change once and in the order it happened. It follows the
notifications, which arrive in commit order and carry the new state and progress, and
reads the row only to start, after a resync and for ``end``. Reading the row on every
notification (as it once did) reported a later row: a progress notification read a row
that had meanwhile succeeded, and the stream sent the final state before the progress
that came first. A notification whose transaction the last read already saw (its
snapshot says so) is skipped, so an older change never follows a newer read.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import AsyncGenerator, Iterator
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

import pgq
from pgq.api.auth import Auth, Scope
from pgq.api.body import job_id, read_query
from pgq.api.events import LOST_MESSAGE, JobEvents
from pgq.api.schemas import WaitQuery
from pgq.api.sse import PING, PING_SECONDS, Body, EventStream
from pgq.api.subscriptions import Resync, Subscription, sse, unavailable_sse
from pgq.db.driver import Op
from pgq.db.events import job_with_snapshot
from pgq.errors import DatabaseUnavailableError
from pgq.job import FINAL_STATES, Job


@contextlib.contextmanager
def disconnect_watch(request: Request, subscription: Subscription) -> Iterator[asyncio.Event]:
    """An event set when the client goes away (for a long-poll that sends nothing meanwhile)."""
    gone = asyncio.Event()

    async def watch() -> None:
        while True:
            message = await request.receive()
            if message["type"] == "http.disconnect":
                gone.set()
                subscription.interrupt()
                return

    task = asyncio.create_task(watch())
    try:
        yield gone
    finally:
        task.cancel()


@dataclasses.dataclass(frozen=True, slots=True)
class Snapshot:
    """A Postgres snapshot (pg_current_snapshot): which transactions a read saw."""

    xmin: int
    xmax: int
    in_progress: frozenset[int]

    @classmethod
    def parse(cls, text: str) -> Snapshot:
        xmin, xmax, xip = text.split(":")
        return cls(int(xmin), int(xmax), frozenset(int(x) for x in xip.split(",") if x))

    def sees(self, xid: int) -> bool:
        """Whether a committed transaction was visible to this snapshot (pg_visible_in_snapshot)."""
        return xid < self.xmin or (xid < self.xmax and xid not in self.in_progress)


def _read_job(jid: int) -> Op[tuple[Job, Snapshot] | None]:
    read = yield from job_with_snapshot(jid)
    return None if read is None else (read[0], Snapshot.parse(read[1]))


class _Told:
    """What the client has been told of one job; each step returns the events it adds."""

    def __init__(self, jid: int) -> None:
        self.jid = jid
        self.state: str | None = None
        self.attempt: int | None = None
        self.progress: dict[str, Any] | None = None

    @property
    def final(self) -> bool:
        return self.state in FINAL_STATES

    def step(self, state: str, attempt: int, progress_changed: bool, progress: dict[str, Any] | None) -> list[str]:
        told: list[str] = []
        if (state, attempt) != (self.state, self.attempt):
            self.state, self.attempt = state, attempt
            told.append(sse("state", {"id": self.jid, "state": state, "attempt": attempt}))
        if progress_changed and progress != self.progress:
            self.progress = progress
            # A claim starts an attempt (and clears the progress) before the task reports,
            # so for a running job the state comes first; any other state ended an
            # attempt, whose last progress came before that state.
            told.insert(len(told) if state == "running" else 0, sse("progress", {"id": self.jid, "progress": progress}))
        return told


def _job_stream(queue: pgq.App, jid: int, lost: asyncio.Event) -> Body:
    async def body(changes: Subscription, stops: tuple[asyncio.Event, ...]) -> AsyncGenerator[str, None]:
        read = await queue.run(_read_job(jid))
        if read is None:
            return
        job, snapshot = read
        told = _Told(jid)
        first = told.step(job.state.value, job.attempt, job.progress is not None, job.progress)
        yield "".join(first)
        last_read: Job | None = job
        while not told.final:
            items = await changes.next(PING_SECONDS)
            if any(stop.is_set() for stop in stops):
                return
            if lost.is_set():  # no more changes would come: end rather than go quiet
                yield unavailable_sse(LOST_MESSAGE)
                return
            if not items:
                yield PING
                continue
            out: list[str] = []
            for item in items:
                if isinstance(item, Resync) or (item.progress and not item.progress_known):
                    read = await queue.run(_read_job(jid))
                    if read is None:
                        return  # deleted (pruned) meanwhile
                    last_read, snapshot = read
                    out += told.step(last_read.state.value, last_read.attempt, True, last_read.progress)
                elif item.xid is None or not snapshot.sees(item.xid):
                    last_read = None
                    out += told.step(item.state, item.attempt, item.progress, item.progress_value)
                if told.final:
                    break
            if out:
                yield "".join(out)
        if last_read is None or not last_read.is_final:
            try:
                last_read = await queue.get_job(jid)
            except pgq.JobNotFoundError:
                return
        yield sse("end", last_read.to_dict())

    return body


def routes(queue: pgq.App, events: JobEvents, auth: Auth, *, stall_seconds: float) -> list[Route]:
    @auth.require(Scope.READ)
    async def wait_job(request: Request) -> Response:
        """Return the job as soon as it is final, or as it is when the timeout passes."""
        jid = job_id(request)
        timeout = read_query(request, WaitQuery).timeout
        await events.listening()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        with events.subscribe(jid) as changes, disconnect_watch(request, changes) as gone:
            job = await queue.get_job(jid)
            while not job.is_final and not events.closing.is_set() and not gone.is_set():
                woken = await changes.next(deadline - loop.time())
                if events.lost.is_set():
                    raise DatabaseUnavailableError(LOST_MESSAGE)
                if not woken:
                    # Timeout (or shutdown): the job as it is now. Not every change is
                    # announced (a cancel request on a running job keeps its state).
                    job = await queue.get_job(jid)
                    break
                job = await queue.get_job(jid)
        return JSONResponse(job.to_dict())

    @auth.require(Scope.READ)
    async def job_events(request: Request) -> Response:
        """Server-Sent Events: ``state`` and ``progress`` changes in order, then ``end`` with the final job."""
        jid = job_id(request)
        await events.listening()
        await queue.get_job(jid)  # 404 as JSON before the stream starts
        return EventStream(
            lambda: events.subscribe(jid), _job_stream(queue, jid, events.lost), events.closing, stall_seconds
        )

    return [
        Route("/jobs/{id}/wait", wait_job, methods=["GET"]),
        Route("/jobs/{id}/events", job_events, methods=["GET"]),
    ]
