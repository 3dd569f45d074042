"""Letting go of a stream client that takes nothing: one watchdog per connection.

A client that stops reading fills the socket, then the server's write buffer, and then
every send to it waits. Its subscription's buffer is bounded already (it gets a
resync); what remains is the waiting task and the connection. ``SendGuard.run`` runs
the sender and cancels it when one send has waited ``stall`` seconds, or at once when
the server shuts down while a send waits (a graceful shutdown would otherwise wait for
it). Sends are only timed, not wrapped in tasks: a send that does not wait costs one
clock read.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Coroutine, Iterator
from typing import Any, TypeVar

T = TypeVar("T")


class SendGuard:
    def __init__(self, stall: float) -> None:
        if stall <= 0:
            raise ValueError(f"the stall limit must be a positive number of seconds, got {stall}")
        self.stall = stall
        self.stalled = False
        """The sender was cancelled because a send waited too long."""
        self._since: float | None = None
        self._loop = asyncio.get_running_loop()

    @contextlib.contextmanager
    def sending(self) -> Iterator[None]:
        """Wrap each send: the watchdog sees how long it has been waiting."""
        self._since = self._loop.time()
        try:
            yield
        finally:
            self._since = None

    def _waiting_for(self) -> float:
        return 0.0 if self._since is None else self._loop.time() - self._since

    async def run(self, sender: Coroutine[Any, Any, T], closing: asyncio.Event) -> T | None:
        """The sender's result; None when it was cancelled (stalled, or stuck at shutdown)."""
        task = asyncio.ensure_future(sender)
        shutdown = asyncio.ensure_future(closing.wait())
        try:
            while not task.done():
                watch = [task] if shutdown.done() else [task, shutdown]
                await asyncio.wait(watch, timeout=self.stall / 4, return_when=asyncio.FIRST_COMPLETED)
                if task.done():
                    break
                self.stalled = self._waiting_for() > self.stall
                if self.stalled or (closing.is_set() and self._since is not None):
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task
                    return None
            return task.result()
        finally:
            shutdown.cancel()
            if not task.done():  # we were cancelled ourselves
                task.cancel()
