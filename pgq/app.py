"""pgq.App: the task registry and the producer-side API (enqueue, inspect, cancel, retry)."""

from __future__ import annotations

import asyncio
import datetime as dt
import threading
from collections.abc import Callable, Iterable, Mapping
from types import TracebackType
from typing import Any, Self, TypeVar, overload

import psycopg
from psycopg_pool import AsyncConnectionPool, ConnectionPool

from pgq import _db, _ops, _times, pausing, waiting
from pgq._json import JsonDefault
from pgq._ops import JobSpec, QueueLimits
from pgq.db import driver
from pgq.embedded import embedded_dsn
from pgq.errors import ConfigError, UnknownTaskError
from pgq.job import Job
from pgq.monitoring import QueueStats, WorkerInfo
from pgq.pausing import QueuePause
from pgq.retry import Backoff, as_wait
from pgq.schedule import Schedule, ScheduleState
from pgq.settings import Settings
from pgq.task import Task, TaskOptions

F = TypeVar("F", bound=Callable[..., Any])
T = TypeVar("T")


async def _configure_async(conn: psycopg.AsyncConnection[Any]) -> None:
    _times.make_total(conn)  # every reader reads every row (see pgq/_times.py)


def _configure(conn: psycopg.Connection[Any]) -> None:
    _times.make_total(conn)


