"""Job operations written once, run by a sync or an async driver.

Each operation is a generator that yields ``(query, params)`` and receives the rows,
so the logic (idempotency races, ordering of bulk results, why a cancel was refused)
exists once while ``App`` offers both ``await app.x()`` and ``app.x_sync()``.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any

from psycopg.types.json import Jsonb

from pgq import _json, _times
from pgq._queries import QUERIES
from pgq.db.driver import Copy, Op, Row
from pgq.errors import JobNotFoundError, JobStateError, PgqError, ScheduleNotFoundError
from pgq.job import FINAL_STATES, Job, JobState
from pgq.monitoring import EXACT_FINAL_COUNT_ROWS, QueueStats, WorkerInfo
from pgq.names import check_queue_name, check_task_name
from pgq.schedule import ScheduleState
from pgq.task import TaskOptions

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


def seconds(delay: float | dt.timedelta) -> dt.timedelta:
    """A delay as a timedelta (0 to about 100 years); TypeError/ValueError otherwise."""
    return _times.check_delay(delay)


_UNKNOWN_TASK = TaskOptions()
"""Defaults for a task this app does not register (a producer-only app)."""


def _whole(name: str, value: object, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        shown = "a larger integer" if isinstance(value, int) and value.bit_length() > 64 else repr(value)
        raise ValueError(f"{name} must be an integer between {low} and {high}, got {shown}")
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
        _times.check_run_at(spec.run_at)
    key = spec.idempotency_key
    if key is not None and (
        not isinstance(key, str) or not 1 <= len(key) <= 255 or "\x00" in key or not _json.utf8_encodable(key)
    ):
        raise ValueError(
            f"idempotency_key must be a string of 1-255 characters without NUL or lone surrogates, got {key!r}"
        )
    return {
        "queue": queue,
        "task": spec.task,
        "args": args,
        "priority": priority,
        "run_at": spec.run_at,
        "delay": seconds(spec.delay) if spec.delay is not None else None,
        "max_attempts": max_attempts,
        "idempotency_key": key,
    }


_SPEC_FIELDS = frozenset(f.name for f in dataclasses.fields(JobSpec))


def as_spec(item: JobSpec | Mapping[str, Any]) -> JobSpec:
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


_JOB_SETTERS = tuple(getattr(Job, f.name).__set__ for f in dataclasses.fields(Job))
"""The slot setters of Job in field order: building a Job through them skips the
frozen dataclass __init__ (a keyword per field, object.__setattr__ per field), which
was a quarter of a bulk enqueue's client time."""
_new_object = object.__new__


def _new_job(p: Mapping[str, Any], job_id: int, state: JobState, run_at: dt.datetime, created_at: dt.datetime) -> Job:
    """The Job just inserted from parameters ``p``. The database only decided the id,
    the state and the times, so only those come back from it: parsing the whole row
    again, args included, cost more client time than the rest of enqueue."""
    values: tuple[Any, ...] = (
        job_id,
        p["queue"],
        p["task"],
        p["args"],
        state,
        p["priority"],
        run_at,
        0,
        p["max_attempts"],
        None,
        [],
        p["idempotency_key"],
        created_at,
        None,
        None,
        None,
        None,
        None,
        None,
    )
    job: Job = _new_object(Job)
    for set_field, value in zip(_JOB_SETTERS, values, strict=True):
        set_field(job, value)
    return job


def enqueue(params: dict[str, Any]) -> Op[Job]:
    job, _ = yield from enqueue_reporting_new(params)
    return job


def enqueue_reporting_new(params: dict[str, Any]) -> Op[tuple[Job, bool]]:
    """Enqueue one job; the flag is False when an idempotency key returned an existing job."""
    sql_params = {**params, "args": Jsonb(params["args"], dumps=_json.dumps)}
    for _ in range(_IDEMPOTENCY_ATTEMPTS):
        rows = yield QUERIES["job_insert"], sql_params
        if rows:
            row = rows[0]
            return _new_job(params, row["id"], JobState(row["state"]), row["run_at"], row["created_at"]), True
        # The key is held by a job that is not final: that job is the answer. It may
        # have finished in between, in which case the insert is tried again.
        rows = yield QUERIES["job_get_active_by_idempotency_keys"], {"keys": [params["idempotency_key"]]}
        if rows:
            return Job(**rows[0]), False
    raise PgqError(f"could not enqueue with idempotency_key {params['idempotency_key']!r}: it kept changing hands")


