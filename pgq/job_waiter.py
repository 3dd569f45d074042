"""The waits of one App for its jobs' outcomes: ``JobWaiter`` (used by pgq/waiting.py).

Every wait of one App shares one LISTEN connection (pgq.listen's client, on the
pgq_job_events channel the HTTP API's wait uses). It runs in a daemon thread with an
event loop of its own, so async waiters on any event loop and sync waiters in any
thread are woken by the same connection. A waiter registers for its job id before it
reads the row, so a change between the read and the wait is never lost; the
notification of a final state wakes it and it reads the row again.

While LISTEN is down (refused, reconnecting, or PGQ_LISTEN=off) a waiter reads its
row every ``poll_interval`` seconds instead; every reconnect wakes all waiters, since
a change may have been missed meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import threading
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import psycopg

from pgq.db.events import LISTEN_JOB_EVENTS
from pgq.errors import WaitTimeoutError
from pgq.job import FINAL_STATES, Job
from pgq.listen import ListenClient

if TYPE_CHECKING:
    from pgq.producer import Producer

log = logging.getLogger("pgq.wait")

POLL_INTERVAL = 1.0
"""Seconds between reads of the row while LISTEN is not working."""
SAFETY_INTERVAL = 60.0
"""Even while LISTEN works, a waiter reads its row this often (belt and braces)."""
_FINAL = frozenset(state.value for state in FINAL_STATES)


def _deadline(timeout: float | None) -> tuple[float | None, float | None]:
    """The checked timeout, and the monotonic time it ends at (None: no limit)."""
    timeout = check_timeout(timeout)
    return timeout, None if timeout is None else time.monotonic() + timeout


def check_timeout(timeout: float | None) -> float | None:
    """None (no limit) or a positive number of seconds; TypeError/ValueError otherwise."""
    if timeout is None:
        return None
    if isinstance(timeout, bool) or not isinstance(timeout, int | float):
        raise TypeError(f"timeout must be a number of seconds or None, got {type(timeout).__name__}")
    if not (timeout > 0 and math.isfinite(timeout)):
        raise ValueError(f"timeout must be a positive finite number of seconds or None, got {timeout!r}")
    return float(timeout)


class _Waker:
    """One waiter's doorbell, rung from the listener's thread."""

    __slots__ = ("_async", "_loop", "_sync")

    def __init__(self, loop: asyncio.AbstractEventLoop | None) -> None:
        self._loop = loop
        self._async = asyncio.Event() if loop is not None else None
        self._sync = threading.Event() if loop is None else None

    def ring(self) -> None:
        if self._sync is not None:
            self._sync.set()
        elif self._loop is not None and self._async is not None:
            with contextlib.suppress(RuntimeError):  # the waiter's loop is closed: nobody waits
                self._loop.call_soon_threadsafe(self._async.set)

    async def wait_async(self, seconds: float) -> None:
        assert self._async is not None
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._async.wait(), seconds)
        self._async.clear()

    def wait_sync(self, seconds: float) -> None:
        assert self._sync is not None
        self._sync.wait(seconds)
        self._sync.clear()


class JobWaiter:
    """The waits of one App: a registry of waiters by job id and the one LISTEN session.

    ``listen=False`` never listens (every waiter polls); ``dsn`` is where to LISTEN.
    ``reads`` counts the rows read by every wait so far (tests and the benchmark use it).
    """

    def __init__(
        self,
        dsn: str,
        *,
        listen: bool = True,
        allow_pooler: bool = False,
        poll_interval: float = POLL_INTERVAL,
        safety_interval: float = SAFETY_INTERVAL,
    ) -> None:
        self._dsn = dsn
        self._listen = listen
        self._allow_pooler = allow_pooler
        self.poll_interval = poll_interval
        self.safety_interval = safety_interval
        self.listening = False
        """True while LISTEN is active; waiters poll while it is False."""
        self.reads = 0
        self.connections = 0
        """How many LISTEN connections this waiter opened (one, unless it reconnected)."""
        self._lock = threading.Lock()
        self._by_job: dict[int, set[_Waker]] = {}
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None
        self._stopped = False

    # -- the listener thread ----------------------------------------------------------

    def start(self) -> None:
        """Start the listener thread, once (idempotent; called by the first wait)."""
        if not self._listen:
            return
        with self._lock:
            if self._thread is not None or self._stopped:
                return
            ready = threading.Event()
            self._thread = threading.Thread(target=self._main, args=(ready,), name="pgq-wait-listener", daemon=True)
            self._thread.start()
        ready.wait(5)

    def _main(self, ready: threading.Event) -> None:
        loop = asyncio.new_event_loop()
        client = ListenClient(
            lambda: self._dsn,
            LISTEN_JOB_EVENTS,
            self._on_notify,
            log=log,
            fallback=f"waits read their jobs every {self.poll_interval:g}s until it is back",
            application_name="pgq-waiter",
            on_connect=self._on_connect,
            on_disconnect=self._on_disconnect,
            allow_pooler=self._allow_pooler,
        )
        self._loop = loop
        self._task = loop.create_task(client.run(), name="pgq-wait-listener")
        ready.set()
        try:
            with contextlib.suppress(asyncio.CancelledError):
                loop.run_until_complete(self._task)
        finally:
            self.listening = False
            loop.close()

    def stop(self) -> None:
        """Close the LISTEN connection and end the thread (App.close calls this)."""
        with self._lock:
            self._stopped = True
            thread, loop, task = self._thread, self._loop, self._task
        if thread is None or loop is None or task is None:
            return
        with contextlib.suppress(RuntimeError):  # the loop already ended (LISTEN refused)
            loop.call_soon_threadsafe(task.cancel)
        if thread is not threading.current_thread():
            thread.join(10)
        self._wake_all()  # waiters fall back to polling at once

    def _on_connect(self) -> None:
        self.listening = True
        self.connections += 1
        self._wake_all()  # a change may have been missed while not listening

    def _on_disconnect(self) -> None:
        self.listening = False
        self._wake_all()  # switch to polling now, not at the next safety read

    def _on_notify(self, notify: psycopg.Notify) -> None:
        try:
            data: dict[str, Any] = json.loads(notify.payload)
            if data.get("state") not in _FINAL:
                return  # progress, a claim, a retry, or a bulk insert's count
            job_id = int(data["id"])
        except (ValueError, KeyError, TypeError):
            log.warning("ignoring a malformed pgq_job_events payload: %.200s", notify.payload)
            return
        with self._lock:
            wakers = list(self._by_job.get(job_id, ()))
        for waker in wakers:
            waker.ring()

    def _wake_all(self) -> None:
        with self._lock:
            wakers = [w for ws in self._by_job.values() for w in ws]
        for waker in wakers:
            waker.ring()

    # -- waiting ------------------------------------------------------------------------

    @property
    def waiters(self) -> int:
        """Waits in progress."""
        with self._lock:
            return sum(len(ws) for ws in self._by_job.values())

    @contextlib.contextmanager
    def _registered(self, job_id: int, waker: _Waker) -> Iterator[None]:
        with self._lock:
            self._by_job.setdefault(job_id, set()).add(waker)
        try:
            yield
        finally:
            with self._lock:
                wakers = self._by_job.get(job_id)
                if wakers is not None:
                    wakers.discard(waker)
                    if not wakers:
                        del self._by_job[job_id]

    def _pause(self, job: Job, timeout: float | None, deadline: float | None) -> float | None:
        """After a read: None when the job is final, else how long to sleep before the
        next read; WaitTimeoutError when the deadline has passed."""
        self.reads += 1
        if job.is_final:
            return None
        remaining = None if deadline is None else deadline - time.monotonic()
        if timeout is not None and remaining is not None and remaining <= 0:
            raise WaitTimeoutError(job, timeout)
        step = self.safety_interval if self.listening else self.poll_interval
        return step if remaining is None else max(0.0, min(step, remaining))

    async def wait(self, app: Producer, job_id: int, timeout: float | None) -> Job:  # noqa: ASYNC109 (a typed error, not a cancel)
        """The job once it is final; WaitTimeoutError when ``timeout`` seconds pass first."""
        timeout, deadline = _deadline(timeout)
        waker = _Waker(asyncio.get_running_loop())
        with self._registered(job_id, waker):
            self.start()
            while True:
                job = await app.get_job(job_id)  # JobNotFoundError for an unknown id
                if (pause := self._pause(job, timeout, deadline)) is None:
                    return job
                await waker.wait_async(pause)

    def wait_sync(self, app: Producer, job_id: int, timeout: float | None) -> Job:
        timeout, deadline = _deadline(timeout)
        waker = _Waker(None)
        with self._registered(job_id, waker):
            self.start()
            while True:
                job = app.get_job_sync(job_id)
                if (pause := self._pause(job, timeout, deadline)) is None:
                    return job
                waker.wait_sync(pause)
