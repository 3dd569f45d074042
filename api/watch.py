"""Following a job: ``GET /jobs/{id}/wait`` (long-poll) and ``GET /jobs/{id}/events`` (SSE).

Both are woken by the shared listener (api/events.py), never by a sleep loop. Each
subscribes before reading the row, so no change between the read and the wait is lost.
Both end on client disconnect and when the server shuts down.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

import pgq
from api.auth import Auth, Scope
from api.body import job_id, read_query
from api.events import RESYNC, Event, JobEvents
from api.schemas import WaitQuery

PING_SECONDS = 15.0
"""An SSE comment this often keeps proxies from closing an idle stream."""


async def next_event(changes: asyncio.Queue[Event], within: float, *stops: asyncio.Event) -> Event | None:
    """The next change, or None after ``within`` seconds or when any of ``stops`` is set."""
    if within <= 0 or any(s.is_set() for s in stops):
        return None
    getter = asyncio.ensure_future(changes.get())
    waiters = [asyncio.ensure_future(s.wait()) for s in stops]
    try:
        await asyncio.wait([getter, *waiters], timeout=within, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for pending in [getter, *waiters]:
            pending.cancel()
    if getter.done() and not getter.cancelled():
        event = getter.result()
        while not changes.empty():  # several changes at once: one read of the row covers them
            newer = changes.get_nowait()
            event = RESYNC if RESYNC in (event, newer) else newer
        return event
    return None


@contextlib.contextmanager
def disconnect_watch(request: Request) -> Iterator[asyncio.Event]:
    """An event set when the client goes away (for a long-poll that sends nothing meanwhile)."""
    gone = asyncio.Event()

    async def watch() -> None:
        while True:
            message = await request.receive()
            if message["type"] == "http.disconnect":
                gone.set()
                return

    task = asyncio.create_task(watch())
    try:
        yield gone
    finally:
        task.cancel()


def _sse(event: str, data: dict[str, Any]) -> str:
    return f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"


def routes(queue: pgq.App, events: JobEvents, auth: Auth) -> list[Route]:
    @auth.require(Scope.READ)
    async def wait_job(request: Request) -> Response:
        """Return the job as soon as it is final, or as it is when the timeout passes."""
        jid = job_id(request)
        timeout = read_query(request, WaitQuery).timeout
        await events.listening()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        with events.subscribe(jid) as changes, disconnect_watch(request) as gone:
            job = await queue.get_job(jid)
            while not job.is_final:
                if await next_event(changes, deadline - loop.time(), events.closing, gone) is None:
                    # Timeout (or shutdown): the job as it is now. Not every change is
                    # announced (a cancel request on a running job keeps its state).
                    job = await queue.get_job(jid)
                    break
                job = await queue.get_job(jid)
        return JSONResponse(job.to_dict())

    @auth.require(Scope.READ)
    async def job_events(request: Request) -> Response:
        """Server-Sent Events: ``state`` and ``progress`` changes, then ``end`` with the final job."""
        jid = job_id(request)
        await events.listening()
        await queue.get_job(jid)  # 404 as JSON before the stream starts
        return StreamingResponse(
            _stream(queue, events, jid),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    return [
        Route("/jobs/{id}/wait", wait_job, methods=["GET"]),
        Route("/jobs/{id}/events", job_events, methods=["GET"]),
    ]


async def _stream(queue: pgq.App, events: JobEvents, jid: int) -> AsyncIterator[str]:
    # Subscribed here, inside the generator, so the subscription ends with the stream
    # however it ends (job final, client gone, server stopping).
    with events.subscribe(jid) as changes:
        try:
            job = await queue.get_job(jid)
        except pgq.JobNotFoundError:
            return
        last = (job.state.value, job.attempt)
        yield _sse("state", {"id": jid, "state": job.state.value, "attempt": job.attempt})
        progress = job.progress
        if progress is not None:
            yield _sse("progress", {"id": jid, "progress": progress})
        while not job.is_final:
            event = await next_event(changes, PING_SECONDS, events.closing)
            if events.closing.is_set():
                return
            if event is None:
                yield ": ping\n\n"
                continue
            if event == RESYNC or event.progress or pgq.JobState(event.state).is_final:
                job = await queue.get_job(jid)
                current = (job.state.value, job.attempt)
            else:
                current = (event.state, event.attempt)
            if current != last:
                last = current
                yield _sse("state", {"id": jid, "state": current[0], "attempt": current[1]})
            if job.progress != progress:
                progress = job.progress
                yield _sse("progress", {"id": jid, "progress": progress})
        yield _sse("end", job.to_dict())
