"""The running job, as seen from inside a task.

``pgq.current_job()`` works in async tasks and in sync tasks (their thread gets a copy
of the context), so a task can learn its id and attempt, and whether someone asked to
cancel it, without extra parameters.
"""

from __future__ import annotations

import contextvars
import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from pgq.errors import JobCancelledError
from pgq.job import Job

if TYPE_CHECKING:
    from pgq.db.workflows import Parent
    from pgq.worker.progress import ProgressWriter as ProgressSink

_current: contextvars.ContextVar[JobContext] = contextvars.ContextVar("pgq_current_job")


class JobContext:
    """What a task may know about its own run. Created by the worker per attempt."""

    __slots__ = ("_cancel", "_on_cancel", "_progress", "job", "parents", "worker_id")

    def __init__(self, job: Job, worker_id: str, progress: ProgressSink | None = None) -> None:
        self.job = job
        self.worker_id = worker_id
        self._progress = progress
        # A plain flag: set on the worker's loop, read by sync tasks from their thread
        # (an attribute read needs no lock), and far cheaper per job than an Event.
        self._cancel = False
        self._on_cancel: Callable[[], object] | None = None
        self.parents: list[Parent] = []
        """The jobs this one waited for (``depends_on``, or earlier workflow steps), in
        the order they were given, with their states and results, read from the
        database as this attempt started."""

    @property
    def attempt(self) -> int:
        return self.job.attempt

    @property
    def is_last_attempt(self) -> bool:
        return self.job.attempt >= self.job.max_attempts

    @property
    def results(self) -> dict[str | int, Any]:
        """The parents' results by step name (by job id for a parent outside the workflow)."""
        return {p.step if p.step is not None else p.id: p.result for p in self.parents}

    @property
    def cancel_requested(self) -> bool:
        """True once ``app.cancel()`` reached this running job. Sync tasks should check it."""
        return self._cancel

    def raise_if_cancelled(self) -> None:
        """Stop here (the job ends ``cancelled``) if a cancel was requested."""
        if self._cancel:
            raise JobCancelledError(f"job {self.job.id} was cancelled while running")

    async def progress(self, percent: float, message: str | None = None) -> None:
        """Report how far the task is (0–100) and what it is doing; stored on the job row.

        Cheap to call often: the row is written at most about twice a second, and the
        latest report always lands.
        """
        percent, message = check_progress(percent, message)
        if self._progress is not None:
            await self._progress.report(percent, message)

    def progress_sync(self, percent: float, message: str | None = None) -> None:
        """``progress()`` for sync tasks (from their thread); does not wait for the write."""
        percent, message = check_progress(percent, message)
        if self._progress is not None:
            self._progress.report_threadsafe(percent, message)

    def request_cancel(self) -> None:
        """Worker side: flag the request and interrupt an async task at its next await."""
        self._cancel = True
        if self._on_cancel is not None:
            self._on_cancel()

    def on_cancel(self, callback: Callable[[], object] | None) -> None:
        """Executor side: how to interrupt the task (cancel its asyncio task) from now
        on; None: no longer (the task's code has returned)."""
        self._on_cancel = callback
        if callback is not None and self._cancel:
            callback()


_MAX_MESSAGE = 1000


def check_progress(percent: float, message: str | None) -> tuple[float, str | None]:
    if isinstance(percent, bool) or not isinstance(percent, int | float) or not math.isfinite(percent):
        raise TypeError(f"progress percent must be a number, got {percent!r}")
    if not 0 <= percent <= 100:
        raise ValueError(f"progress percent must be between 0 and 100, got {percent}")
    if message is not None and not isinstance(message, str):
        raise TypeError(f"progress message must be a string, got {type(message).__name__}")
    if message is not None and len(message) > _MAX_MESSAGE:
        message = message[:_MAX_MESSAGE] + " [cut]"
    return float(percent), message


def current_job() -> JobContext:
    """The job the calling task is running; LookupError outside a task."""
    try:
        return _current.get()
    except LookupError:
        raise LookupError("pgq.current_job() was called outside a running task") from None


def set_current(ctx: JobContext) -> contextvars.Token[JobContext]:
    return _current.set(ctx)


def reset_current(token: contextvars.Token[JobContext]) -> None:
    _current.reset(token)
