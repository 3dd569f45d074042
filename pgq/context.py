"""The running job, as seen from inside a task.

``pgq.current_job()`` works in async tasks and in sync tasks (their thread gets a copy
of the context), so a task can learn its id and attempt, and whether someone asked to
cancel it, without extra parameters.
"""

from __future__ import annotations

import contextvars
import threading
from collections.abc import Callable

from pgq.errors import JobCancelledError
from pgq.job import Job

_current: contextvars.ContextVar[JobContext] = contextvars.ContextVar("pgq_current_job")


class JobContext:
    """What a task may know about its own run. Created by the worker per attempt."""

    __slots__ = ("_cancel", "_on_cancel", "job", "worker_id")

    def __init__(self, job: Job, worker_id: str) -> None:
        self.job = job
        self.worker_id = worker_id
        # A threading.Event, not an asyncio one: sync tasks poll it from their thread.
        self._cancel = threading.Event()
        self._on_cancel: Callable[[], object] | None = None

    @property
    def attempt(self) -> int:
        return self.job.attempt

    @property
    def is_last_attempt(self) -> bool:
        return self.job.attempt >= self.job.max_attempts

    @property
    def cancel_requested(self) -> bool:
        """True once ``app.cancel()`` reached this running job. Sync tasks should check it."""
        return self._cancel.is_set()

    def raise_if_cancelled(self) -> None:
        """Stop here (the job ends ``cancelled``) if a cancel was requested."""
        if self._cancel.is_set():
            raise JobCancelledError(f"job {self.job.id} was cancelled while running")

    def request_cancel(self) -> None:
        """Worker side: flag the request and interrupt an async task at its next await."""
        self._cancel.set()
        if self._on_cancel is not None:
            self._on_cancel()

    def on_cancel(self, callback: Callable[[], object]) -> None:
        """Executor side: how to interrupt the task (cancel its asyncio task)."""
        self._on_cancel = callback
        if self._cancel.is_set():
            callback()


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