_COPY_TYPES = ("int8", "text", "text", "jsonb", "int2", "timestamptz", "int4", "timestamptz")
"""Column types of job_copy, in its column order."""


def _copyable(p: Mapping[str, Any]) -> bool:
    """Ready now and without an idempotency key: the COPY fast path can write it."""
    return p["idempotency_key"] is None and p["run_at"] is None and p["delay"] is None


def enqueue_many(all_params: Sequence[dict[str, Any]]) -> Op[list[Job]]:
    if not all_params:
        return []
    if all(map(_copyable, all_params)):
        return (yield from _enqueue_many_copy(all_params))
    return (yield from _enqueue_many_insert(all_params))


def _enqueue_many_copy(all_params: Sequence[dict[str, Any]]) -> Op[list[Job]]:
    """Reserve ids (one round trip), then stream the rows with binary COPY (one more).

    The rows carry their ids, so the jobs come back in input order with ascending ids
    without reading anything back; created_at and run_at are the reservation's now().
    COPY fires the statement-level insert trigger, so each queue is notified once.
    """
    (reserved,) = yield QUERIES["job_ids_reserve"], {"n": len(all_params)}
    now: dt.datetime = reserved["now"]
    ids: list[int] = reserved["ids"]
    dumps = _json.dumps
    yield Copy(
        QUERIES["job_copy"],
        _COPY_TYPES,
        (
            (job_id, p["queue"], p["task"], Jsonb(p["args"], dumps=dumps), p["priority"], now, p["max_attempts"], now)
            for job_id, p in zip(ids, all_params, strict=True)
        ),
    )
    queued = JobState.QUEUED
    return [_new_job(p, job_id, queued, now, now) for job_id, p in zip(ids, all_params, strict=True)]


def _enqueue_many_insert(all_params: Sequence[dict[str, Any]]) -> Op[list[Job]]:
    """One INSERT … SELECT FROM jsonb_to_recordset for batches with keys or times."""
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


MAX_JOB_ID = 2**63 - 1
"""Ids are bigint: a larger one names no job."""


def _check_id(job_id: int) -> None:
    """An id no bigint can hold names no job (and must not reach the database)."""
    if isinstance(job_id, bool) or not isinstance(job_id, int):
        raise TypeError(f"a job id is an integer, got {job_id!r}")
    if not 1 <= job_id <= MAX_JOB_ID:
        raise JobNotFoundError(f"no job with id {job_id}" if job_id.bit_length() < 64 else "no job with this id")


def get_job(job_id: int) -> Op[Job]:
    _check_id(job_id)
    rows = yield QUERIES["job_get"], {"id": job_id}
    if not rows:
        raise JobNotFoundError(f"no job with id {job_id}")
    return Job(**rows[0])


def cancel(job_id: int) -> Op[Job]:
    _check_id(job_id)
    rows = yield QUERIES["job_cancel"], {"id": job_id}
    if rows:
        return Job(**rows[0])
    rows = yield QUERIES["job_request_cancel"], {"id": job_id}
    if rows:
        del rows[0]["notified"]
        return Job(**rows[0])
    job = yield from get_job(job_id)
    raise JobStateError(f"job {job_id} is {job.state.value} and cannot be cancelled", state=job.state.value)


def retry(job_id: int) -> Op[Job]:
    _check_id(job_id)
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
    if queue is not None:
        check_queue_name(queue)
    if task is not None:
        check_task_name(task)
    if before_id is not None:
        _whole("before_id", before_id, 0, MAX_JOB_ID)
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


