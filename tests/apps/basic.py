"""Tasks the worker tests run, in-process or in `pgq worker` subprocesses.

Every run is appended to a file under PGQ_TEST_RUN_LOG (one line per execution,
"job_id pid"), so a test can prove how often each job was executed.
"""

from __future__ import annotations

import asyncio
import os
import time

import pgq

app = pgq.App()


def record_run() -> None:
    folder = os.environ.get("PGQ_TEST_RUN_LOG")
    if folder:
        with open(os.path.join(folder, f"{os.getpid()}.log"), "a") as log:
            log.write(f"{pgq.current_job().job.id} {os.getpid()}\n")


@app.task
async def noop(n: int = 0) -> int:
    record_run()
    return n


@app.task
def sync_noop(n: int = 0) -> int:
    record_run()
    return n


@app.task
async def sleepy(seconds: float) -> float:
    record_run()
    await asyncio.sleep(seconds)
    return seconds


@app.task
def sync_sleepy(seconds: float) -> float:
    record_run()
    time.sleep(seconds)
    return seconds


@app.task
def suicide() -> None:
    """A poison job: kills the worker process that runs it, every time."""
    record_run()
    os._exit(17)


@app.task
async def until_cancelled(limit: float = 60) -> str:
    record_run()
    await asyncio.sleep(limit)
    return "not cancelled"


@app.task
def sync_until_cancelled(limit: float = 60) -> str:
    """Sync tasks cannot be interrupted: this one checks its cancel flag in its loop."""
    record_run()
    ctx = pgq.current_job()
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        ctx.raise_if_cancelled()
        time.sleep(0.02)
    return "not cancelled"


@app.task
async def attempt_marker(seconds: float = 0) -> int:
    """Returns its attempt number, so a test can tell which attempt's result stuck."""
    record_run()
    await asyncio.sleep(seconds)
    return pgq.current_job().attempt


@app.task
async def sleep_until(at: float) -> float:
    """Sleeps until the wall-clock time ``at``: parents that end at the same moment on
    different workers, for the join tests."""
    record_run()
    await asyncio.sleep(max(0.0, at - time.time()))
    return at


@app.task
async def join(n: int = 0) -> list[object]:
    """A fan-in callback: returns its parents' results, in order."""
    record_run()
    return [parent.result for parent in pgq.current_job().parents]


@app.task
async def loop_kind() -> str:
    """The module of the event loop the worker runs on (asyncio's or uvloop's)."""
    return type(asyncio.get_running_loop()).__module__
