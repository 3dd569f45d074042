"""The Job row as Python sees it, and the job states."""

from __future__ import annotations

import dataclasses
import datetime as dt
from enum import StrEnum
from typing import Any


class JobState(StrEnum):
    """The values of ``pgq.jobs.state``; stable, because users write SQL against them."""

    SCHEDULED = "scheduled"
    QUEUED = "queued"
    RUNNING = "running"
    RETRYING = "retrying"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def is_final(self) -> bool:
        return self in FINAL_STATES


FINAL_STATES = frozenset({JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED})


@dataclasses.dataclass(frozen=True, slots=True, weakref_slot=True)  # weakref: job.wait() finds its App
class Job:
    """One row of ``pgq.jobs``; field names are the column names."""

    id: int
    queue: str
    task: str
    args: dict[str, Any]
    state: JobState
    priority: int
    run_at: dt.datetime
    attempt: int
    max_attempts: int
    result: Any
    errors: list[dict[str, Any]]
    idempotency_key: str | None
    created_at: dt.datetime
    started_at: dt.datetime | None
    finished_at: dt.datetime | None
    heartbeat_at: dt.datetime | None
    worker_id: str | None
    cancel_requested_at: dt.datetime | None
    progress: dict[str, Any] | None

    def __post_init__(self) -> None:
        # Rows arrive with state as plain text; keep the enum so comparisons read well.
        if type(self.state) is not JobState:
            object.__setattr__(self, "state", JobState(self.state))

    @property
    def is_final(self) -> bool:
        return self.state.is_final

    async def wait(self, timeout: float | None = None) -> Job:  # noqa: ASYNC109 (mirrors wait_sync)
        """This job once it is final (see ``App.wait``); only on a Job an App returned."""
        from pgq import waiting

        return await waiting.wait(waiting.owner(self), self.id, timeout)

    def wait_sync(self, timeout: float | None = None) -> Job:
        from pgq import waiting

        return waiting.wait_sync(waiting.owner(self), self.id, timeout)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (timestamps as ISO 8601), for the CLI and the HTTP API."""
        out: dict[str, Any] = {}
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if isinstance(value, dt.datetime):
                value = value.isoformat()
            elif isinstance(value, JobState):
                value = value.value
            out[field.name] = value
        return out
