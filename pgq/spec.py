"""What a caller asks for, checked before anything is written.

``JobSpec`` is the public request for one job; ``validate`` turns it into a ``NewJob``
(every default applied, every value in range) or raises ``ValueError``/``TypeError``
naming the field. The query layer (``pgq.db``) only ever sees validated values, so a
bad request never reaches the database and never leaves a partial write.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any, Literal, TypedDict

from pgq import _json, _times, tracing
from pgq._times import MAX_DELAY, RUN_AT_FIRST_YEAR, RUN_AT_LAST_YEAR, check_run_at
from pgq.errors import JobNotFoundError
from pgq.job import Job, JobState
from pgq.names import check_queue_name, check_task_name
from pgq.task import TaskOptions

__all__ = [
    "MAX_DELAY",
    "MAX_JOB_ID",
    "RUN_AT_FIRST_YEAR",
    "RUN_AT_LAST_YEAR",
    "EnqueueOptions",
    "JobFilter",
    "JobFilters",
    "JobSpec",
    "NewJob",
    "ParentFailure",
    "as_spec",
    "check_job_id",
    "check_run_at",
    "reject_unknown",
    "seconds",
    "validate",
    "whole",
]

MAX_JOB_ID = 2**63 - 1
"""Ids are bigint: a larger one names no job."""


@dataclasses.dataclass(frozen=True, slots=True)
class JobSpec:
    """One job to enqueue; ``enqueue_many`` takes these (or mappings with these keys)."""

    task: str
    args: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    queue: str | None = None
    priority: int | None = None
    delay: float | dt.timedelta | None = None
    run_at: dt.datetime | None = None
    max_attempts: int | None = None
    idempotency_key: str | None = None
    depends_on: Sequence[int | Job] = ()
    on_parent_failure: ParentFailure | None = None


ParentFailure = Literal["cancel", "run"]
"""What a job does when a parent it depends on fails or is cancelled: be cancelled
too (the default), or run anyway once every parent is final."""
MAX_PARENTS = 100_000


class EnqueueOptions(TypedDict, total=False):
    """The keyword arguments of ``enqueue`` / ``enqueue_sync`` (JobSpec's fields after
    ``task`` and ``args``), written once. Unset ones take the task's defaults."""

    queue: str | None
    priority: int | None
    delay: float | dt.timedelta | None
    run_at: dt.datetime | None
    max_attempts: int | None
    idempotency_key: str | None
    depends_on: Sequence[int | Job]
    on_parent_failure: ParentFailure | None


class JobFilters(TypedDict, total=False):
    """The keyword arguments of ``list_jobs`` / ``list_jobs_sync`` (JobFilter's fields)."""

    queue: str | None
    state: str | None
    task: str | None
    before_id: int | None
    limit: int


def reject_unknown(given: Mapping[str, object], allowed: type, what: str) -> None:
    """TypeError naming keyword arguments a TypedDict does not list: mypy checks typed
    callers, and this tells the rest (a typo must not be silently ignored)."""
    names = list(allowed.__annotations__)
    if unknown := set(given) - set(names):
        raise TypeError(f"unknown {what} {sorted(unknown)}; allowed: {names}")


@dataclasses.dataclass(slots=True)
class NewJob:
    """A validated job, ready for ``pgq.db.enqueue``: every default applied.

    Not frozen: one is built per enqueued job, and a frozen dataclass's __init__ costs
    a third more on that path."""

    queue: str
    task: str
    args: dict[str, Any]
    priority: int
    run_at: dt.datetime | None
    delay: dt.timedelta | None
    max_attempts: int
    idempotency_key: str | None
    parent_ids: tuple[int, ...] = ()
    run_on_parent_failure: bool = False
    trace_context: dict[str, str] | None = None
    """The enqueuer's trace context (pgq.tracing), stored with the job."""

    @property
    def ready_now(self) -> bool:
        """Ready now, without an idempotency key or parents: the COPY fast path can write it."""
        return self.idempotency_key is None and self.run_at is None and self.delay is None and not self.parent_ids


@dataclasses.dataclass(frozen=True, slots=True)
class JobFilter:
    """The filters of a job listing (``App.list_jobs``, ``GET /jobs``), checked."""

    queue: str | None = None
    state: str | None = None
    task: str | None = None
    before_id: int | None = None
    limit: int = 50

    def __post_init__(self) -> None:
        if self.state is not None and self.state not in {s.value for s in JobState}:
            raise ValueError(f"unknown state {self.state!r}; states are: {', '.join(s.value for s in JobState)}")
        if self.queue is not None:
            check_queue_name(self.queue)
        if self.task is not None:
            check_task_name(self.task)
        if self.before_id is not None:
            whole("before_id", self.before_id, 0, MAX_JOB_ID)
        whole("limit", self.limit, 1, 10_000)


_UNKNOWN_TASK = TaskOptions()
"""Defaults for a task this app does not register (a producer-only app)."""


def seconds(delay: float | dt.timedelta) -> dt.timedelta:
    """A delay as a timedelta (0 to about 100 years); TypeError/ValueError otherwise."""
    return _times.check_delay(delay)


