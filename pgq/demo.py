"""`pgq demo`: the README's first command. Migrates, runs a worker for the example app
and the HTTP API beside it (on 127.0.0.1), enqueues a few jobs and prints each one as it
finishes, then keeps both running."""

from __future__ import annotations

import asyncio
import json
import socket
from typing import Any, Protocol

from pgq.example_app import app
from pgq.job import Job
from pgq.migrate import migrate
from pgq.worker import Worker

EXAMPLES: list[dict[str, Any]] = [
    {"task": "send_welcome_email", "args": {"to": "ada@example.com"}},
    {"task": "make_thumbnail", "args": {"width": 1920, "height": 1080}},
    {"task": "fetch_exchange_rate", "args": {"currency": "EUR"}},
    {"task": "send_welcome_email", "args": {"to": "grace@example.com"}, "delay": 1.0},
]


def _describe(job: Job) -> str:
    outcome = json.dumps(job.result) if job.result is not None else (job.errors[-1]["message"] if job.errors else "")
    retries = f" after {job.attempt} attempts" if job.attempt > 1 else ""
    return f"  job {job.id:<5} {job.task:<22} {job.state.value}{retries}: {outcome}"


API_HOST = "127.0.0.1"


class _Stoppable(Protocol):
    def stop(self) -> None: ...


def _start_api(port: int) -> tuple[_Stoppable, asyncio.Task[None]] | None:
    """Serve the API for the example app in this event loop, or say why not."""
    from api.serve import server_beside_worker

    try:
        sock = socket.create_server((API_HOST, port))  # bound here, so a taken port is a message, not an exit
    except OSError as exc:
        print(f"the HTTP API is not started: {API_HOST}:{port} is taken ({exc.strerror}); try --port", flush=True)
        return None
    server = server_beside_worker(app, API_HOST, port)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    print(f"HTTP API on http://{API_HOST}:{port} (try: curl http://{API_HOST}:{port}/jobs)", flush=True)
    print(f"dashboard on http://{API_HOST}:{port}/ui", flush=True)
    return server, task


async def run_demo(*, once: bool = False, port: int | None = 8000) -> int:
    migrate(app.dsn)
    worker = Worker(app, concurrency=4, poll_interval=1.0)
    worker_task = asyncio.create_task(worker.run())
    api = _start_api(port) if port is not None else None
    try:
        return await _show(worker, worker_task, once=once)
    finally:
        if api is not None:
            server, api_task = api
            server.stop()
            await api_task


async def _show(worker: Worker, worker_task: asyncio.Task[None], *, once: bool) -> int:
    async with app:
        jobs = await app.enqueue_many(EXAMPLES)
        print(f"enqueued {len(jobs)} example jobs; the worker is running them:", flush=True)
        pending = {job.id for job in jobs}
        while pending and not worker_task.done():
            await asyncio.sleep(0.1)
            for job_id in sorted(pending):
                job = await app.get_job(job_id)
                if job.is_final:
                    pending.discard(job_id)
                    print(_describe(job), flush=True)
    if worker_task.done():
        await worker_task  # surfaces the worker's error
        return 1
    print(
        "\nall example jobs are final. See them with `pgq jobs`, or in SQL: "
        "SELECT id, task, state, result FROM pgq.jobs;",
        flush=True,
    )
    if once:
        worker.stop()
    else:
        print(
            "the worker and the API keep running for new jobs (try `pgq enqueue make_thumbnail --args "
            '\'{"width": 640, "height": 480}\'` in another shell); Ctrl-C stops them.',
            flush=True,
        )
    await worker_task
    return 0
