"""The exceptions pgq raises, and the two a task may raise to steer its own retries."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pgq.job import Job


def first_line(exc: BaseException) -> str:
    """The first line of an exception's text (its type's name when it has none): what a
    one-line log entry or error body says, without a driver's multi-line detail."""
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


class PgqError(Exception):
    """Base class of every error pgq raises itself."""


class ConfigError(PgqError):
    """A setting is missing or invalid; the message says which and what to change."""


class DatabaseUnavailableError(PgqError):
    """The database cannot be reached (bad DSN, server down, wrong credentials)."""


class SchemaNotMigratedError(PgqError):
    """The database has no pgq schema, or an older one: run `pgq migrate`."""


class UnknownTaskError(PgqError, LookupError):
    """A task name that this app has not registered."""


class JobNotFoundError(PgqError, LookupError):
    """No job has this id."""


class UnknownParentError(PgqError, ValueError):
    """``depends_on`` names jobs that do not exist; nothing was written. ``missing``: their ids."""

    def __init__(self, missing: list[int]) -> None:
        super().__init__(f"unknown parent jobs: {', '.join(map(str, missing))}")
        self.missing = missing


class WorkflowNotFoundError(PgqError, LookupError):
    """No workflow has this id."""


class ScheduleNotFoundError(PgqError, LookupError):
    """No schedule has this name."""


class WaitTimeoutError(PgqError, TimeoutError):
    """``app.wait()``/``job.wait()`` gave up: the job was not final within the timeout.

    ``job`` is the job as it was last read, ``job_id`` its id, ``timeout`` the seconds waited.
    """

    def __init__(self, job: Job, timeout: float) -> None:
        super().__init__(f"job {job.id} ({job.task}) is still {job.state.value} after waiting {timeout:g}s")
        self.job = job
        self.job_id: int = job.id
        self.timeout = timeout


class JobStateError(PgqError):
    """The job's state does not allow the requested change (e.g. retrying a running job)."""

    def __init__(self, message: str, *, state: str) -> None:
        super().__init__(message)
        self.state = state


class JobTimeoutError(PgqError, TimeoutError):
    """A task ran longer than its timeout; recorded as the attempt's error."""


class JobCancelledError(PgqError):
    """Raised inside a task by ``current_job().raise_if_cancelled()`` after a cancel request."""


class PermanentError(Exception):
    """Raise from a task to fail the job at once, without further attempts."""


class Retry(Exception):
    """Raise from a task to ask for another attempt.

    ``delay`` (seconds) overrides the task's backoff for this one retry. The attempt
    still counts: a job that keeps asking ends ``failed`` after ``max_attempts``.
    """

    def __init__(self, reason: str = "retry requested by the task", *, delay: float | None = None) -> None:
        super().__init__(reason)
        if delay is not None and delay < 0:
            raise ValueError(f"Retry delay must be >= 0 seconds, got {delay}")
        self.delay = delay
