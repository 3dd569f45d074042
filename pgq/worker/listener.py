"""The LISTEN side of the worker: notifications turned into calls.

New work (channel pgq_jobs, payload a queue) wakes the worker; a cancel request
(pgq_cancel, payload a job id) reaches the job. The connection itself (reconnects,
self-ping, logging once per outage) is pgq.listen's; while it is down the worker keeps
working by polling, and it is woken after each reconnect in case something was missed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection

import psycopg

from pgq._queries import QUERIES
from pgq.listen import ListenClient

log = logging.getLogger("pgq.worker")


class Listener:
    def __init__(
        self,
        dsn: str,
        queues: Collection[str],
        wake: Callable[[], None],
        cancel: Callable[[int], None],
        poll_interval: float,
        health_interval: float = 30.0,
        *,
        allow_pooler: bool = False,
    ) -> None:
        self.queues = frozenset(queues)
        self.wake = wake
        self.cancel = cancel
        self.poll_interval = poll_interval
        self.client = ListenClient(
            lambda: dsn,
            QUERIES["worker_listen"],
            self._dispatch,
            log=log,
            fallback=f"polling every {poll_interval} s until it is back",
            application_name="pgq-listener",
            on_connect=self._connected,
            health_interval=health_interval,
            ping_timeout=poll_interval + 5,
            allow_pooler=allow_pooler,
        )
        self._connects = 0

    async def run(self) -> None:
        """Listen until cancelled (returns at once if LISTEN is refused: polling only)."""
        await self.client.run()
        log.warning("polling every %s s for new work, without LISTEN", self.poll_interval)

    @property
    def connects(self) -> int:
        """LISTEN connections made so far (more than one: it reconnected)."""
        return self._connects

    def _connected(self) -> None:
        self._connects += 1
        if self._connects > 1:
            self.wake()  # a notification may have been missed while reconnecting

    def _dispatch(self, notify: psycopg.Notify) -> None:
        if notify.channel == "pgq_jobs":
            if notify.payload in self.queues:
                self.wake()
        elif notify.channel == "pgq_cancel":
            try:
                job_id = int(notify.payload)
            except ValueError:
                log.warning("ignoring a pgq_cancel notification with payload %r (not a job id)", notify.payload)
                return
            self.cancel(job_id)
