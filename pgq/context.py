"""The running job, as seen from inside a task.

``pgq.current_job()`` works in async tasks and in sync tasks (their thread gets a copy
of the context), so a task can learn its id and attempt without extra parameters.
"""

from __future__ import annotations

import contextvars
import dataclasses

from pgq.job import Job

_current: contextvars.ContextVar[JobContext] = contextvars.ContextVar("pgq_current_job")


@dataclasses.dataclass(frozen=True, slots=True)
class JobContext:
    job: Job
    worker_id: str

    @property
    def attempt(self) -> int:
        return self.job.attempt

    @property
    def is_last_attempt(self) -> bool:
        return self.job.attempt >= self.job.max_attempts


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
