"""Request and response shapes, as pydantic models.

The same models validate what comes in and generate the OpenAPI document, so the
published schema cannot drift from what the code accepts.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import TYPE_CHECKING, Annotated, Any, Literal, get_type_hints

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    WithJsonSchema,
    create_model,
)

from pgq.job import Job, JobState
from pgq.monitoring import WorkerInfo
from pgq.spec import MAX_DELAY, MAX_JOB_ID, RUN_AT_FIRST_YEAR, RUN_AT_LAST_YEAR, check_run_at
from pgq.task import QUEUE_NAME, TASK_NAME

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

MAX_DELAY_SECONDS = MAX_DELAY.total_seconds()
MAX_WAIT_SECONDS = 300.0
MAX_DEPENDS_ON = 10_000
"""Parents one job may name over HTTP (the library takes more)."""

TaskName = Annotated[str, Field(pattern=TASK_NAME.pattern, description="A task name a worker registers.")]
QueueName = Annotated[str, Field(pattern=QUEUE_NAME.pattern)]
State = Literal["waiting", "scheduled", "queued", "running", "retrying", "succeeded", "failed", "cancelled"]
assert set(State.__args__) == {s.value for s in JobState}  # type: ignore[attr-defined]


def _integral(value: object) -> object:
    """JSON Schema's integer includes 3.0; the body is otherwise strict (no "3")."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


NO_NUL = r"^[^\u0000]*$"
"""Postgres text and jsonb cannot hold NUL: said in the schema, refused by the library."""
_TEXT = {"type": "string", "pattern": NO_NUL}
_JSON_VALUE_REF = {"$ref": "#/components/schemas/JsonValue"}
JSON_VALUE_SCHEMA: dict[str, Any] = {
    "description": "Any JSON value pgq can store: no NUL in any string.",
    "anyOf": [
        {"type": "null"},
        {"type": "boolean"},
        {"type": "number"},
        _TEXT,
        {"type": "array", "items": _JSON_VALUE_REF},
        {"type": "object", "propertyNames": _TEXT, "additionalProperties": _JSON_VALUE_REF},
    ],
}
ARGS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "propertyNames": {"type": "string", "minLength": 1, "pattern": NO_NUL},
    "additionalProperties": _JSON_VALUE_REF,
}
RUN_AT_PATTERN = r"^(19[7-9][0-9]|[2-8][0-9]{3}|9[0-8][0-9]{2}|99[0-8][0-9]|999[0-8])-"
"""The accepted years, 1970 to 9998, as the start of an ISO 8601 string."""


_DELAY_XOR_RUN_AT: dict[str, Any] = {
    "not": {"required": ["delay", "run_at"], "properties": {"delay": {"type": "number"}, "run_at": {"type": "string"}}}
}
_KEY_XOR_PARENTS: dict[str, Any] = {
    "not": {
        "required": ["depends_on", "idempotency_key"],
        "properties": {"depends_on": {"type": "array", "minItems": 1}, "idempotency_key": {"type": "string"}},
    }
}
"""delay and run_at are alternatives (both given, not null, is refused); so are depends_on and idempotency_key."""

JobId = Annotated[int, Field(ge=1, le=MAX_JOB_ID), BeforeValidator(_integral)]
DependsOn = Annotated[
    list[JobId],
    Field(
        max_length=MAX_DEPENDS_ON,
        description="Ids of existing jobs this one waits for: it runs once every one of them is final "
        "(see on_parent_failure). Unknown ids are refused (422, details.missing) and nothing is written.",
    ),
]
ParentFailure = Annotated[
    Literal["cancel", "run"] | None,
    Field(description="When a parent fails or is cancelled: 'cancel' this job too (default), or 'run' it anyway."),
]


class JobFields(BaseModel):
    """What a job of POST /jobs and a step of POST /workflows have in common."""

    model_config = ConfigDict(extra="forbid", strict=True, json_schema_extra=_DELAY_XOR_RUN_AT)

    task: TaskName
    args: Annotated[dict[str, Any], WithJsonSchema(ARGS_SCHEMA)] = Field(
        default_factory=dict,
        description="Keyword arguments of the task: a JSON object with non-empty names; no string (name or "
        "value) may contain NUL (\\u0000), nesting is at most 100 levels, integers at most 4000 digits.",
    )
    queue: QueueName | None = Field(default=None, description="Default: 'default'.")
    priority: Annotated[int, Field(ge=-32768, le=32767), BeforeValidator(_integral)] | None = Field(
        default=None, description="Lower runs first. Default 0."
    )
    delay: Annotated[float, Field(ge=0, le=MAX_DELAY_SECONDS, allow_inf_nan=False)] | None = Field(
        default=None, description="Seconds from now before the job may run. Not with run_at."
    )
    run_at: (
        Annotated[AwareDatetime, AfterValidator(check_run_at), Field(json_schema_extra={"pattern": RUN_AT_PATTERN})]
        | None
    ) = Field(
        default=None,
        description=f"When the job may run: ISO 8601 with a UTC offset, in the years {RUN_AT_FIRST_YEAR} "
        f"to {RUN_AT_LAST_YEAR} (as written). Not with delay.",
    )
    max_attempts: Annotated[int, Field(ge=1, le=1_000_000), BeforeValidator(_integral)] | None = Field(
        default=None, description="Default 5."
    )


