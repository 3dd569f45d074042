"""Runs one claimed job and says how it ended; writes nothing to the database.

Async tasks run on the event loop, plain functions on daemon threads (so a hung one
cannot keep the process alive at exit). The outcome carries what the worker records:
a result, or an error with the delay before the next attempt (None: no more attempts).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import dataclasses
import queue
import threading
import traceback
from collections.abc import Callable
from typing import Any

from pgq import _json, tracing
from pgq.app import App
from pgq.context import JobContext, reset_current, set_current
from pgq.errors import JobCancelledError, JobTimeoutError, PermanentError, Retry, UnknownTaskError
from pgq.job import Job
from pgq.retry import retry_delay
from pgq.task import Task


@dataclasses.dataclass(frozen=True, slots=True)
class Outcome:
    succeeded: bool
    result: Any = None
    error: dict[str, Any] | None = None
    retry_in: float | None = None
    """Seconds until the next attempt; None with an error means the job has failed."""
    cancelled: bool = False
    """The task stopped at a cancel request (the error says how)."""


def outcome_label(outcome: Outcome) -> str:
    """How an attempt ended: succeeded, retried, failed (for good), cancelled, or timed_out
    (it hit its timeout, whether or not another attempt follows)."""
    if outcome.succeeded:
        return "succeeded"
    if outcome.cancelled:
        return "cancelled"
    if outcome.error is not None and outcome.error.get("type") == "JobTimeoutError":
        return "timed_out"
    return "failed" if outcome.retry_in is None else "retried"


_MAX_MESSAGE = 2_000
_MAX_TRACEBACK = 10_000


def _cut(text: str, limit: int, end: str = "") -> str:
    return text if len(text) <= limit else f"{text[:limit]} [cut]{end}"


def _printable(text: str) -> str:
    """jsonb refuses NUL characters and lone surrogates: an error message carrying one
    would make its outcome unwritable, so the job would be rescued and run again."""
    if "\x00" in text:
        text = text.replace("\x00", "\\0")
    return text if text.isascii() else text.encode("utf-8", "backslashreplace").decode("utf-8")


def _error(exc: BaseException, *, message: str | None = None) -> dict[str, Any]:
    """One entry of the job's errors array. Long texts are cut (a deep recursion's
    traceback would otherwise bloat every later version of the row): the message
    keeps its start, the traceback its end, where the raising frame is."""
    text = _printable(message if message is not None else str(exc))
    trace = _printable(
        "".join(_cut(chunk, _MAX_MESSAGE, "\n") for chunk in traceback.TracebackException.from_exception(exc).format())
    )
    return {
        "type": type(exc).__qualname__,
        "message": _cut(text, _MAX_MESSAGE),
        "traceback": trace if len(trace) <= _MAX_TRACEBACK else "[cut] " + trace[-_MAX_TRACEBACK:],
    }


def _failed(job: Job, task: Task | None, exc: BaseException, *, permanent: bool, message: str | None = None) -> Outcome:
    error = _error(exc, message=message)
    if permanent or task is None or job.attempt >= job.max_attempts:
        return Outcome(succeeded=False, error=error)
    if isinstance(exc, Retry) and exc.delay is not None:
        delay = exc.delay
    else:
        delay = retry_delay(task.options.retry, job.attempt)
    return Outcome(succeeded=False, error=error, retry_in=delay)


class SyncThreads:
    """Daemon threads that run sync tasks, reused from job to job.

    Not concurrent.futures.ThreadPoolExecutor: its threads are joined at interpreter
    exit, so one hung task would keep a stopped worker alive forever. A thread that is
    busy (or hung past its timeout) is simply not idle: the next job gets a new thread.
    """

    def __init__(self) -> None:
        self._work: queue.SimpleQueue[tuple[Callable[[], Any], asyncio.Future[Any]]] = queue.SimpleQueue()
        self._idle = 0
        self._lock = threading.Lock()

    def submit(self, fn: Callable[[], Any]) -> asyncio.Future[Any]:
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        with self._lock:
            spawn = self._idle == 0
            if not spawn:
                self._idle -= 1  # that idle thread will take this item
        self._work.put((fn, future))
        if spawn:
            threading.Thread(target=self._serve, name="pgq-sync-task", daemon=True).start()
        return future

    def _serve(self) -> None:
        while True:
            fn, future = self._work.get()
            try:
                value, exc = fn(), None
            except BaseException as err:  # noqa: BLE001 - handed to the event loop as the job's error
                value, exc = None, err
            # RuntimeError: the loop closed, the worker is gone and the job was handed back.
            with contextlib.suppress(RuntimeError):
                future.get_loop().call_soon_threadsafe(_settle, future, value, exc)
            with self._lock:
                self._idle += 1


def _settle(future: asyncio.Future[Any], value: Any, exc: BaseException | None) -> None:
    if future.done():  # the job timed out or the worker stopped meanwhile
        return
    if exc is not None:
        future.set_exception(exc)
    else:
        future.set_result(value)


_sync_threads = SyncThreads()
_NO_DEADLINE = contextlib.nullcontext()


async def execute(app: App, ctx: JobContext, trace_parent: str = "child") -> Outcome:
    """Run the job's task with its arguments, timeout, retry policy and cancel requests,
    in a span of the enqueuer's trace when the process uses OpenTelemetry (pgq.tracing)."""
    if not tracing.active():
        return await _execute(app, ctx)
    with tracing.job_span(ctx.job, trace_parent) as span:
        outcome = await _execute(app, ctx)
        tracing.record(span, outcome_label(outcome), outcome.error)
        return outcome


