"""Writing new jobs: one (``job_insert``), or many (``job_copy``, ``job_insert_many``).

Operations here are sans-IO generators (``pgq.db.driver``): the producer drives them on
its pool or on the caller's connection, sync or async, and the scheduler drives
``insert`` inside its own transaction. They take ``NewJob`` values that
``pgq.spec.validate`` already checked.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from psycopg.types.json import Jsonb

from pgq import _json
from pgq._queries import QUERIES
from pgq.db import copy_rows, workflows
from pgq.db.driver import Copy, Op
from pgq.errors import PgqError
from pgq.job import COLUMNS, Job, JobState, from_row
from pgq.spec import NewJob

_IDEMPOTENCY_ATTEMPTS = 10

_JOB_SETTERS = tuple(getattr(Job, name).__set__ for name in COLUMNS)
"""The slot setters of Job in column order: building a Job through them skips the
frozen dataclass __init__ (a keyword per field, object.__setattr__ per field), which
was a quarter of a bulk enqueue's client time."""
_new_object = object.__new__


def _inserted(new: NewJob, job_id: int, state: JobState, run_at: dt.datetime, created_at: dt.datetime) -> Job:
    """The Job just inserted from ``new``. The database only decided the id, the state
    and the times, so only those come back from it: parsing the whole row again, args
    included, cost more client time than the rest of enqueue."""
    values: tuple[Any, ...] = (
        job_id,
        new.queue,
        new.task,
        new.args,
        state,
        new.priority,
        run_at,
        0,
        new.max_attempts,
        None,
        [],
        new.idempotency_key,
        created_at,
        None,
        None,
        None,
        None,
        None,
        None,
        None,
        None,
        False,
        False,
        new.trace_context,
    )
    job: Job = _new_object(Job)
    for set_field, value in zip(_JOB_SETTERS, values, strict=True):
        set_field(job, value)
    return job


def _insert_params(new: NewJob) -> dict[str, Any]:
    return {
        "queue": new.queue,
        "task": new.task,
        "args": Jsonb(new.args, dumps=_json.dumps),
        "priority": new.priority,
        "run_at": new.run_at,
        "delay": new.delay,
        "max_attempts": new.max_attempts,
        "idempotency_key": new.idempotency_key,
        "trace_context": None if new.trace_context is None else Jsonb(new.trace_context),
    }


def insert_ready_params(new: NewJob) -> dict[str, Any]:
    """The parameters of ``job_insert_ready`` (also what benchmarks/client_instructions.py
    measures the bare statement with)."""
    trace = new.trace_context
    return {
        "queue": new.queue,
        "task": new.task,
        "args": Jsonb(new.args, dumps=_json.dumps),
        "priority": new.priority,
        "max_attempts": new.max_attempts,
        "trace_context": None if trace is None else Jsonb(trace),
    }


def _insert_ready(new: NewJob) -> Op[Job]:
    """``job_insert_ready``: a job ready now without a key, which the INSERT always writes."""
    (row,) = yield QUERIES["job_insert_ready"], insert_ready_params(new)
    created_at = row["created_at"]
    return _inserted(new, row["id"], JobState.QUEUED, created_at, created_at)


def insert(new: NewJob) -> Op[tuple[Job, bool]]:
    """``job_insert``: enqueue one job; the flag is False when its idempotency key
    returned a job that already existed (and is not final). A job with parents goes
    through ``pgq.db.workflows`` (it cannot have an idempotency key)."""
    if new.parent_ids:
        (job,) = yield from workflows.enqueue([workflows.GraphStep(new)])
        return job, True
    if new.ready_now:
        return (yield from _insert_ready(new)), True
    params = _insert_params(new)
    for _ in range(_IDEMPOTENCY_ATTEMPTS):
        rows = yield QUERIES["job_insert"], params
        if rows:
            row = rows[0]
            return _inserted(new, row["id"], JobState(row["state"]), row["run_at"], row["created_at"]), True
        # The key is held by a job that is not final: that job is the answer. It may
        # have finished in between, in which case the insert is tried again.
        rows = yield QUERIES["job_get_active_by_idempotency_keys"], {"keys": [new.idempotency_key]}
        if rows:
            return from_row(rows[0]), False
    raise PgqError(f"could not enqueue with idempotency_key {new.idempotency_key!r}: it kept changing hands")


def insert_job(new: NewJob) -> Op[Job]:
    """``insert`` for callers that do not ask whether the job is new."""
    job, _ = yield from insert(new)
    return job


def insert_many(jobs: Sequence[NewJob]) -> Op[list[Job]]:
    """Enqueue many jobs in one statement; they come back in input order."""
    if not jobs:
        return []
    if any(new.parent_ids for new in jobs):
        if any(new.idempotency_key is not None for new in jobs):
            raise ValueError("jobs with depends_on and jobs with an idempotency_key cannot be enqueued in one call")
        return (yield from workflows.enqueue([workflows.GraphStep(new) for new in jobs]))
    if all(new.ready_now for new in jobs):
        return (yield from _copy(jobs))
    return (yield from _insert_many(jobs))


def _copy(jobs: Sequence[NewJob]) -> Op[list[Job]]:
    """Reserve ids (one round trip), then stream the rows with binary COPY (one more).

    The rows carry their ids, so the jobs come back in input order with ascending ids
    without reading anything back; created_at and run_at are the reservation's now().
    COPY fires the statement-level insert trigger, so each queue is notified once.
    """
    (reserved,) = yield QUERIES["job_ids_reserve"], {"n": len(jobs)}
    now: dt.datetime = reserved["now"]
    ids: list[int] = reserved["ids"]
    yield Copy(QUERIES["job_copy"], copy_rows.encode(ids, jobs, now))
    queued = JobState.QUEUED
    return [_inserted(new, job_id, queued, now, now) for job_id, new in zip(ids, jobs, strict=True)]


def _insert_many(jobs: Sequence[NewJob]) -> Op[list[Job]]:
    """One INSERT … SELECT FROM jsonb_to_recordset for batches with keys or times."""
    payload = [
        {
            "ord": i,
            "queue": new.queue,
            "task": new.task,
            "args": new.args,
            "priority": new.priority,
            "max_attempts": new.max_attempts,
            "idempotency_key": new.idempotency_key,
            "delay": f"{new.delay.total_seconds()} seconds" if new.delay is not None else None,
            "run_at": new.run_at.isoformat() if new.run_at is not None else None,
            "trace_context": new.trace_context,
        }
        for i, new in enumerate(jobs)
    ]
    rows = yield QUERIES["job_insert_many"], {"jobs": Jsonb(payload, dumps=_json.dumps)}
    inserted = sorted(map(from_row, rows), key=lambda j: j.id)
    keys = [new.idempotency_key for new in jobs if new.idempotency_key is not None]
    by_key: dict[str, Job] = {}
    if keys:
        for row in (yield QUERIES["job_get_active_by_idempotency_keys"], {"keys": keys}):
            by_key[row["idempotency_key"]] = from_row(row)
    # Jobs without a key were all inserted, in input order (ids ascend with it).
    unkeyed = iter(j for j in inserted if j.idempotency_key is None)
    result: list[Job] = []
    for new in jobs:
        key = new.idempotency_key
        if key is None:
            result.append(next(unkeyed))
        elif key in by_key:
            result.append(by_key[key])
        else:
            raise PgqError(f"job with idempotency_key {key!r} finished while being enqueued; enqueue it again")
    return result
