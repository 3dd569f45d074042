"""Request and response shapes of the workflow endpoints (POST /workflows and the reads).

A step is a job (the fields of POST /jobs but an idempotency key) with a name and
``after``: the names of the steps it waits for. The response models are generated
from ``pgq.db.workflows.WorkflowStatus`` and the job model, like JobOut.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, create_model

from pgq.api.schemas import NO_NUL, DependsOn, JobFields, JobOut, ParentFailure, model_of
from pgq.db.workflows import WorkflowStatus

MAX_STEPS = 10_000
"""Steps one POST /workflows may write (the library takes more; the body limit applies too)."""
MAX_AFTER = 1_000

StepName = Annotated[str, Field(min_length=1, max_length=200, pattern=NO_NUL)]
WorkflowState = Literal["running", "succeeded", "failed", "cancelled"]


class WorkflowStepRequest(JobFields):
    """One step of POST /workflows: a job with a name unique in its workflow."""

    name: StepName = Field(description="The step's name: unique in the workflow; later steps name it in after.")
    after: list[StepName] = Field(
        default_factory=list,
        max_length=MAX_AFTER,
        description="Names of the steps this one waits for; it runs once they have succeeded (see "
        "on_parent_failure). Unknown names and cycles are refused (422).",
    )
    depends_on: DependsOn = Field(default_factory=list)
    on_parent_failure: ParentFailure = None


class WorkflowRequest(BaseModel):
    """POST /workflows: the steps and the edges between them, written in one transaction."""

    model_config = ConfigDict(extra="forbid", strict=True)

    name: StepName | None = Field(default=None, description="Default: the first step's task.")
    steps: list[WorkflowStepRequest] = Field(min_length=1, max_length=MAX_STEPS)


class WorkflowsQuery(BaseModel):
    """GET /workflows query parameters."""

    model_config = ConfigDict(extra="forbid")

    limit: Annotated[int, Field(ge=1, le=1000)] = 50
    cursor: (
        Annotated[str, Field(pattern=r"^[0-9]{1,19}$", description="The next_cursor of the previous page.")] | None
    ) = None


WorkflowStatusOut = model_of(
    WorkflowStatus,
    "WorkflowStatusOut",
    "A workflow and its steps counted by state: a row of pgq.workflow_status.",
    state=WorkflowState,
)
WorkflowStepOut: type[BaseModel] = create_model(
    "WorkflowStepOut",
    __base__=JobOut,
    __doc__="A step: its job, and how many of its parents are not final yet.",
    __module__=__name__,
    parents_left=(int | None, Field(description="Parents not final yet (pgq.job_waits); null: it has none.")),
)
WorkflowOut: type[BaseModel] = create_model(
    "WorkflowOut",
    __base__=WorkflowStatusOut,
    __doc__="A workflow, its counts and its steps (jobs, in step order).",
    __module__=__name__,
    steps=(list[WorkflowStepOut], ...),  # type: ignore[valid-type]
)
WorkflowPage: type[BaseModel] = create_model(
    "WorkflowPage",
    __doc__="One page of workflows, newest first (without their steps).",
    __module__=__name__,
    workflows=(list[WorkflowStatusOut], ...),  # type: ignore[valid-type]
    next_cursor=(str | None, Field(description="Pass as cursor= for the next page; null on the last page.")),
)
