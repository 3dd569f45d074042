"""Workflows on the App: enqueue a composition (``pgq.canvas``) in one transaction, and
the handle that reads, waits for, cancels and retries it.

A workflow is a row of ``pgq.workflows`` and its steps are ordinary jobs with a
``workflow_id``: everything a job can do (priorities, queues, retries, timeouts) a step
does too, and ``SELECT * FROM pgq.workflow_status`` shows where each workflow stands.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Mapping
from typing import Any

import psycopg

from pgq import waiting
from pgq._json import row_as_json
from pgq.canvas import Node, is_name, plan, plan_description
from pgq.db import workflows
from pgq.db.driver import Op
from pgq.db.workflows import GraphStep, WorkflowRead, WorkflowStatus
from pgq.errors import PgqError, WaitTimeoutError
from pgq.job import Job
from pgq.producer import Producer

WORKFLOW_STATES = ("running", "succeeded", "failed", "cancelled")


class WorkflowWaitTimeoutError(PgqError, TimeoutError):
    """``wait_workflow`` gave up: a step was not final within the timeout."""

    def __init__(self, workflow_id: int, timeout: float) -> None:
        super().__init__(f"workflow {workflow_id} is still running after waiting {timeout:g}s")
        self.workflow_id = workflow_id
        self.timeout = timeout


@dataclasses.dataclass(frozen=True, slots=True)
class Workflow:
    """A workflow as last read: its status, counts and steps (jobs, in step order)."""

    status: WorkflowStatus
    steps: tuple[Job, ...]
    app: Workflows = dataclasses.field(repr=False, compare=False)
    ends: frozenset[int] = frozenset()
    """Ids of the steps no other step waits for."""
    parents_left: Mapping[int, int] = dataclasses.field(default_factory=dict)
    """Per step with parents (by id): how many are not final yet (pgq.job_waits)."""

    @classmethod
    def of(cls, read: WorkflowRead, app: Workflows) -> Workflow:
        return cls(read.status, tuple(read.steps), app, read.ends, read.parents_left)

    @property
    def id(self) -> int:
        return self.status.id

    @property
    def name(self) -> str:
        return self.status.name

    @property
    def state(self) -> str:
        """running until every step is final; then succeeded, failed or cancelled."""
        return self.status.state

    @property
    def is_final(self) -> bool:
        return self.status.state != "running"

    def step(self, name: str) -> Job:
        """The step with this name; KeyError naming the steps there are."""
        for job in self.steps:
            if job.step == name:
                return job
        raise KeyError(f"workflow {self.id} has no step {name!r}; steps: {[j.step for j in self.steps]}")

    @property
    def result(self) -> Any:
        """The result of the step that ends the workflow (no step waits for it), or the
        list of them, in step order, when several do (a workflow ending in a group)."""
        ends = [job.result for job in self.steps if job.id in self.ends]
        return ends[0] if len(ends) == 1 else ends

    async def wait(self, timeout: float | None = None) -> Workflow:  # noqa: ASYNC109 (mirrors wait_sync)
        return await self.app.wait_workflow(self.id, timeout=timeout)

    def wait_sync(self, timeout: float | None = None) -> Workflow:
        return self.app.wait_workflow_sync(self.id, timeout=timeout)

    async def refresh(self) -> Workflow:
        return await self.app.get_workflow(self.id)

    async def cancel(self) -> Workflow:
        return await self.app.cancel_workflow(self.id)

    async def retry(self) -> Workflow:
        return await self.app.retry_workflow(self.id)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form, for the CLI and the HTTP API."""
        steps = [{**job.to_dict(), "parents_left": self.parents_left.get(job.id)} for job in self.steps]
        return {**row_as_json(self.status), "steps": steps}


