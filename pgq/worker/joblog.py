"""The worker's log lines about one job: each names the job, in text and (for JSON logs) as fields."""

from __future__ import annotations

import logging

from pgq.job import Job
from pgq.logs import job_fields

log = logging.getLogger("pgq.worker")


def started(job: Job) -> None:
    log.info(
        "job %d %s started (attempt %d/%d)", job.id, job.task, job.attempt, job.max_attempts, extra=job_fields(job)
    )


def rejected(job: Job) -> None:
    log.warning(
        "job %d attempt %d: late outcome rejected, the job is no longer running on this worker "
        "(rescued, cancelled or handed back meanwhile)",
        job.id,
        job.attempt,
        extra=job_fields(job),
    )


def lost(job: Job, exc: BaseException) -> None:
    log.error(
        "job %d %s: could not record its outcome (%s); it will be rescued", job.id, job.task, exc, extra=job_fields(job)
    )
