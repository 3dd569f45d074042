"""pgq.App: the task registry and schedules; the producer, workflow and admin methods
come from ``Producer`` (pgq/producer.py), ``Workflows`` (pgq/workflow.py) and ``Admin``
(pgq/admin.py), the pools from
``Connections`` (pgq/connections.py)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypedDict, TypeVar, Unpack, overload

from pgq._json import JsonDefault
from pgq.admin import Admin
from pgq.errors import ConfigError
from pgq.retry import Backoff, as_wait
from pgq.schedule import Schedule, ScheduleOptions
from pgq.settings import Settings
from pgq.spec import reject_unknown
from pgq.task import Task, TaskOptions
from pgq.workflow import Workflows

F = TypeVar("F", bound=Callable[..., Any])


class TaskKeywords(TypedDict, total=False):
    """The keyword arguments of ``@app.task(...)``, written once for both of its forms."""

    name: str | None
    queue: str
    priority: int
    max_attempts: int
    timeout: float | None
    retry: Backoff | None


class App(Workflows, Admin):
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
        super().__init__(dsn, settings=settings, pool_max_size=pool_max_size)
        self.json_default = json_default
        self.tasks: dict[str, Task] = {}
        self.schedules: dict[str, Schedule] = {}

    @overload
    def task(self, fn: F, /) -> Task: ...

    @overload
    def task(self, fn: None = None, /, **options: Unpack[TaskKeywords]) -> Callable[[F], Task]: ...

    def task(self, fn: F | None = None, /, **options: Unpack[TaskKeywords]) -> Task | Callable[[F], Task]:
        """Register an async or plain function as a task (usable bare or with options).

        ``name`` (default: the function's), ``queue`` ("default"), ``priority`` (0),
        ``max_attempts`` (5), ``timeout`` (seconds, None: none), ``retry``: a tenacity
        wait strategy (or fixed seconds) for the delay between attempts; the default is
        exponential backoff with jitter.
        """
        reject_unknown(options, TaskKeywords, "task options")
        name = options.pop("name", None)
        defaults = TaskOptions(
            queue=options.get("queue", "default"),
            priority=options.get("priority", 0),
            max_attempts=options.get("max_attempts", 5),
            timeout=options.get("timeout"),
            retry=as_wait(options.get("retry")),
        )

        def register(func: F) -> Task:
            task_name = name or func.__name__
            if task_name in self.tasks:
                raise ValueError(f"a task named {task_name!r} is already registered")
            task = Task(self, func, task_name, defaults)
            self.tasks[task_name] = task
            return task

        return register(fn) if fn is not None else register

    def periodic(self, **options: Unpack[ScheduleOptions]) -> Callable[[Task], Task]:
        """Enqueue a task on a schedule; goes above ``@app.task``.

        ``cron`` (5 fields, evaluated in ``timezone``) or ``every`` (seconds or a
        timedelta), not both. ``missed`` says what happens to ticks missed while no
        worker ran: ``"run_once"`` (default) enqueues one catch-up run for the latest
        of them, ``"skip"`` drops them. ``name`` defaults to the task's name.
        """
        reject_unknown(options, ScheduleOptions, "schedule options")  # now, not when the decorator is applied

        def register(task: Task) -> Task:
            if not isinstance(task, Task):
                raise ConfigError(
                    f"@app.periodic(...) schedules a registered task: put it above @app.task, "
                    f"got {type(task).__name__} {getattr(task, '__name__', task)!r}"
                )
            if task.app is not self:
                raise ConfigError(f"task {task.name!r} belongs to another pgq.App")
            self.schedule(task.name, **options)
            return task

        return register

    def schedule(self, task: str, **options: Unpack[ScheduleOptions]) -> Schedule:
        """Enqueue the task named ``task`` on a schedule (the configuration form of
        ``@app.periodic``, for tasks registered elsewhere). Validated now; written to
        ``pgq.schedules`` when a worker of this app starts."""
        schedule = Schedule.define(task, json_default=self.json_default, **options)
        if schedule.name in self.schedules:
            raise ConfigError(f"a schedule named {schedule.name!r} already exists: give this one another name=")
        self.schedules[schedule.name] = schedule
        return schedule

    def task_queues(self) -> tuple[str, ...]:
        """The queues this app's tasks use: what a worker serves by default."""
        return tuple(sorted({t.options.queue for t in self.tasks.values()} or {"default"}))