class Workflows(Producer):
    """The App's workflow methods (``App`` inherits them)."""

    def _plan(self, workflow: Node | list[dict[str, Any]], name: str | None) -> Op[WorkflowRead]:
        """Plan and check every step before anything is written."""
        planned = plan_description(workflow) if isinstance(workflow, list) else plan(workflow)
        steps = [GraphStep(self._validate(p.spec), p.name, p.parents) for p in planned]
        return workflows.enqueue_and_read(steps, _name(name, steps))

    async def enqueue_workflow(
        self,
        workflow: Node | list[dict[str, Any]],
        *,
        name: str | None = None,
        conn: psycopg.AsyncConnection[Any] | None = None,
    ) -> Workflow:
        """Write every step and edge of ``workflow`` in one transaction (one call to the
        database); steps without parents are ready at once. ``workflow`` is a chain, a
        group or a step (``pgq.canvas``), or the JSON description ``POST /workflows``
        takes. ``name`` defaults to the first step's task."""
        return Workflow.of(await self.run(self._plan(workflow, name), conn), self)

    def enqueue_workflow_sync(
        self,
        workflow: Node | list[dict[str, Any]],
        *,
        name: str | None = None,
        conn: psycopg.Connection[Any] | None = None,
    ) -> Workflow:
        return Workflow.of(self.run_sync(self._plan(workflow, name), conn), self)

    async def get_workflow(self, workflow_id: int) -> Workflow:
        """The workflow, its counts and its steps; WorkflowNotFoundError if there is none."""
        return Workflow.of(await self.run(workflows.get(workflow_id)), self)

    def get_workflow_sync(self, workflow_id: int) -> Workflow:
        return Workflow.of(self.run_sync(workflows.get(workflow_id)), self)

    async def list_workflows(self, *, limit: int = 50, before_id: int | None = None) -> list[WorkflowStatus]:
        """Newest first, with their counts (no steps); ``before_id`` for the next page."""
        return await self.run(workflows.list_workflows(limit, before_id))

    def list_workflows_sync(self, *, limit: int = 50, before_id: int | None = None) -> list[WorkflowStatus]:
        return self.run_sync(workflows.list_workflows(limit, before_id))

    async def cancel_workflow(self, workflow_id: int) -> Workflow:
        """Cancel the steps that have not started and ask the running ones to stop."""
        await self.run(workflows.cancel(workflow_id))
        return await self.get_workflow(workflow_id)

    def cancel_workflow_sync(self, workflow_id: int) -> Workflow:
        self.run_sync(workflows.cancel(workflow_id))
        return self.get_workflow_sync(workflow_id)

    async def retry_workflow(self, workflow_id: int) -> Workflow:
        """Run the failed and cancelled steps again; the steps after them wait for them."""
        await self.run(workflows.retry(workflow_id))
        return await self.get_workflow(workflow_id)

    def retry_workflow_sync(self, workflow_id: int) -> Workflow:
        self.run_sync(workflows.retry(workflow_id))
        return self.get_workflow_sync(workflow_id)

    async def wait_workflow(self, workflow_id: int, *, timeout: float | None = None) -> Workflow:  # noqa: ASYNC109
        """The workflow once every step is final, woken by LISTEN like ``wait``:
        it waits for one unfinished step at a time, the last first."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            _, pending = await self.run(workflows.pending_step(workflow_id))
            if pending is None:
                return await self.get_workflow(workflow_id)
            try:
                await waiting.wait(self, pending, _left(deadline))
            except WaitTimeoutError:
                raise WorkflowWaitTimeoutError(workflow_id, timeout or 0.0) from None

    def wait_workflow_sync(self, workflow_id: int, *, timeout: float | None = None) -> Workflow:
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            _, pending = self.run_sync(workflows.pending_step(workflow_id))
            if pending is None:
                return self.get_workflow_sync(workflow_id)
            try:
                waiting.wait_sync(self, pending, _left(deadline))
            except WaitTimeoutError:
                raise WorkflowWaitTimeoutError(workflow_id, timeout or 0.0) from None


def _left(deadline: float | None) -> float | None:
    return None if deadline is None else max(0.0, deadline - time.monotonic())


def _name(name: str | None, steps: list[GraphStep]) -> str:
    chosen = name if name is not None else steps[0].new.task
    if not is_name(chosen):
        raise ValueError(f"a workflow name is a string of 1-200 characters without NUL, got {chosen!r}")
    return chosen


__all__ = ["WORKFLOW_STATES", "Workflow", "WorkflowStatus", "WorkflowWaitTimeoutError", "Workflows"]