class App:
    """A pgq application: the tasks it knows and the database it talks to.

    The DSN comes from ``dsn=``, else ``DATABASE_URL``, else the embedded PostgreSQL.
    Connections are opened on first use (or by ``async with app``/``with app``).
    """

    def __init__(
        self,
        dsn: str | None = None,
        *,
        settings: Settings | None = None,
        json_default: JsonDefault | None = None,
        pool_max_size: int = 10,
    ) -> None:
        self.settings = settings or Settings.from_env()
        self._dsn = dsn or self.settings.database_url
        if self._dsn is not None:
            _db.validate_dsn(self._dsn)
        if self.settings.listen_url is not None:
            _db.validate_dsn(self.settings.listen_url, "PGQ_LISTEN_URL")
        self.json_default = json_default
        self.tasks: dict[str, Task] = {}
        self.schedules: dict[str, Schedule] = {}
        self._pool_max_size = pool_max_size
        self._pool: AsyncConnectionPool[psycopg.AsyncConnection[Any]] | None = None
        self._pool_lock: asyncio.Lock | None = None
        self._pool_loop: asyncio.AbstractEventLoop | None = None
        self._sync_pool: ConnectionPool[psycopg.Connection[Any]] | None = None
        self._sync_lock = threading.Lock()

    # -- configuration ------------------------------------------------------------

    @property
    def dsn(self) -> str:
        """The database this app uses; starts the embedded server if none was given."""
        if self._dsn is None:
            self._dsn = embedded_dsn(self.settings.data_dir)
        return self._dsn

    @property
    def listen_dsn(self) -> str:
        """Where LISTEN connects: PGQ_LISTEN_URL (a direct route past PgBouncer), else the DSN."""
        return self.settings.listen_url or self.dsn

    @property
    def _caller_prepare(self) -> bool | None:
        """On a caller's ``conn=``: PGQ_PREPARED_STATEMENTS=off keeps pgq's statements
        unprepared; otherwise the connection's own prepare_threshold decides."""
        return False if self.settings.prepared_statements == "off" else None

    @overload
    def task(self, fn: F, /) -> Task: ...

    @overload
    def task(
        self,
        fn: None = None,
        /,
        *,
        name: str | None = None,
        queue: str = "default",
        priority: int = 0,
        max_attempts: int = 5,
        timeout: float | None = None,
        retry: Backoff | None = None,
    ) -> Callable[[F], Task]: ...

    def task(
        self,
        fn: F | None = None,
        /,
        *,
        name: str | None = None,
        queue: str = "default",
        priority: int = 0,
        max_attempts: int = 5,
        timeout: float | None = None,
        retry: Backoff | None = None,
    ) -> Task | Callable[[F], Task]:
        """Register an async or plain function as a task (usable bare or with options).

        ``retry`` is a tenacity wait strategy (or fixed seconds) for the delay between
        attempts; the default is exponential backoff with jitter.
        """
        options = TaskOptions(
            queue=queue, priority=priority, max_attempts=max_attempts, timeout=timeout, retry=as_wait(retry)
        )

        def register(func: F) -> Task:
            task_name = name or func.__name__
            if task_name in self.tasks:
                raise ValueError(f"a task named {task_name!r} is already registered")
            task = Task(self, func, task_name, options)
            self.tasks[task_name] = task
            return task

        return register(fn) if fn is not None else register

    def periodic(
        self,
        *,
        cron: str | None = None,
        every: float | dt.timedelta | None = None,
        timezone: str = "UTC",
        args: Mapping[str, Any] | None = None,
        name: str | None = None,
        missed: str = "run_once",
        queue: str | None = None,
        priority: int | None = None,
    ) -> Callable[[Task], Task]:
        """Enqueue a task on a schedule; goes above ``@app.task``.

        ``cron`` (5 fields, evaluated in ``timezone``) or ``every`` (seconds or a
        timedelta), not both. ``missed`` says what happens to ticks missed while no
        worker ran: ``"run_once"`` (default) enqueues one catch-up run for the latest
        of them, ``"skip"`` drops them. ``name`` defaults to the task's name.
        """

        def register(task: Task) -> Task:
            if not isinstance(task, Task):
                raise ConfigError(
                    f"@app.periodic(...) schedules a registered task: put it above @app.task, "
                    f"got {type(task).__name__} {getattr(task, '__name__', task)!r}"
                )
            if task.app is not self:
                raise ConfigError(f"task {task.name!r} belongs to another pgq.App")
            self.schedule(
                task.name,
                cron=cron,
                every=every,
                timezone=timezone,
                args=args,
                name=name,
                missed=missed,
                queue=queue,
                priority=priority,
            )
            return task

        return register

    def schedule(
        self,
        task: str,
        *,
        cron: str | None = None,
        every: float | dt.timedelta | None = None,
        timezone: str = "UTC",
        args: Mapping[str, Any] | None = None,
        name: str | None = None,
        missed: str = "run_once",
        queue: str | None = None,
        priority: int | None = None,
        max_attempts: int | None = None,
    ) -> Schedule:
        """Enqueue the task named ``task`` on a schedule (the configuration form of
        ``@app.periodic``, for tasks registered elsewhere). Validated now; written to
        ``pgq.schedules`` when a worker of this app starts."""
        schedule = Schedule.define(
            task,
            cron=cron,
            every=every,
            timezone=timezone,
            args=args,
            name=name,
            missed=missed,
            queue=queue,
            priority=priority,
            max_attempts=max_attempts,
            json_default=self.json_default,
        )
        if schedule.name in self.schedules:
            raise ConfigError(f"a schedule named {schedule.name!r} already exists: give this one another name=")
        self.schedules[schedule.name] = schedule
        return schedule

    def get_task(self, name: str) -> Task:
        try:
            return self.tasks[name]
        except KeyError:
            known = ", ".join(sorted(self.tasks)) or "none"
            raise UnknownTaskError(f"unknown task {name!r} (registered: {known})") from None

    def task_queues(self) -> tuple[str, ...]:
        """The queues this app's tasks use: what a worker serves by default."""
        return tuple(sorted({t.options.queue for t in self.tasks.values()} or {"default"}))

    # -- connection pools -----------------------------------------------------------

    async def open(self) -> None:
        """Connect, check the schema is migrated, and open the async pool."""
        loop = asyncio.get_running_loop()
        if self._pool_loop is not loop:
            # A pool belongs to the event loop that opened it; a script that calls
            # asyncio.run() twice gets a fresh one (the old loop and its sockets are gone).
            self._pool, self._pool_loop, self._pool_lock = None, loop, asyncio.Lock()
        assert self._pool_lock is not None
        async with self._pool_lock:
            if self._pool is not None:
                return
            dsn = self.dsn
            prepare = await _db.open_checked_async(dsn, self.settings.prepared_statements)
            pool: AsyncConnectionPool[psycopg.AsyncConnection[Any]] = AsyncConnectionPool(
                dsn,
                min_size=1,
                max_size=self._pool_max_size,
                open=False,
                kwargs=_db.pool_kwargs(prepare),
                name="pgq-app",
                configure=_configure_async,
            )
            await pool.open(wait=True, timeout=30)
            self._pool = pool

    async def close(self) -> None:
        if self._pool is not None:
            pool, self._pool = self._pool, None
            await pool.close()
        self.close_sync()

    async def __aenter__(self) -> Self:
        await self.open()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    def open_sync(self) -> None:
        with self._sync_lock:
            if self._sync_pool is not None:
                return
            dsn = self.dsn
            prepare = _db.open_checked(dsn, self.settings.prepared_statements)
            pool: ConnectionPool[psycopg.Connection[Any]] = ConnectionPool(
                dsn,
                min_size=1,
                max_size=self._pool_max_size,
                open=False,
                kwargs=_db.pool_kwargs(prepare),
                name="pgq-app-sync",
                configure=_configure,
            )
            pool.open(wait=True, timeout=30)
            self._sync_pool = pool

    def close_sync(self) -> None:
        waiting.forget(self)  # the LISTEN connection of app.wait()
        with self._sync_lock:
            if self._sync_pool is not None:
                pool, self._sync_pool = self._sync_pool, None
                pool.close()

    def __enter__(self) -> Self:
        self.open_sync()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close_sync()

    async def run(self, op: driver.Op[T], conn: psycopg.AsyncConnection[Any] | None = None) -> T:
        """Run one query-layer operation (``pgq.db``) on the pool, or on the caller's ``conn``.

        Public so that the HTTP API and the dashboard read through the same layer as the
        App's own methods instead of reaching into private modules.
        """
        if conn is not None:
            if not isinstance(conn, psycopg.AsyncConnection):
                raise TypeError("conn= of an async method must be a psycopg.AsyncConnection; use the _sync method")
            return await driver.run_async(conn, op, prepare=self._caller_prepare)
        if self._pool is None or self._pool_loop is not asyncio.get_running_loop():
            await self.open()
        assert self._pool is not None
        async with self._pool.connection() as pooled:
            return await driver.run_async(pooled, op)

    def run_sync(self, op: driver.Op[T], conn: psycopg.Connection[Any] | None = None) -> T:
        """``run`` for sync code, on the sync pool or the caller's ``conn``."""
        if conn is not None:
            if not isinstance(conn, psycopg.Connection):
                raise TypeError("conn= of a _sync method must be a psycopg.Connection; use the async method")
            return driver.run_sync(conn, op, prepare=self._caller_prepare)
        if self._sync_pool is None:
            self.open_sync()
        assert self._sync_pool is not None
        with self._sync_pool.connection() as pooled:
            return driver.run_sync(pooled, op)

    # -- producing and inspecting jobs ----------------------------------------------------

    def _insert_params(self, spec: JobSpec) -> dict[str, Any]:
        task = self.tasks.get(spec.task)
        if task is None and self.tasks:
            # An app that registers tasks is a worker's app: a name it does not know is a typo.
            self.get_task(spec.task)
        params = _ops.insert_params(spec, task.options if task else None, self.json_default)  # JSON checks first
        if task is not None:
            task.check_args(spec.args)
        return params

    async def enqueue(
        self,
        task: str,
        args: Mapping[str, Any] | None = None,
        *,
        queue: str | None = None,
        priority: int | None = None,
        delay: float | dt.timedelta | None = None,
        run_at: dt.datetime | None = None,
        max_attempts: int | None = None,
        idempotency_key: str | None = None,
        conn: psycopg.AsyncConnection[Any] | None = None,
    ) -> Job:
        """Enqueue one job by task name. With ``conn=``, inside the caller's transaction."""
        spec = JobSpec(task, args or {}, queue, priority, delay, run_at, max_attempts, idempotency_key)
        return waiting.bind(self, await self.run(_ops.enqueue(self._insert_params(spec)), conn))

    def enqueue_sync(
        self,
        task: str,
        args: Mapping[str, Any] | None = None,
        *,
        queue: str | None = None,
        priority: int | None = None,
        delay: float | dt.timedelta | None = None,
        run_at: dt.datetime | None = None,
        max_attempts: int | None = None,
        idempotency_key: str | None = None,
        conn: psycopg.Connection[Any] | None = None,
    ) -> Job:
        spec = JobSpec(task, args or {}, queue, priority, delay, run_at, max_attempts, idempotency_key)
        return waiting.bind(self, self.run_sync(_ops.enqueue(self._insert_params(spec)), conn))

    async def enqueue_spec(self, spec: JobSpec) -> tuple[Job, bool]:
        """Enqueue one JobSpec and say whether it is new (False: an idempotent repeat).

        For callers that must tell the two apart, like the HTTP API (201 or 200).
        """
        return await self.run(_ops.enqueue_reporting_new(self._insert_params(spec)))

    def enqueue_spec_sync(self, spec: JobSpec) -> tuple[Job, bool]:
        return self.run_sync(_ops.enqueue_reporting_new(self._insert_params(spec)))

    async def enqueue_many(
        self, jobs: Iterable[JobSpec | Mapping[str, Any]], *, conn: psycopg.AsyncConnection[Any] | None = None
    ) -> list[Job]:
        """Enqueue many jobs in one statement; returns them in input order."""
        params = [self._insert_params(_ops.as_spec(j)) for j in jobs]
        return await self.run(_ops.enqueue_many(params), conn)

    def enqueue_many_sync(
        self, jobs: Iterable[JobSpec | Mapping[str, Any]], *, conn: psycopg.Connection[Any] | None = None
    ) -> list[Job]:
        params = [self._insert_params(_ops.as_spec(j)) for j in jobs]
        return self.run_sync(_ops.enqueue_many(params), conn)

    async def get_job(self, job_id: int) -> Job:
        return await self.run(_ops.get_job(job_id))

    def get_job_sync(self, job_id: int) -> Job:
        return self.run_sync(_ops.get_job(job_id))

    async def wait(self, job_id: int, *, timeout: float | None = None) -> Job:  # noqa: ASYNC109 (a typed error, like wait_sync)
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
        return await self.run(_ops.cancel(job_id))

    def cancel_sync(self, job_id: int) -> Job:
        return self.run_sync(_ops.cancel(job_id))

    async def retry(self, job_id: int) -> Job:
        """Put a failed or cancelled job back in its queue, with one more attempt if needed."""
        return await self.run(_ops.retry(job_id))

    def retry_sync(self, job_id: int) -> Job:
        return self.run_sync(_ops.retry(job_id))

    async def set_queue_limits(
        self,
        queue: str,
        *,
        max_running: int | None = None,
        rate_limit: int | None = None,
        rate_period: float | dt.timedelta | None = None,
    ) -> QueueLimits:
        """Limit a queue across all workers, from the next claim on; None removes a limit.

        ``max_running``: jobs running at once. ``rate_limit`` per ``rate_period`` (seconds
        or timedelta): job starts in any window of that length.
        """
        period = None if rate_period is None else _ops.seconds(rate_period)
        return await self.run(_ops.set_queue_limits(QueueLimits(queue, max_running, rate_limit, period)))

    def set_queue_limits_sync(
        self,
        queue: str,
        *,
        max_running: int | None = None,
        rate_limit: int | None = None,
        rate_period: float | dt.timedelta | None = None,
    ) -> QueueLimits:
        period = None if rate_period is None else _ops.seconds(rate_period)
        return self.run_sync(_ops.set_queue_limits(QueueLimits(queue, max_running, rate_limit, period)))

    async def pause_queue(self, queue: str) -> QueuePause:
        """Stop every worker from claiming jobs of ``queue`` until it is resumed.

        Jobs already running finish. Takes effect for every claim that starts after this
        returns; pausing a paused queue keeps its first ``paused_at``.
        """
        return await self.run(pausing.pause_queue(queue))

    def pause_queue_sync(self, queue: str) -> QueuePause:
        return self.run_sync(pausing.pause_queue(queue))

    async def resume_queue(self, queue: str) -> QueuePause:
        """Let workers claim from ``queue`` again, and wake them at once (NOTIFY)."""
        return await self.run(pausing.resume_queue(queue))

    def resume_queue_sync(self, queue: str) -> QueuePause:
        return self.run_sync(pausing.resume_queue(queue))

    async def paused_queues(self) -> list[QueuePause]:
        """The paused queues, by name."""
        return await self.run(pausing.list_paused_queues())

    def paused_queues_sync(self) -> list[QueuePause]:
        return self.run_sync(pausing.list_paused_queues())

    async def queue_limits(self) -> list[QueueLimits]:
        """Every queue with limits (the rows of pgq.queues)."""
        return await self.run(_ops.list_queue_limits())

    def queue_limits_sync(self) -> list[QueueLimits]:
        return self.run_sync(_ops.list_queue_limits())

    async def list_jobs(
        self,
        *,
        queue: str | None = None,
        state: str | None = None,
        task: str | None = None,
        before_id: int | None = None,
        limit: int = 50,
    ) -> list[Job]:
        """Newest first, optionally filtered; pass the last id seen as ``before_id`` for the next page."""
        return await self.run(_ops.list_jobs(queue=queue, state=state, task=task, before_id=before_id, limit=limit))

    async def list_schedules(self) -> list[ScheduleState]:
        """Every schedule in ``pgq.schedules`` (from any app), soonest next run first."""
        return await self.run(_ops.list_schedules())

    def list_schedules_sync(self) -> list[ScheduleState]:
        return self.run_sync(_ops.list_schedules())

    async def delete_schedule(self, name: str) -> None:
        """Remove a schedule from ``pgq.schedules`` (a worker that still declares it writes it again)."""
        await self.run(_ops.delete_schedule(name))

    def delete_schedule_sync(self, name: str) -> None:
        self.run_sync(_ops.delete_schedule(name))

    def list_jobs_sync(
        self,
        *,
        queue: str | None = None,
        state: str | None = None,
        task: str | None = None,
        before_id: int | None = None,
        limit: int = 50,
    ) -> list[Job]:
        return self.run_sync(_ops.list_jobs(queue=queue, state=state, task=task, before_id=before_id, limit=limit))

    async def queue_stats(self) -> list[QueueStats]:
        """Per queue: jobs by state, the oldest ready job's wait, jobs finished in the last minute."""
        return await self.run(_ops.queue_stats())

    def queue_stats_sync(self) -> list[QueueStats]:
        return self.run_sync(_ops.queue_stats())

    async def check_database(self) -> None:
        """Raise unless the database answers, through the pool, at the schema revision
        this pgq needs (DatabaseUnavailableError, SchemaNotMigratedError). For health
        probes: it costs one query on a pooled connection, never a new connection."""
        if error := _db.version_error(await self.run(_ops.schema_revision())):
            raise error

    async def list_workers(self) -> list[WorkerInfo]:
        """The worker processes registered in pgq.workers, with their last heartbeat."""
        return await self.run(_ops.list_workers())

    def list_workers_sync(self) -> list[WorkerInfo]:
        return self.run_sync(_ops.list_workers())
