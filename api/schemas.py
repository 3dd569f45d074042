"""Request and response shapes, as pydantic models.

The same models validate what comes in and generate the OpenAPI document, so the
published schema cannot drift from what the code accepts.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from pgq.job import JobState
from pgq.task import QUEUE_NAME, TASK_NAME

MAX_DELAY_SECONDS = 100 * 365 * 24 * 3600
MAX_WAIT_SECONDS = 300.0

TaskName = Annotated[str, Field(pattern=TASK_NAME.pattern, description="A task name a worker registers.")]
QueueName = Annotated[str, Field(pattern=QUEUE_NAME.pattern)]
State = Literal["scheduled", "queued", "running", "retrying", "succeeded", "failed", "cancelled"]
assert set(State.__args__) == {s.value for s in JobState}  # type: ignore[attr-defined]


class EnqueueRequest(BaseModel):
    """POST /jobs: what ``app.enqueue`` takes. Unknown fields are rejected."""

    model_config = ConfigDict(extra="forbid", strict=True)

    task: TaskName
    args: dict[str, Any] = Field(default_factory=dict, description="Keyword arguments of the task (a JSON object).")
    queue: QueueName | None = Field(default=None, description="Default: 'default'.")
    priority: Annotated[int, Field(ge=-32768, le=32767)] | None = Field(
        default=None, description="Lower runs first. Default 0."
    )
    delay: Annotated[float, Field(ge=0, le=MAX_DELAY_SECONDS)] | None = Field(
        default=None, description="Seconds from now before the job may run. Not with run_at."
    )
    run_at: AwareDatetime | None = Field(default=None, description="When the job may run (with a UTC offset).")
    max_attempts: Annotated[int, Field(ge=1, le=1_000_000)] | None = Field(default=None, description="Default 5.")
    idempotency_key: Annotated[str, Field(min_length=1, max_length=255)] | None = Field(
        default=None, description="While a job with this key is not final, the same request returns that job (200)."
    )


class ListQuery(BaseModel):
    """GET /jobs query parameters."""

    model_config = ConfigDict(extra="forbid")

    queue: QueueName | None = None
    state: State | None = None
    task: TaskName | None = None
    limit: Annotated[int, Field(ge=1, le=1000)] = 50
    cursor: Annotated[str, Field(max_length=100)] | None = None


class WaitQuery(BaseModel):
    """GET /jobs/{id}/wait query parameters."""

    model_config = ConfigDict(extra="forbid")

    timeout: Annotated[float, Field(ge=0, le=MAX_WAIT_SECONDS)] = 30.0


class JobOut(BaseModel):
    """A job: one row of pgq.jobs."""

    id: int
    queue: str
    task: str
    args: dict[str, Any]
    state: State
    priority: int
    run_at: dt.datetime
    attempt: int
    max_attempts: int
    result: Any = Field(description="The task's return value, once succeeded.")
    errors: list[dict[str, Any]] = Field(description="One entry per failed attempt: attempt, at, type, message.")
    idempotency_key: str | None
    created_at: dt.datetime
    started_at: dt.datetime | None
    finished_at: dt.datetime | None
    heartbeat_at: dt.datetime | None
    worker_id: str | None
    cancel_requested_at: dt.datetime | None
    progress: dict[str, Any] | None = Field(description='The latest progress: {"percent", "message", "at"}.')


class JobPage(BaseModel):
    """One page of jobs, newest first."""

    jobs: list[JobOut]
    next_cursor: str | None = Field(description="Pass as cursor= for the next page; null on the last page.")


class QueueOut(BaseModel):
    """One queue's statistics."""

    queue: str
    counts: dict[str, int] = Field(description="Jobs per state; every state is present.")
    oldest_queued_seconds: float | None = Field(description="How long the oldest ready job has waited.")
    finished_last_minute: dict[str, int] = Field(description="Jobs that reached each final state in the last minute.")
    final_counts_estimated: bool = Field(description="Final-state counts are planner estimates (large table).")
    paused: bool = Field(description="Workers claim nothing from this queue until it is resumed.")
    paused_at: dt.datetime | None = Field(description="When the queue was paused; null when it is not paused.")


class QueueList(BaseModel):
    queues: list[QueueOut]


class QueuePauseOut(BaseModel):
    """A queue's pause state, after POST /queues/{name}/pause or /resume."""

    queue: str
    paused: bool
    paused_at: dt.datetime | None = Field(description="When the queue was paused; null when it is not paused.")


class WorkerOut(BaseModel):
    """A worker process registered in pgq.workers."""

    id: str
    host: str
    pid: int
    queues: list[str]
    concurrency: int
    started_at: dt.datetime
    heartbeat_at: dt.datetime
    seconds_since_heartbeat: float


class WorkerList(BaseModel):
    workers: list[WorkerOut]


class Health(BaseModel):
    status: Literal["ok", "unavailable"]
    schema_revision: str | None = None
    database: str | None = None
    schema_: str | None = Field(default=None, alias="schema")


class ErrorBody(BaseModel):
    code: str = Field(description="Machine-readable: invalid_fields, not_found, state_conflict, ...")
    message: str
    details: dict[str, Any]


class ErrorOut(BaseModel):
    """Every error response."""

    error: ErrorBody
