"""The producer's half of the App: enqueue jobs, read them, cancel and retry them.

Each method validates in Python first (``pgq.spec``: nothing is written when a value is
wrong), then drives one operation of the query layer (``pgq.db.enqueue``,
``pgq.db.job_admin``) on the App's pool or on the caller's connection (``conn=``), so
a job can commit or roll back with the caller's own data.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Unpack

import psycopg

from pgq import waiting
from pgq._json import JsonDefault
from pgq.connections import Connections
from pgq.db import enqueue, job_admin
from pgq.errors import UnknownTaskError
from pgq.job import Job
from pgq.spec import NO_OPTIONS, EnqueueOptions, JobFilter, JobFilters, JobSpec, NewJob, as_spec, validate_parts
from pgq.task import Task


class Producer(Connections):
    tasks: dict[str, Task]
    """The registered tasks, by name (an empty registry: a producer-only app)."""
    json_default: JsonDefault | None

    def get_task(self, name: str) -> Task:
        try:
            return self.tasks[name]
        except KeyError:
            known = ", ".join(sorted(self.tasks)) or "none"
            raise UnknownTaskError(f"unknown task {name!r} (registered: {known})") from None

    def _validate(self, spec: JobSpec) -> NewJob:
        return self._validate_parts(spec.task, spec.args, spec)

    def _validate_call(self, task_name: str, args: Mapping[str, Any] | None, options: EnqueueOptions) -> NewJob:
        """What ``enqueue(task, args, **options)`` asks for; without options (the common
        call) no JobSpec is built."""
        if options:
            return self._validate(JobSpec(task_name, args or {}, **options))
        return self._validate_parts(task_name, args or {}, NO_OPTIONS)

    def _validate_parts(self, task_name: str, args: Mapping[str, Any], spec: JobSpec) -> NewJob:
        task = self.tasks.get(task_name)
        if task is None and self.tasks:
            # An app that registers tasks is a worker's app: a name it does not know is a typo.
            self.get_task(task_name)
        new = validate_parts(task_name, args, spec, task.options if task else None, self.json_default)  # JSON first
        if task is not None:
            task.check_args(args)
        return new

    async def enqueue(
        self,
        task: str,
        args: Mapping[str, Any] | None = None,
        *,
        conn: psycopg.AsyncConnection[Any] | None = None,
        **options: Unpack[EnqueueOptions],
    ) -> Job:
        """Enqueue one job by task name. With ``conn=``, inside the caller's transaction.

        ``options``: queue, priority, delay (seconds or timedelta) or run_at,
        max_attempts, idempotency_key; unset ones take the task's defaults.
        """
        job = await self.run(enqueue.insert_job(self._validate_call(task, args, options)), conn)
        return waiting.bind(self, job)  # job.wait() knows this App

    def enqueue_sync(
        self,
        task: str,
        args: Mapping[str, Any] | None = None,
        *,
        conn: psycopg.Connection[Any] | None = None,
        **options: Unpack[EnqueueOptions],
    ) -> Job:
        job = self.run_sync(enqueue.insert_job(self._validate_call(task, args, options)), conn)
        return waiting.bind(self, job)

    async def enqueue_spec(self, spec: JobSpec) -> tuple[Job, bool]:
        """Enqueue one JobSpec and say whether it is new (False: an idempotent repeat).

        For callers that must tell the two apart, like the HTTP API (201 or 200).
        """
        return await self.run(enqueue.insert(self._validate(spec)))

    def enqueue_spec_sync(self, spec: JobSpec) -> tuple[Job, bool]:
        return self.run_sync(enqueue.insert(self._validate(spec)))

    async def enqueue_many(
        self, jobs: Iterable[JobSpec | Mapping[str, Any]], *, conn: psycopg.AsyncConnection[Any] | None = None
    ) -> list[Job]:
        """Enqueue many jobs in one statement; returns them in input order."""
        new = [self._validate(as_spec(j)) for j in jobs]
        return await self.run(enqueue.insert_many(new), conn)

    def enqueue_many_sync(
        self, jobs: Iterable[JobSpec | Mapping[str, Any]], *, conn: psycopg.Connection[Any] | None = None
    ) -> list[Job]:
        new = [self._validate(as_spec(j)) for j in jobs]
        return self.run_sync(enqueue.insert_many(new), conn)

    async def get_job(self, job_id: int) -> Job:
        return await self.run(job_admin.get(job_id))

    def get_job_sync(self, job_id: int) -> Job:
        return self.run_sync(job_admin.get(job_id))

    async def wait(self, job_id: int, *, timeout: float | None = None) -> Job:  # noqa: ASYNC109 (a typed error)
        """The job once it is final (succeeded, failed or cancelled), woken by LISTEN.

        ``timeout`` in seconds (None: no limit); WaitTimeoutError when it passes first,
        JobNotFoundError for an unknown id. See pgq/waiting.py."""
        return await waiting.wait(self, job_id, timeout)

    def wait_sync(self, job_id: int, *, timeout: float | None = None) -> Job:
        return waiting.wait_sync(self, job_id, timeout)

    async def cancel(self, job_id: int) -> Job:
        """Cancel a job: at once if it has not started; if it is running, ask its worker
        to stop it (the returned job has ``cancel_requested_at`` set and ends
        ``cancelled``). JobStateError for a job that already finished otherwise."""
        return await self.run(job_admin.cancel(job_id))

    def cancel_sync(self, job_id: int) -> Job:
        return self.run_sync(job_admin.cancel(job_id))

    async def retry(self, job_id: int) -> Job:
        """Put a failed or cancelled job back in its queue, with one more attempt if needed."""
        return await self.run(job_admin.retry(job_id))

    def retry_sync(self, job_id: int) -> Job:
        return self.run_sync(job_admin.retry(job_id))

    async def list_jobs(self, **filters: Unpack[JobFilters]) -> list[Job]:
        """Newest first, filtered by queue, state, task; ``limit`` (default 50) per page;
        pass the last id seen as ``before_id`` for the next page."""
        return await self.run(job_admin.list_jobs(JobFilter(**filters)))

    def list_jobs_sync(self, **filters: Unpack[JobFilters]) -> list[Job]:
        return self.run_sync(job_admin.list_jobs(JobFilter(**filters)))