async def _execute(app: App, ctx: JobContext) -> Outcome:
    job = ctx.job
    try:
        task = app.get_task(job.task)
    except UnknownTaskError as exc:
        return _failed(job, None, exc, permanent=True, message=f"{exc}; nothing was run")
    try:
        task.bind_names(job.args)
    except TypeError as exc:
        return _failed(
            job, task, exc, permanent=True, message=f"arguments {sorted(job.args)} do not fit task {task.name!r}: {exc}"
        )
    if ctx.cancel_requested:
        return _cancelled(JobCancelledError(f"job {job.id} was cancelled before it started"))

    token = set_current(ctx)
    timeout = task.options.timeout
    deadline = asyncio.timeout(timeout) if timeout is not None else None
    try:
        async with deadline or _NO_DEADLINE:
            if task.is_async:
                value = await _run_async(task, ctx)
            else:
                call = contextvars.copy_context().run
                value = await _sync_threads.submit(lambda: call(task.fn, **job.args))
    except TimeoutError as exc:
        if deadline is None or not deadline.expired():  # the task's own TimeoutError, not ours
            return _failed(job, task, exc, permanent=False)
        timed_out = JobTimeoutError(f"task {task.name!r} timed out after {timeout} s")
        if not task.is_async:
            timed_out.add_note("a sync task's thread cannot be killed: it may still be running")
        return _failed(job, task, timed_out, permanent=False)
    except JobCancelledError as exc:
        return _cancelled(exc)
    except PermanentError as exc:
        return _failed(job, task, exc, permanent=True)
    except Exception as exc:  # noqa: BLE001 - any task error is recorded on the job
        return _failed(job, task, exc, permanent=False)
    finally:
        reset_current(token)
    try:
        result = _json.check_json(value, "the result", app.json_default)
    except (TypeError, ValueError) as exc:
        return _failed(
            job, task, exc, permanent=True, message=f"task {task.name!r} returned a result that is not JSON: {exc}"
        )
    return Outcome(succeeded=True, result=result)


async def _run_async(task: Task, ctx: JobContext) -> Any:
    """Await the task in the job's own asyncio task (no child task: one task per job).

    A cancel request cancels that task, and only while the task's code runs, so its
    CancelledError is raised inside that code. It is told apart from the cancellation
    of a timeout or of shutdown by the task's cancel count: once the request's own is
    withdrawn (``uncancel``), none left means the request alone, which becomes
    JobCancelledError; any other cancellation goes on up.
    """
    this = asyncio.current_task()
    assert this is not None
    requested = False

    def interrupt() -> None:
        nonlocal requested
        if not requested:
            requested = True
            this.cancel()

    ctx.on_cancel(interrupt)
    try:
        return await task.fn(**ctx.job.args)
    except asyncio.CancelledError:
        if requested:
            requested = False
            if this.uncancel() == 0:
                raise JobCancelledError(f"job {ctx.job.id} was cancelled while running") from None
        raise
    finally:
        ctx.on_cancel(None)
        if requested:  # the task's code swallowed the CancelledError: withdraw the request's count
            this.uncancel()


def _cancelled(exc: JobCancelledError) -> Outcome:
    return Outcome(succeeded=False, cancelled=True, error=_error(exc))
