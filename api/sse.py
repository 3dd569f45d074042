"""A Server-Sent Events response that is subscribed before the client sees its headers.

Once a client has the 200, every change from then on reaches it: the subscription is
made first, then the headers go out. The body is written as the subscription fills,
with a ``: ping`` comment after 15 idle seconds so proxies keep the stream open. It ends
when the body ends, when the client goes away (noticed at once, not at the next write),
when the server shuts down, and when the client has taken nothing for ``stall`` seconds
(api/stall.py; the connection is then dropped mid-stream).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncGenerator, Callable
from contextlib import AbstractContextManager

from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from pgq.api.stall import SendGuard
from pgq.api.subscriptions import Subscription

log = logging.getLogger("pgq.api")

PING_SECONDS = 15.0
"""An SSE comment this often keeps proxies from closing an idle stream."""
PING = ": ping\n\n"

Body = Callable[[Subscription, tuple[asyncio.Event, ...]], AsyncGenerator[str, None]]
"""Yields the text to send; stops when any of the events is set (shutdown, client gone)."""


class EventStream(Response):
    media_type = "text/event-stream"

    def __init__(
        self,
        subscribe: Callable[[], AbstractContextManager[Subscription]],
        body: Body,
        closing: asyncio.Event,
        stall: float,
    ) -> None:
        self._subscribe = subscribe
        self._body = body
        self._closing = closing
        self._stall = stall
        self.status_code = 200
        self.background = None
        self.init_headers({"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        gone = asyncio.Event()
        guard = SendGuard(self._stall)
        with self._subscribe() as subscription:
            watcher = asyncio.create_task(_watch_disconnect(receive, gone, subscription))

            async def stream() -> None:
                await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})
                async with contextlib.aclosing(self._body(subscription, (self._closing, gone))) as texts:
                    async for text in texts:
                        if gone.is_set():
                            return
                        with guard.sending():
                            await send({"type": "http.response.body", "body": text.encode(), "more_body": True})
                if not gone.is_set():
                    with guard.sending():
                        await send({"type": "http.response.body", "body": b"", "more_body": False})

            try:
                await guard.run(stream(), self._closing)
            except OSError:  # the client went away while we wrote (ASGI 2.4 servers raise)
                return
            finally:
                watcher.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await watcher
        if guard.stalled:
            log.warning("dropped an event stream whose client took nothing for %g s", self._stall)


async def _watch_disconnect(receive: Receive, gone: asyncio.Event, subscription: Subscription) -> None:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            gone.set()
            subscription.interrupt()
            return
