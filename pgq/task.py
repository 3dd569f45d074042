"""A registered task: the function, its defaults, and enqueue shortcuts."""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Protocol

from tenacity.wait import wait_base

from pgq.job import Job
from pgq.names import QUEUE_NAME, TASK_NAME, check_queue_name, check_task_name
from pgq.retry import as_wait

if TYPE_CHECKING:
    from pgq.canvas import Step

__all__ = ["QUEUE_NAME", "TASK_NAME", "Task", "TaskOptions", "check_queue_name", "check_task_name"]


class Enqueuer(Protocol):
    """What a task needs of its app (``pgq.App``), named here so that this module
    does not import the app, which imports it."""

    async def enqueue(self, task: str, args: dict[str, Any]) -> Job: ...

    def enqueue_sync(self, task: str, args: dict[str, Any]) -> Job: ...


@dataclasses.dataclass(frozen=True, slots=True)
class TaskOptions:
    """Per-task defaults; every enqueue may override queue, priority and max_attempts."""

    queue: str = "default"
    priority: int = 0
    max_attempts: int = 5
    timeout: float | None = None
    retry: wait_base = dataclasses.field(default_factory=lambda: as_wait(None))

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError(f"max_attempts must be >= 1, got {self.max_attempts}")
        if self.timeout is not None and not self.timeout > 0:
            raise ValueError(f"timeout must be a positive number of seconds, got {self.timeout}")
        if not -32768 <= self.priority <= 32767:
            raise ValueError(f"priority must be between -32768 and 32767, got {self.priority}")
        check_queue_name(self.queue)


class Task:
    """What ``@app.task`` returns. Calling it runs the function directly (handy in tests)."""

    def __init__(self, app: Enqueuer, fn: Callable[..., Any], name: str, options: TaskOptions) -> None:
        self.app = app
        self.fn = fn
        self.name = check_task_name(name)
        self.options = options
        self.is_async = inspect.iscoroutinefunction(fn)
        self.signature = inspect.signature(fn)
        self._fitting_names: set[tuple[str, ...]] = set()
        self.__doc__ = fn.__doc__
        self.__wrapped__ = fn

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.fn(*args, **kwargs)

    def __repr__(self) -> str:
        return f"<pgq.Task {self.name} queue={self.options.queue}>"

    def check_args(self, args: Mapping[str, Any]) -> None:
        """TypeError naming the parameter when ``args`` cannot call the function.

        Checked at enqueue, so a wrong or missing argument is refused before anything is
        written instead of failing the job later on a worker.
        """
        names = tuple(args)
        if names in self._fitting_names:  # whether arguments fit depends on their names only
            return
        params = self.signature.parameters
        keyword = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
        takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
        unexpected = [k for k in args if not (k in params and params[k].kind in keyword) and not takes_any]
        missing = [n for n, p in params.items() if p.kind in keyword and p.default is p.empty and n not in args]
        problems = [f"unexpected argument {k!r}" for k in unexpected] + [f"missing argument {n!r}" for n in missing]
        if not problems:
            try:
                self.signature.bind(**args)
            except TypeError as exc:
                problems.append(str(exc))
        if problems:
            raise TypeError(f"task {self.name}({', '.join(params)}): {'; '.join(problems)}")
        self._remember_fitting(names)

    def step(self, **kwargs: Any) -> Step:
        """This task bound to these arguments, as a step of a workflow (``pgq.chain``,
        ``pgq.group``); checked against the function's parameters now."""
        from pgq.canvas import Step  # canvas imports spec, which imports this module

        self.check_args(kwargs)
        return Step(self.name, kwargs)

    def bind_names(self, args: Mapping[str, Any]) -> None:
        """TypeError, as ``signature.bind(**args)`` raises it, unless ``args`` fit.

        Whether keyword arguments fit depends on their names only, so the sets of
        names that fitted once are remembered (up to 64): the worker checks every job.
        """
        names = tuple(args)
        if names in self._fitting_names:
            return
        self.signature.bind(**args)
        self._remember_fitting(names)

    def _remember_fitting(self, names: tuple[str, ...]) -> None:
        if len(self._fitting_names) < 64:
            self._fitting_names.add(names)

    async def enqueue(self, **kwargs: Any) -> Job:
        """Enqueue a run with these keyword arguments, using the task's defaults."""
        return await self.app.enqueue(self.name, kwargs)

    def enqueue_sync(self, **kwargs: Any) -> Job:
        """Like ``enqueue``, for code that is not async."""
        return self.app.enqueue_sync(self.name, kwargs)
