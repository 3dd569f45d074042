"""pgq: a job queue for Python that needs nothing but PostgreSQL."""

from pgq.app import App
from pgq.canvas import Step, chain, group
from pgq.context import JobContext, current_job
from pgq.errors import (
    ConfigError,
    DatabaseUnavailableError,
    JobCancelledError,
    JobNotFoundError,
    JobStateError,
    JobTimeoutError,
    PermanentError,
    PgqError,
    Retry,
    ScheduleNotFoundError,
    SchemaNotMigratedError,
    UnknownParentError,
    UnknownTaskError,
    WaitTimeoutError,
    WorkflowNotFoundError,
)
from pgq.job import FINAL_STATES, Job, JobState
from pgq.queues import QueueLimits, QueuePause
from pgq.settings import Settings
from pgq.spec import JobSpec
from pgq.task import Task
from pgq.workflow import Workflow, WorkflowWaitTimeoutError

__all__ = [
    "FINAL_STATES",
    "App",
    "ConfigError",
    "DatabaseUnavailableError",
    "Job",
    "JobCancelledError",
    "JobContext",
    "JobNotFoundError",
    "JobSpec",
    "JobState",
    "JobStateError",
    "JobTimeoutError",
    "PermanentError",
    "PgqError",
    "QueueLimits",
    "QueuePause",
    "Retry",
    "ScheduleNotFoundError",
    "SchemaNotMigratedError",
    "Settings",
    "Step",
    "Task",
    "UnknownParentError",
    "UnknownTaskError",
    "WaitTimeoutError",
    "Workflow",
    "WorkflowNotFoundError",
    "WorkflowWaitTimeoutError",
    "chain",
    "current_job",
    "group",
]