def whole(name: str, value: object, low: int, high: int) -> int:
    """``value`` if it is an integer (not a bool) in ``low..high``; ValueError naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        shown = "a larger integer" if isinstance(value, int) and value.bit_length() > 64 else repr(value)
        raise ValueError(f"{name} must be an integer between {low} and {high}, got {shown}")
    return value


def check_job_id(job_id: int) -> int:
    """An id no bigint can hold names no job (and must not reach the database)."""
    if isinstance(job_id, bool) or not isinstance(job_id, int):
        raise TypeError(f"a job id is an integer, got {job_id!r}")
    if not 1 <= job_id <= MAX_JOB_ID:
        raise JobNotFoundError(f"no job with id {job_id}" if job_id.bit_length() < 64 else "no job with this id")
    return job_id


def check_idempotency_key(key: object) -> str | None:
    if key is not None and (
        not isinstance(key, str) or not 1 <= len(key) <= 255 or "\x00" in key or not _json.utf8_encodable(key)
    ):
        raise ValueError(
            f"idempotency_key must be a string of 1-255 characters without NUL or lone surrogates, got {key!r}"
        )
    return key


def validate(spec: JobSpec, defaults: TaskOptions | None, json_default: _json.JsonDefault | None = None) -> NewJob:
    """Check one job and apply its task's defaults; raises before any write.

    ``defaults`` is the task's TaskOptions when the app knows the task, else None.
    """
    return validate_parts(spec.task, spec.args, spec, defaults, json_default)


NO_OPTIONS = JobSpec("_")
"""The options of a job enqueued with none: ``enqueue(task, args)`` validates with these
instead of building a JobSpec per call (a frozen dataclass: a fifth of validation)."""


def validate_parts(
    task_name: str,
    task_args: Mapping[str, Any],
    spec: JobSpec,
    defaults: TaskOptions | None,
    json_default: _json.JsonDefault | None = None,
) -> NewJob:
    """``validate`` with the task and its arguments apart from ``spec``, whose own task
    and args are ignored."""
    check_task_name(task_name)
    args = _json.check_args(task_args, json_default)
    task = defaults or _UNKNOWN_TASK
    queue = check_queue_name(spec.queue if spec.queue is not None else task.queue)
    priority = whole("priority", spec.priority if spec.priority is not None else task.priority, -32768, 32767)
    max_attempts = whole(
        "max_attempts", spec.max_attempts if spec.max_attempts is not None else task.max_attempts, 1, 1_000_000
    )
    if spec.run_at is not None and spec.delay is not None:
        raise ValueError("give either run_at or delay, not both")
    if spec.run_at is not None:
        _times.check_run_at(spec.run_at)
    parent_ids = check_parents(spec.depends_on)
    if parent_ids and spec.idempotency_key is not None:
        raise ValueError("idempotency_key cannot be combined with depends_on")
    return NewJob(
        queue=queue,
        task=task_name,
        args=args,
        priority=priority,
        run_at=spec.run_at,
        delay=seconds(spec.delay) if spec.delay is not None else None,
        max_attempts=max_attempts,
        idempotency_key=check_idempotency_key(spec.idempotency_key),
        parent_ids=parent_ids,
        run_on_parent_failure=check_parent_failure(spec.on_parent_failure),
        trace_context=tracing.carrier(),
    )


def check_parents(depends_on: object) -> tuple[int, ...]:
    """The parent ids of ``depends_on`` (job ids or Jobs), without repeats, in order."""
    if depends_on == () and type(depends_on) is tuple:  # the default, before the ABC checks below
        return ()
    if isinstance(depends_on, (str, bytes, Mapping)) or not isinstance(depends_on, (Sequence, set, frozenset)):
        raise TypeError(f"depends_on must be a list of job ids or Jobs, got {type(depends_on).__name__}")
    if len(depends_on) > MAX_PARENTS:
        raise ValueError(f"depends_on may name at most {MAX_PARENTS} jobs, got {len(depends_on)}")
    ids: dict[int, None] = {}
    for parent in depends_on:
        if isinstance(parent, Job):
            parent = parent.id
        if isinstance(parent, bool) or not isinstance(parent, int):
            raise TypeError(f"depends_on takes job ids or Jobs, got {parent!r}")
        if not 1 <= parent <= MAX_JOB_ID:
            raise ValueError(f"depends_on: {parent} is not a job id")
        ids[parent] = None
    return tuple(ids)


def check_parent_failure(policy: object) -> bool:
    """True for "run" (run even if a parent failed), False for "cancel" or None."""
    if policy is None or policy == "cancel":
        return False
    if policy == "run":
        return True
    raise ValueError(f"on_parent_failure must be 'cancel' or 'run', got {policy!r}")


_SPEC_FIELDS = frozenset(f.name for f in dataclasses.fields(JobSpec))


def as_spec(item: JobSpec | Mapping[str, Any]) -> JobSpec:
    """A JobSpec from ``enqueue_many``'s input: a JobSpec, or a mapping of its fields."""
    if isinstance(item, JobSpec):
        return item
    if not isinstance(item, Mapping):
        raise TypeError(f"enqueue_many takes JobSpec objects or mappings, got {type(item).__name__}")
    if not _SPEC_FIELDS.issuperset(item):
        unknown = set(item) - _SPEC_FIELDS
        raise TypeError(
            f"unknown job fields {sorted(unknown)}; allowed: {[f.name for f in dataclasses.fields(JobSpec)]}"
        )
    if "task" not in item:
        raise TypeError("each job needs a 'task'")
    return JobSpec(**item)
