"""Reading and steering one job, or a page of them: get, cancel, retry, list.

Sans-IO operations (``pgq.db.driver``) shared by the App (sync and async), the CLI and
the HTTP API; each raises the typed error that explains a refusal (why a cancel or a
retry could not happen) rather than returning nothing.
"""

from __future__ import annotations

from pgq._queries import QUERIES
from pgq.db.driver import Op
from pgq.errors import JobNotFoundError, JobStateError
from pgq.job import Job, JobState, from_row
from pgq.spec import JobFilter, check_job_id


def get(job_id: int) -> Op[Job]:
    """``job_get``; JobNotFoundError when no job has this id."""
    check_job_id(job_id)
    rows = yield QUERIES["job_get"], {"id": job_id}
    if not rows:
        raise JobNotFoundError(f"no job with id {job_id}")
    return from_row(rows[0])


def cancel(job_id: int) -> Op[Job]:
    """``job_cancel`` a job that has not started, else ``job_request_cancel`` a running one."""
    check_job_id(job_id)
    rows = yield QUERIES["job_cancel"], {"id": job_id}
    if rows:
        return from_row(rows[0])
    rows = yield QUERIES["job_request_cancel"], {"id": job_id}
    if rows:
        return from_row(rows[0])
    job = yield from get(job_id)
    raise JobStateError(f"job {job_id} is {job.state.value} and cannot be cancelled", state=job.state.value)


def retry(job_id: int) -> Op[Job]:
    """``job_retry`` a failed or cancelled job, then wake its queue's workers."""
    check_job_id(job_id)
    rows = yield QUERIES["job_retry"], {"id": job_id}
    if rows:
        job = from_row(rows[0])
        yield QUERIES["job_notify_queue"], {"queue": job.queue}
        return job
    job = yield from get(job_id)
    blocking = (yield QUERIES["job_blocking_parent"], {"id": job_id}) if job.has_parents else []
    if blocking and job.state in (JobState.FAILED, JobState.CANCELLED):
        parent = blocking[0]["id"]
        raise JobStateError(
            f"job {job_id} cannot run while its parent job {parent} is failed or cancelled: "
            f"retry job {parent}, and this one waits for it again",
            state=job.state.value,
        )
    raise JobStateError(
        f"job {job_id} is {job.state.value}; only failed or cancelled jobs can be retried", state=job.state.value
    )


def list_jobs(where: JobFilter) -> Op[list[Job]]:
    """``job_list``: newest first, filtered, one page."""
    rows = yield (
        QUERIES["job_list"],
        {
            "queue": where.queue,
            "state": where.state,
            "task": where.task,
            "before_id": where.before_id,
            "limit": where.limit,
        },
    )
    return [from_row(r) for r in rows]
