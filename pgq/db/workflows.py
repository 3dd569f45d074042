"""Jobs that wait for other jobs: writing them with their edges, reading a workflow,
cancelling and retrying one, and the parents a dependent task reads when it starts.

Sans-IO operations (``pgq.db.driver``), like ``pgq.db.enqueue``; the join itself is not
here but in the database (``pgq.settle_dependents`` in schema.sql), so that every path
that finishes a job settles its dependents in the same transaction.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Sequence
from typing import Any

from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from pgq import _json
from pgq._queries import QUERIES
from pgq.db import Conn
from pgq.db.driver import Op
from pgq.errors import WorkflowNotFoundError
from pgq.job import Job, JobState, from_row
from pgq.spec import MAX_JOB_ID, NewJob, check_job_id, whole


@dataclasses.dataclass(frozen=True, slots=True)
class GraphStep:
    """A validated job with its place in the graph: ``parents`` are positions of
    earlier steps of the same call; ``new.parent_ids`` are existing jobs."""

    new: NewJob
    name: str | None = None
    parents: tuple[int, ...] = ()


@dataclasses.dataclass(frozen=True, slots=True)
class WorkflowStatus:
    """A row of ``pgq.workflow_status``: one workflow, its steps counted by state."""

    id: int
    name: str
    created_at: dt.datetime
    state: str
    """running until every step is final; then succeeded, failed or cancelled."""
    steps: int
    waiting: int
    queued: int
    running: int
    succeeded: int
    failed: int
    cancelled: int
    finished_at: dt.datetime | None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (GET /workflows, ``pgq workflows --json``)."""
        return _json.row_as_json(self)


@dataclasses.dataclass(frozen=True, slots=True)
class Parent:
    """A parent of the running job, as ``current_job().parents`` lists it."""

    id: int
    step: str | None
    task: str
    state: JobState
    result: Any


def enqueue(steps: Sequence[GraphStep], workflow_name: str | None = None) -> Op[list[Job]]:
    """``job_enqueue_dependent``: every step and edge in one call; the jobs in step order."""
    has_children = {parent for step in steps for parent in step.parents}
    edges: list[tuple[int, int | None, int | None, bool]] = []
    payload = []
    for i, step in enumerate(steps):
        new = step.new
        cancel = not new.run_on_parent_failure
        edges.extend((i, parent, None, cancel) for parent in step.parents)
        edges.extend((i, None, parent_id, cancel) for parent_id in new.parent_ids)
        payload.append(
            {
                "n": i,
                "queue": new.queue,
                "task": new.task,
                "args": new.args,
                "priority": new.priority,
                "max_attempts": new.max_attempts,
                "delay": f"{new.delay.total_seconds()} seconds" if new.delay is not None else None,
                # In UTC: PostgreSQL parses offsets up to 15:59, Python allows up to 24 h.
                "run_at": new.run_at.astimezone(dt.UTC).isoformat() if new.run_at is not None else None,
                "step": step.name,
                "has_dependents": i in has_children,
                "trace_context": new.trace_context,
            }
        )
    columns = list(zip(*edges, strict=True)) or [(), (), (), ()]
    rows = yield (
        QUERIES["job_enqueue_dependent"],
        {
            "workflow_name": workflow_name,
            "steps": Jsonb(payload, dumps=_json.dumps),
            "edge_step": list(columns[0]),
            "edge_parent_step": list(columns[1]),
            "edge_parent_id": list(columns[2]),
            "edge_cancel": list(columns[3]),
        },
    )
    return [from_row(row) for row in rows]


@dataclasses.dataclass(frozen=True, slots=True)
class WorkflowRead:
    """A workflow's status, its steps in order, the ids of the steps that end it, and
    how many parents each step with parents still waits for."""

    status: WorkflowStatus
    steps: list[Job]
    ends: frozenset[int]
    parents_left: dict[int, int]


def status(workflow_id: int) -> Op[WorkflowStatus]:
    """``workflow_get``: the workflow's counts, without its steps; WorkflowNotFoundError
    if there is none (what cancel, retry and each round of a wait need to know)."""
    _check_id(workflow_id)
    rows = yield QUERIES["workflow_get"], {"id": workflow_id}
    if not rows:
        raise WorkflowNotFoundError(f"no workflow with id {workflow_id}")
    return WorkflowStatus(**rows[0])


def get(workflow_id: int) -> Op[WorkflowRead]:
    """``status`` and ``workflow_steps_list``."""
    found = yield from status(workflow_id)
    steps = yield QUERIES["workflow_steps_list"], {"id": workflow_id}
    ends = frozenset(row["id"] for row in steps if row["ends_workflow"])
    left = {row["id"]: row["parents_left"] for row in steps if row["parents_left"] is not None}
    return WorkflowRead(found, [from_row(row) for row in steps], ends, left)


def enqueue_and_read(steps: Sequence[GraphStep], name: str) -> Op[WorkflowRead]:
    """Write the workflow, then read it back on the same connection (a caller's
    transaction sees its own uncommitted workflow)."""
    jobs = yield from enqueue(steps, name)
    workflow_id = jobs[0].workflow_id
    assert workflow_id is not None
    return (yield from get(workflow_id))


def pending_step(workflow_id: int) -> Op[tuple[WorkflowStatus, int | None]]:
    """``workflow_get`` and, while it runs, ``workflow_pending_step``: the last step not
    final (what ``wait_workflow`` waits for next)."""
    found = yield from status(workflow_id)
    if found.state != "running":
        return found, None
    pending = yield QUERIES["workflow_pending_step"], {"id": workflow_id}
    return found, pending[0]["id"] if pending else None


def list_workflows(limit: int = 50, before_id: int | None = None) -> Op[list[WorkflowStatus]]:
    """``workflow_list``: newest first, one page; the bounds of ``JobFilter`` (ValueError)."""
    whole("limit", limit, 1, 10_000)
    if before_id is not None:
        whole("before_id", before_id, 0, MAX_JOB_ID)
    rows = yield QUERIES["workflow_list"], {"limit": limit, "before_id": before_id}
    return [WorkflowStatus(**row) for row in rows]


def cancel(workflow_id: int) -> Op[tuple[int, int]]:
    """``workflow_cancel``: (steps cancelled now, running steps asked to stop)."""
    yield from status(workflow_id)
    (row,) = yield QUERIES["workflow_cancel"], {"id": workflow_id}
    return row["cancelled"], row["stopping"]


def retry(workflow_id: int) -> Op[int]:
    """``workflow_retry``: how many failed or cancelled steps run (or wait) again."""
    yield from status(workflow_id)
    (row,) = yield QUERIES["workflow_retry"], {"id": workflow_id}
    return int(row["retried"])


async def parents(conn: Conn, job_id: int) -> list[Parent]:
    """``job_parents_list``, on the worker's connection as a dependent job starts."""
    cur = conn.cursor(row_factory=dict_row)
    await cur.execute(QUERIES["job_parents_list"], {"id": job_id})
    return [
        Parent(row["id"], row["step"], row["task"], JobState(row["state"]), row["result"])
        for row in await cur.fetchall()
    ]


async def prune_empty(conn: Conn, older_than: dt.timedelta) -> None:
    """``workflow_prune_empty``: the pruner removes workflows whose steps are all gone."""
    await conn.execute(QUERIES["workflow_prune_empty"], {"older_than": older_than})


def _check_id(workflow_id: int) -> None:
    try:
        check_job_id(workflow_id)  # the same range: a bigint identity
    except LookupError:
        raise WorkflowNotFoundError(f"no workflow with id {workflow_id}") from None
