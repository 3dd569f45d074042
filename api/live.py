"""Queue-wide live updates: ``GET /events`` (Server-Sent Events) and ``GET /ws`` (WebSocket).

Both stream the changes of every job a filter matches, fed by the API's one LISTEN
connection (api/events.py): no polling, no database connection per client. Each client
has a bounded buffer; one that falls behind gets its buffer dropped and a ``resync``
(read the jobs again), and never slows the others. A WebSocket whose messages cannot be
written for ``stall_seconds`` is closed with 1008. Shutdown ends SSE streams and closes
WebSockets with 1001.

Auth is the same as every endpoint's (api/auth.py), checked on the WebSocket handshake
too. A refused WebSocket is accepted and closed at once with 4401, 4403 or 4422 and the
reason, because a browser sees nothing of a refused handshake but the close code.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncGenerator

from pydantic import ValidationError
from starlette.datastructures import QueryParams
from starlette.requests import HTTPConnection, Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from pgq.api.auth import Auth, Scope
from pgq.api.body import invalid
from pgq.api.errors import ApiError
from pgq.api.events import LOST_MESSAGE, JobEvents
from pgq.api.schemas import EventsQuery
from pgq.api.sse import PING, PING_SECONDS, EventStream
from pgq.api.stall import SendGuard
from pgq.api.subscriptions import EventFilter, JobChange, Subscription, resync_sse, resync_ws, unavailable_sse
from pgq.errors import DatabaseUnavailableError

log = logging.getLogger("pgq.api")

STALL_SECONDS = 10.0
"""A client that cannot take one message for this long is let go (a WebSocket is closed with 1008)."""

CLOSE_WAIT_SECONDS = 10.0
"""How long a close frame may wait for a slow client to read what was sent before it."""

CLOSE_SHUTDOWN = 1001
CLOSE_TOO_SLOW = 1008
CLOSE_UNAVAILABLE = 1013


def read_filter(params: QueryParams) -> EventFilter:
    """The ``queue``, ``task`` and ``state`` parameters (each may repeat); 422 for anything else."""
    try:
        query = EventsQuery.model_validate({key: params.getlist(key) for key in params})
    except ValidationError as exc:
        raise invalid(exc, "query") from None
    return EventFilter(
        queues=frozenset(query.queue) or None,
        tasks=frozenset(query.task) or None,
        states=frozenset(query.state) or None,
    )


def _checked(connection: HTTPConnection, auth: Auth) -> EventFilter:
    auth.check(connection, Scope.READ)
    return read_filter(connection.query_params)


async def _sse_body(
    subscription: Subscription, stops: tuple[asyncio.Event, ...], lost: asyncio.Event
) -> AsyncGenerator[str, None]:
    while True:
        items = await subscription.next(PING_SECONDS)
        if any(stop.is_set() for stop in stops):
            return
        if lost.is_set():
            yield unavailable_sse(LOST_MESSAGE)
            return
        if not items:
            yield PING
            continue
        yield "".join(item.sse() if isinstance(item, JobChange) else resync_sse(item) for item in items)


def _reason(text: str) -> str:
    """A close reason fits in 123 bytes of UTF-8."""
    return text.encode()[:123].decode(errors="ignore")


async def _close(websocket: WebSocket, code: int, reason: str) -> None:
    # A client that reads nothing cannot take the close frame either: give up after a
    # while; returning then lets the server drop the connection.
    with contextlib.suppress(TimeoutError, OSError, RuntimeError, WebSocketDisconnect):
        await asyncio.wait_for(websocket.close(code, _reason(reason)), CLOSE_WAIT_SECONDS)


async def _until_disconnect(websocket: WebSocket, gone: asyncio.Event, subscription: Subscription) -> None:
    """Read (and ignore) what the client sends, to notice at once when it goes away."""
    try:
        while (await websocket.receive())["type"] != "websocket.disconnect":
            pass
    finally:
        gone.set()
        subscription.interrupt()


async def _send_changes(
    websocket: WebSocket, subscription: Subscription, events: JobEvents, guard: SendGuard
) -> tuple[int, str] | None:
    """Send until the client goes away (None) or the server shuts down (the close code and reason)."""
    gone = asyncio.Event()
    reader = asyncio.create_task(_until_disconnect(websocket, gone, subscription))
    try:
        while True:
            items = await subscription.next(PING_SECONDS)
            if gone.is_set():
                return None
            if events.closing.is_set():
                return CLOSE_SHUTDOWN, "the server is shutting down"
            if events.lost.is_set():
                return CLOSE_UNAVAILABLE, LOST_MESSAGE
            for item in items:
                with guard.sending():
                    await websocket.send_text(item.ws() if isinstance(item, JobChange) else resync_ws(item))
    except (OSError, WebSocketDisconnect):
        return None
    finally:
        reader.cancel()
        with contextlib.suppress(asyncio.CancelledError, OSError, RuntimeError, WebSocketDisconnect):
            await reader


def routes(events: JobEvents, auth: Auth, *, stall_seconds: float = STALL_SECONDS) -> list[BaseRoute]:
    async def stream_events(request: Request) -> Response:
        """Server-Sent Events: ``job`` for each change a filter matches, ``resync`` when some were dropped."""
        event_filter = _checked(request, auth)
        await events.listening()
        return EventStream(
            lambda: events.subscribe_all(event_filter),
            lambda subscription, stops: _sse_body(subscription, stops, events.lost),
            events.closing,
            stall_seconds,
        )

    async def ws_over_http(request: Request) -> Response:
        """GET /ws without the WebSocket upgrade: say what to do instead."""
        _checked(request, auth)
        raise ApiError(
            426,
            "GET /ws is a WebSocket: connect with 'Upgrade: websocket' (or use GET /events for Server-Sent Events)",
            code="upgrade_required",
            headers={"Upgrade": "websocket", "Connection": "Upgrade"},
        )

    async def ws_events(websocket: WebSocket) -> None:
        """The same changes as GET /events, as JSON text messages."""
        try:
            event_filter = _checked(websocket, auth)
            await events.listening()
        except ApiError as error:
            await websocket.accept()
            await _close(websocket, 4000 + error.status, error.message)
            return
        except DatabaseUnavailableError:
            await websocket.accept()
            await _close(websocket, CLOSE_UNAVAILABLE, "the database is unavailable; try again later")
            return
        with events.subscribe_all(event_filter) as subscription:
            await websocket.accept()
            guard = SendGuard(stall_seconds)
            close = await guard.run(_send_changes(websocket, subscription, events, guard), events.closing)
        if guard.stalled:
            log.warning("closing a WebSocket whose client took nothing for %g s", stall_seconds)
            close = CLOSE_TOO_SLOW, f"too slow: no message could be sent for {stall_seconds:g} s"
        elif close is None and events.closing.is_set():
            close = CLOSE_SHUTDOWN, "the server is shutting down"
        if close is not None:  # unsubscribed first: a stuck client holds no buffer while we try
            await _close(websocket, *close)

    return [
        Route("/events", stream_events, methods=["GET"]),
        Route("/ws", ws_over_http, methods=["GET"]),
        WebSocketRoute("/ws", ws_events),
    ]
