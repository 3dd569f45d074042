"""The jobs a worker holds: claimed (waiting in the claim-ahead buffer or executing)
until their outcome is written or they are handed back.

Its own module so that the services that read it (the heartbeat, cancel requests) and
the worker that fills it import it, not each other.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging

from pgq.context import JobContext
from pgq.job import Job
from pgq.logs import job_fields
from pgq.worker.progress import ProgressWriter

log = logging.getLogger("pgq.worker")


@dataclasses.dataclass(slots=True)
class Running:
    job: Job
    ctx: JobContext
    progress: ProgressWriter
    task: asyncio.Task[None] | None = None
    """None while the job waits in the claim-ahead buffer for a slot."""
    executed: bool = False
    """The task has returned; only the outcome write is left."""


class RunningJobs:
    """Job id -> Running, for every job this worker must heartbeat."""

    def __init__(self) -> None:
        self._jobs: dict[int, Running] = {}

    def __len__(self) -> int:
        return len(self._jobs)

    def __contains__(self, job_id: int) -> bool:
        return job_id in self._jobs

    def ids(self) -> list[int]:
        return list(self._jobs)

    def get(self, job_id: int) -> Running | None:
        return self._jobs.get(job_id)

    def values(self) -> list[Running]:
        return list(self._jobs.values())

    def add(self, running: Running) -> Running:
        self._jobs[running.job.id] = running
        return running

    def forget(self, job_id: int) -> None:
        """Nothing more to do here for this job: no more heartbeats for it."""
        self._jobs.pop(job_id, None)

    def forget_all(self, waiting: list[Running]) -> list[int]:
        """Drop claimed-ahead jobs that will not start here; return their ids to hand back."""
        for running in waiting:
            self._jobs.pop(running.job.id, None)
        return [running.job.id for running in waiting]

    def cancel(self, job_id: int) -> None:
        """A cancel request for ``job_id`` arrived; stop it if it runs here."""
        running = self._jobs.get(job_id)
        if running is not None and not running.ctx.cancel_requested:
            log.info(
                "job %d %s: cancel requested, stopping it", job_id, running.job.task, extra=job_fields(running.job)
            )
            running.ctx.request_cancel()

    def taken(self, job_id: int) -> None:
        """The database says this job is no longer ours (rescued): stop it, unless it
        already ran to the end (its outcome write will simply be rejected)."""
        running = self._jobs.get(job_id)
        if running and not running.executed and not running.ctx.cancel_requested:
            log.warning(
                "job %d attempt %d is no longer owned by this worker (rescued after missed heartbeats); "
                "stopping it, its outcome would be rejected",
                job_id,
                running.job.attempt,
                extra=job_fields(running.job),
            )
            running.ctx.request_cancel()
