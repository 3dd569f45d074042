"""Job operations written once, run by a sync or an async driver.

Each operation is a generator that yields ``(query, params)`` and receives the rows,
so the logic (idempotency races, ordering of bulk results, why a cancel was refused)
exists once while ``App`` offers both ``await app.x()`` and ``app.x_sync()``.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Generator, Mapping, Sequence
from typing import Any, LiteralString, TypeVar

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from pgq import _json
from pgq._queries import QUERIES
from pgq.errors import JobNotFoundError, JobStateError, PgqError
from pgq.job import Job, JobState
from pgq.schedule import ScheduleState
from pgq.task import TaskOptions, check_queue_name, check_task_name

Row = dict[str, Any]
Statement = tuple[LiteralString, Mapping[str, Any]]
T = TypeVar("T")
Op = Generator[Statement, list[Row], T]

_IDEMPOTENCY_ATTEMPTS = 10


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


def _seconds(delay: float | dt.timedelta) -> dt.timedelta:
    if isinstance(delay, dt.timedelta):
        td = delay
    elif isinstance(delay, int | float) and not isinstance(delay, bool):
        td = dt.timedelta(seconds=delay)
    else:
        raise TypeError(f"delay must be seconds (a number) or a timedelta, got {delay!r}")
    if td < dt.timedelta(0):
        raise ValueError(f"delay must not be negative, got {delay!r}")
    return td


_UNKNOWN_TASK = TaskOptions()
"""Defaults for a task this app does not register (a producer-only app)."""


def _whole(name: str, value: object, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ValueError(f"{name} must be an integer between {low} and {high}, got {value!r}")
    return value


def insert_params(
    spec: JobSpec, defaults: TaskOptions | None, json_default: _json.JsonDefault | None
) -> dict[str, Any]:
    """Validate one job and return job_insert's parameters; raises before any write.

    ``defaults`` is the task's TaskOptions when the app knows the task, else None.
    """
    check_task_name(spec.task)
    args = _json.check_args(spec.args, json_default)
    task = defaults or _UNKNOWN_TASK
    queue = check_queue_name(spec.queue if spec.queue is not None else task.queue)
    priority = _whole("priority", spec.priority if spec.priority is not None else task.priority, -32768, 32767)
    max_attempts = _whole(
        "max_attempts", spec.max_attempts if spec.max_attempts is not None else task.max_attempts, 1, 1_000_000
    )
    if spec.run_at is not None and spec.delay is not None:
        raise ValueError("give either run_at or delay, not both")
    if spec.run_at is not None:
        if not isinstance(spec.run_at, dt.datetime):
            raise TypeError(f"run_at must be a datetime, got {spec.run_at!r}")
        if spec.run_at.tzinfo is None or spec.run_at.utcoffset() is None:
            raise ValueError(
                "run_at must be timezone-aware (e.g. datetime.now(timezone.utc)); naive times are ambiguous"
            )
    key = spec.idempotency_key
    if key is not None and (not isinstance(key, str) or not 1 <= len(key) <= 255 or "\x00" in key):
        raise ValueError(f"idempotency_key must be a string of 1-255 characters without NUL, got {key!r}")
    return {
        "queue": queue,
        "task": spec.task,
        "args": args,
        "priority": priority,
        "run_at": spec.run_at,
        "delay": _seconds(spec.delay) if spec.delay is not None else None,
        "max_attempts": max_attempts,
        "idempotency_key": key,
    }


def as_spec(item: JobSpec | Mapping[str, Any]) -> JobSpec:
    if isinstance(item, JobSpec):
        return item
    if not isinstance(item, Mapping):
        raise TypeError(f"enqueue_many takes JobSpec objects or mappings, got {type(item).__name__}")
    unknown = set(item) - {f.name for f in dataclasses.fields(JobSpec)}
    if unknown:
        raise TypeError(
            f"unknown job fields {sorted(unknown)}; allowed: {[f.name for f in dataclasses.fields(JobSpec)]}"
        )
    if "task" not in item:
        raise TypeError("each job needs a 'task'")
    return JobSpec(**item)


def enqueue(params: dict[str, Any]) -> Op[Job]:
    sql_params = {**params, "args": Jsonb(params["args"], dumps=_json.dumps)}
    for _ in range(_IDEMPOTENCY_ATTEMPTS):
        rows = yield QUERIES["job_insert"], sql_params
        if rows:
            return Job(**rows[0])
        # The key is held by a job that is not final: that job is the answer. It may
        # have finished in between, in which case the insert is tried again.
        rows = yield QUERIES["job_get_active_by_idempotency_keys"], {"keys": [params["idempotency_key"]]}
        if rows:
            return Job(**rows[0])
    raise PgqError(f"could not enqueue with idempotency_key {params['idempotency_key']!r}: it kept changing hands")


def enqueue_many(all_params: Sequence[dict[str, Any]]) -> Op[list[Job]]:
    if not all_params:
        return []
    payload = [
        {
            **p,
            "ord": i,
            "delay": f"{p['delay'].total_seconds()} seconds" if p["delay"] is not None else None,
            "run_at": p["run_at"].isoformat() if p["run_at"] is not None else None,
        }
        for i, p in enumerate(all_params)
    ]
    rows = yield QUERIES["job_insert_many"], {"jobs": Jsonb(payload, dumps=_json.dumps)}
    inserted = sorted((Job(**r) for r in rows), key=lambda j: j.id)
    keys = [p["idempotency_key"] for p in all_params if p["idempotency_key"] is not None]
    by_key: dict[str, Job] = {}
    if keys:
        for row in (yield QUERIES["job_get_active_by_idempotency_keys"], {"keys": keys}):
            by_key[row["idempotency_key"]] = Job(**row)
    # Jobs without a key were all inserted, in input order (ids ascend with it).
    unkeyed = iter(j for j in inserted if j.idempotency_key is None)
    result: list[Job] = []
    for p in all_params:
        key = p["idempotency_key"]
        if key is None:
            result.append(next(unkeyed))
        elif key in by_key:
            result.append(by_key[key])
        else:
            raise PgqError(f"job with idempotency_key {key!r} finished while being enqueued; enqueue it again")
    return result


def get_job(job_id: int) -> Op[Job]:
    rows = yield QUERIES["job_get"], {"id": job_id}
    if not rows:
        raise JobNotFoundError(f"no job with id {job_id}")
    return Job(**rows[0])


def cancel(job_id: int) -> Op[Job]:
    rows = yield QUERIES["job_cancel"], {"id": job_id}
    if rows:
        return Job(**rows[0])
    rows = yield QUERIES["job_request_cancel"], {"id": job_id}
    if rows:
        del rows[0]["notified"]
        return Job(**rows[0])
    job = yield from get_job(job_id)
    if job.state == JobState.CANCELLED:
        return job
    raise JobStateError(f"job {job_id} is {job.state.value} and cannot be cancelled", state=job.state.value)


def retry(job_id: int) -> Op[Job]:
    rows = yield QUERIES["job_retry"], {"id": job_id}
    if rows:
        job = Job(**rows[0])
        yield QUERIES["job_notify_queue"], {"queue": job.queue}
        return job
    job = yield from get_job(job_id)
    raise JobStateError(
        f"job {job_id} is {job.state.value}; only failed or cancelled jobs can be retried", state=job.state.value
    )


def list_jobs(
    *,
    queue: str | None = None,
    state: str | None = None,
    task: str | None = None,
    before_id: int | None = None,
    limit: int = 50,
) -> Op[list[Job]]:
    if state is not None and state not in {s.value for s in JobState}:
        raise ValueError(f"unknown state {state!r}; states are: {', '.join(s.value for s in JobState)}")
    _whole("limit", limit, 1, 10_000)
    rows = yield (
        QUERIES["job_list"],
        {
            "queue": queue,
            "state": state,
            "task": task,
            "before_id": before_id,
            "limit": limit,
        },
    )
    return [Job(**r) for r in rows]


def list_schedules() -> Op[list[ScheduleState]]:
    rows = yield QUERIES["schedule_list"], {}
    return [ScheduleState(**r) for r in rows]


def run_sync(conn: psycopg.Connection[Any], op: Op[T]) -> T:
    """Drive an operation on a sync connection (the caller's, or one from a pool)."""
    try:
        statement = next(op)
        while True:
            with conn.cursor(row_factory=dict_row) as cur:
                cur.execute(*statement)
                rows = cur.fetchall() if cur.description else []
            statement = op.send(rows)
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]
    except psycopg.errors.UniqueViolation as exc:
        raise _unique_violation(exc) from None


async def run_async(conn: psycopg.AsyncConnection[Any], op: Op[T]) -> T:
    """Drive an operation on an async connection."""
    try:
        statement = next(op)
        while True:
            async with conn.cursor(row_factory=dict_row) as cur:
                await cur.execute(*statement)
                rows = await cur.fetchall() if cur.description else []
            statement = op.send(rows)
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]
    except psycopg.errors.UniqueViolation as exc:
        raise _unique_violation(exc) from None


def _unique_violation(exc: psycopg.errors.UniqueViolation) -> PgqError:
    # Only retry() can hit this: the failed job's idempotency key is taken by a live job.
    return JobStateError(
        "another job that is not final holds this job's idempotency key; "
        f"it cannot be queued again until that one finishes ({exc.diag.constraint_name})",
        state="conflict",
    )