@dataclasses.dataclass(frozen=True, slots=True)
class QueueLimits:
    """A row of pgq.queues: limits that hold across every worker of the queue."""

    queue: str
    max_running: int | None = None
    """At most this many jobs of the queue run at once, on all workers together."""
    rate_limit: int | None = None
    """At most this many job starts within any ``rate_period``."""
    rate_period: dt.timedelta | None = None


def set_queue_limits(limits: QueueLimits) -> Op[QueueLimits]:
    check_queue_name(limits.queue)
    if limits.max_running is not None:
        _whole("max_running", limits.max_running, 1, 1_000_000)
    if (limits.rate_limit is None) != (limits.rate_period is None):
        raise ValueError("rate_limit and rate_period go together: give both, or neither to remove the rate limit")
    period = None
    if limits.rate_limit is not None and limits.rate_period is not None:
        _whole("rate_limit", limits.rate_limit, 1, 10_000)
        period = seconds(limits.rate_period)
        if not period:
            raise ValueError("rate_period must be longer than zero")
    rows = yield (
        QUERIES["queue_limits_set"],
        {
            "queue": limits.queue,
            "max_running": limits.max_running,
            "rate_limit": limits.rate_limit,
            "rate_period": period,
        },
    )
    return QueueLimits(**rows[0])


def list_queue_limits() -> Op[list[QueueLimits]]:
    rows = yield QUERIES["queue_limits_list"], {}
    return [QueueLimits(**r) for r in rows]


def queue_stats(exact_final_below: int = EXACT_FINAL_COUNT_ROWS) -> Op[list[QueueStats]]:
    """Per-queue statistics without counting the finished rows of a large table;
    a paused queue is listed even when it has no jobs."""
    live = yield QUERIES["queue_live_counts"], {}
    recent = yield QUERIES["queue_finished_recently"], {}
    (size,) = yield QUERIES["queue_table_size_estimate"], {}
    final: list[Row] = []
    estimated = size["rows"] >= max(exact_final_below, 0)  # -1: never analyzed
    if estimated:
        final = yield QUERIES["queue_final_counts_estimate"], {}
        estimated = bool(final)  # never analyzed (no statistics yet): count instead
    if not estimated:
        final = yield QUERIES["queue_final_counts"], {}
    paused = {r["queue"]: r["paused_at"] for r in (yield QUERIES["queue_paused_list"], {})}
    counts: dict[str, dict[str, int]] = {name: QueueStats.empty_counts() for name in paused}
    oldest: dict[str, float | None] = {}
    finished: dict[str, dict[str, int]] = {}
    for row in [*live, *final]:
        counts.setdefault(row["queue"], QueueStats.empty_counts())[row["state"]] = int(row["jobs"])
    for row in live:
        if row["state"] == JobState.QUEUED:
            oldest[row["queue"]] = max(0.0, row["oldest_queued_seconds"])
    for row in recent:
        counts.setdefault(row["queue"], QueueStats.empty_counts())
        finished.setdefault(row["queue"], {s.value: 0 for s in FINAL_STATES})[row["state"]] = int(row["jobs"])
    return [
        QueueStats(
            queue=name,
            counts=counts[name],
            oldest_queued_seconds=oldest.get(name),
            finished_last_minute=finished.get(name, {s.value: 0 for s in FINAL_STATES}),
            final_counts_estimated=estimated,
            paused_at=paused.get(name),
        )
        for name in sorted(counts)
    ]


def schema_revision() -> Op[str | None]:
    """The database's pgq schema revision (None: never migrated)."""
    rows = yield QUERIES["schema_version_get"], {}
    return str(rows[0]["version_num"]) if rows else None


def list_workers() -> Op[list[WorkerInfo]]:
    rows = yield QUERIES["worker_list"], {}
    return [WorkerInfo(**r) for r in rows]


def list_schedules() -> Op[list[ScheduleState]]:
    rows = yield QUERIES["schedule_list"], {}
    return [ScheduleState(**r) for r in rows]


def delete_schedule(name: str) -> Op[None]:
    rows = yield QUERIES["schedule_delete"], {"name": name}
    if not rows:
        raise ScheduleNotFoundError(f"no schedule named {name!r} (`pgq schedules` lists them)")
