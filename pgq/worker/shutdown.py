"""Stopping a worker in order, so that no job is lost or run twice on the way out.

1. Jobs claimed ahead and never started go back to their queue at once.
2. Running jobs get ``shutdown_timeout`` seconds (a second stop request ends the wait);
   those that ran to the end keep their outcome, the interrupted ones are handed back.
3. The completer writes the outcomes it holds, for a bounded time.
4. Background loops stop, the worker's row goes, the pool closes.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
import time
from collections.abc import Callable
from typing import Any

import psycopg
from psycopg_pool import AsyncConnectionPool

from pgq.db import workers
from pgq.worker.claim_ahead import ClaimAhead
from pgq.worker.completer import Completer
from pgq.worker.handback import UNSTARTED_AT_SHUTDOWN, HandBack
from pgq.worker.running import Running, RunningJobs

log = logging.getLogger("pgq.worker")

FINAL_WRITE_SECONDS = 10.0


def signal_handlers(stop: Callable[[], None], *, install: bool) -> None:
    """SIGTERM/SIGINT call ``stop`` (only the main thread may handle signals)."""
    if threading.current_thread() is not threading.main_thread():
        return
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        if install:
            loop.add_signal_handler(sig, stop)
        else:
            loop.remove_signal_handler(sig)


class Shutdown:
    def __init__(
        self,
        jobs: RunningJobs,
        ahead: ClaimAhead[Running],
        hand_back: HandBack | None,
        hurry: asyncio.Event,
        timeout: float,
    ) -> None:
        self.jobs = jobs
        self.ahead = ahead
        self.hand_back = hand_back
        self.hurry = hurry
        self.timeout = timeout

    async def run(
        self,
        completer: Completer | None,
        completer_task: asyncio.Task[None] | None,
        background: list[asyncio.Task[None]],
        pool: AsyncConnectionPool[psycopg.AsyncConnection[Any]] | None,
        worker_id: str,
    ) -> None:
        if self.hand_back is not None:
            await self._jobs(self.hand_back)
        if completer is not None and completer_task is not None:
            await finish_writes(completer, completer_task)
        for task in background:
            task.cancel()
        await asyncio.gather(*background, return_exceptions=True)
        signal_handlers(lambda: None, install=False)
        if pool is not None:
            try:
                async with pool.connection(timeout=5) as conn:
                    await workers.deregister(conn, worker_id)
            except (psycopg.Error, TimeoutError) as exc:
                log.warning("could not remove this worker's row (%s); the leader will", type(exc).__name__)
            await pool.close()

    async def _jobs(self, hand_back: HandBack) -> None:
        if waiting := self.ahead.take_all():  # claimed ahead, never started: back at once
            await hand_back.run_once(self.jobs.forget_all(waiting), UNSTARTED_AT_SHUTDOWN, logging.INFO)
        await hand_back.drain()
        pending: set[asyncio.Task[Any]] = {r.task for r in self.jobs.values() if r.task is not None}
        if not pending:
            return
        hurry: asyncio.Task[Any] = asyncio.create_task(self.hurry.wait())
        deadline = time.monotonic() + self.timeout
        while pending and not hurry.done() and (remaining := deadline - time.monotonic()) > 0:
            done, _ = await asyncio.wait({*pending, hurry}, timeout=remaining, return_when=asyncio.FIRST_COMPLETED)
            pending.difference_update(done)
        hurry.cancel()
        # Jobs that ran to the end keep their outcome (it is in the completer);
        # only the interrupted ones go back to the queue.
        unfinished = [r.job.id for r in self.jobs.values() if r.task in pending and not r.executed]
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        if unfinished:
            await hand_back.run_once(unfinished)


async def finish_writes(completer: Completer, task: asyncio.Task[None]) -> None:
    """Let the completer write the outcomes it holds, for a bounded time."""
    completer.close()
    try:
        await asyncio.wait_for(asyncio.shield(task), FINAL_WRITE_SECONDS)
    except TimeoutError:
        task.cancel()
        log.error(
            "could not record the outcome of jobs %s before stopping; they stay running until rescued",
            completer.unwritten(),
        )