class EnqueueRequest(JobFields):
    """POST /jobs: what ``app.enqueue`` takes. Unknown fields are rejected."""

    model_config = ConfigDict(json_schema_extra={"allOf": [_DELAY_XOR_RUN_AT, _KEY_XOR_PARENTS]})

    idempotency_key: (
        Annotated[str, Field(min_length=1, max_length=255, json_schema_extra={"pattern": NO_NUL})] | None
    ) = Field(
        default=None,
        description="While a job with this key is not final, the same request returns that job (200). "
        "Not with depends_on.",
    )
    depends_on: DependsOn = Field(default_factory=list)
    on_parent_failure: ParentFailure = None


class ListQuery(BaseModel):
    """GET /jobs query parameters."""

    model_config = ConfigDict(extra="forbid")

    queue: QueueName | None = None
    state: State | None = None
    task: TaskName | None = None
    limit: Annotated[int, Field(ge=1, le=1000)] = 50
    cursor: (
        Annotated[str, Field(pattern=r"^[0-9]{1,19}$", description="The next_cursor of the previous page.")] | None
    ) = None


class WaitQuery(BaseModel):
    """GET /jobs/{id}/wait query parameters."""

    model_config = ConfigDict(extra="forbid")

    timeout: Annotated[float, Field(ge=0, le=MAX_WAIT_SECONDS, allow_inf_nan=False)] = 30.0


def model_of(row: type[DataclassInstance], name: str, doc: str, **types: Any) -> type[BaseModel]:
    """A response model generated from a row's dataclass, field by field (``types``
    overrides a field's type; a field's ``doc`` metadata becomes its description), so
    the published schema is the Python type and cannot drift from it."""
    fields: dict[str, Any] = {}
    for field, hint in zip(dataclasses.fields(row), get_type_hints(row).values(), strict=True):
        doc_text = field.metadata.get("doc")
        fields[field.name] = (types.get(field.name, hint), Field(description=doc_text) if doc_text else ...)
    return create_model(name, __doc__=doc, __module__=__name__, **fields)


JobOut = model_of(Job, "JobOut", "A job: one row of pgq.jobs.", state=State)
WorkerOut = model_of(WorkerInfo, "WorkerOut", "A worker process registered in pgq.workers.")

JobPage: type[BaseModel] = create_model(
    "JobPage",
    __doc__="One page of jobs, newest first.",
    __module__=__name__,
    jobs=(list[JobOut], ...),  # type: ignore[valid-type]
    next_cursor=(str | None, Field(description="Pass as cursor= for the next page; null on the last page.")),
)


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


WorkerList: type[BaseModel] = create_model(
    "WorkerList",
    __module__=__name__,
    workers=(list[WorkerOut], ...),  # type: ignore[valid-type]
)


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


MAX_FILTER_VALUES = 50


class EventsQuery(BaseModel):
    """GET /events and GET /ws query parameters. Each may repeat: a job matches when its
    queue is one of the queues given, and its task one of the tasks, and its state one of
    the states. Without a parameter every job matches."""

    model_config = ConfigDict(extra="forbid")

    queue: list[QueueName] = Field(default_factory=list, max_length=MAX_FILTER_VALUES)
    task: list[TaskName] = Field(default_factory=list, max_length=MAX_FILTER_VALUES)
    state: list[State] = Field(default_factory=list, max_length=MAX_FILTER_VALUES)


class JobChangeOut(BaseModel):
    """A job changed (or was enqueued): its state after the change."""

    id: int
    queue: str
    task: str
    state: State
    attempt: int
    progress: bool = Field(description="True when this change was a new progress report.")


class UnavailableOut(BaseModel):
    """The last event of a stream: the API's database listener has been down for 3 s."""

    message: str = Field(description="Why the stream ended; open a new one when the database is back.")


class ResyncOut(BaseModel):
    """Changes were dropped or may have been missed: read the jobs again."""

    reason: Literal["overflow", "reconnected", "bulk_insert"] = Field(
        description="overflow: this client fell behind and its buffer was dropped; reconnected: the API's "
        "database listener reconnected; bulk_insert: more than 100 jobs were enqueued in one statement."
    )


class StateEventOut(BaseModel):
    """GET /jobs/{id}/events: the job's state changed."""

    id: int
    state: State
    attempt: int


class ProgressEventOut(BaseModel):
    """GET /jobs/{id}/events: the job reported progress (null: cleared when an attempt starts)."""

    id: int
    progress: dict[str, Any] | None
