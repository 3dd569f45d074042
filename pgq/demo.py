"""`pgq demo`: the README's first command. Migrates, runs a worker for the example app
and the HTTP API beside it (on 127.0.0.1), enqueues a few jobs and prints each one as it
finishes, then keeps both running.

What it prints is the README's transcript (a test compares them): which database it
uses and what it did to its schema, then one line per job in the order they were
enqueued. The worker's and the API's log lines go to a file, so they never interleave.
"""

from __future__ import annotations

import asyncio
import json
import socket
from typing import Any, Protocol

from pgq import _db
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


def say(line: str = "") -> None:
    print(line, flush=True)


def _describe(job: Job) -> str:
    outcome = json.dumps(job.result) if job.result is not None else (job.errors[-1]["message"] if job.errors else "")
    retries = f" after {job.attempt} attempts" if job.attempt > 1 else ""
    return f"  job {job.id:<5} {job.task:<22} {job.state.value}{retries}: {outcome}"


API_HOST = "127.0.0.1"


class _Stoppable(Protocol):
    def stop(self) -> None: ...


def _start_api(port: int) -> tuple[_Stoppable, asyncio.Task[None]] | None:
    """Serve the API for the example app in this event loop, or say why not."""
    from pgq.api.serve import server_beside_worker

    try:
        sock = socket.create_server((API_HOST, port))  # bound here, so a taken port is a message, not an exit
    except OSError as exc:
        say(f"the HTTP API is not started: {API_HOST}:{port} is taken ({exc.strerror}); try --port")
        return None
    server = server_beside_worker(app, API_HOST, port)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    say(f"HTTP API on http://{API_HOST}:{port} (try: curl http://{API_HOST}:{port}/jobs)")
    say(f"dashboard on http://{API_HOST}:{port}/ui")
    return server, task


def _use_database() -> None:
    """Say which database the demo uses, and migrate it, saying what that changed."""
    embedded = app.settings.database_url is None
    if embedded:
        say(f"database: the embedded PostgreSQL in {app.settings.data_dir} (DATABASE_URL is not set)")
    else:
        say(f"database: DATABASE_URL {_db.redact(app.dsn)}")
    with _db.connect(app.dsn) as conn:
        before = _db.schema_version(conn)
    after = migrate(app.dsn)
    if before is None:
        say(f"pgq schema: created (revision {after})")
    elif before != after:
        say(f"pgq schema: migrated from revision {before} to {after}")
    else:
        say(f"pgq schema: revision {after}, up to date")


async def run_demo(*, once: bool = False, port: int | None = 8000, log_file: str | None = None) -> int:
    try:
        _use_database()
        if log_file:
            say(f"worker and API logs: {log_file}")
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
    finally:
        if app.settings.database_url is None:
            say(
                "the embedded PostgreSQL keeps running for the next pgq command; "
                "`pgq embedded stop` stops it, `pgq embedded status` shows it"
            )


async def _show(worker: Worker, worker_task: asyncio.Task[None], *, once: bool) -> int:
    async with app:
        jobs = await app.enqueue_many(EXAMPLES)
        say(f"enqueued {len(jobs)} example jobs; the worker is running them:")
        waiting = [job.id for job in jobs]  # printed in the order they were enqueued
        while waiting and not worker_task.done():
            job = await app.get_job(waiting[0])
            if job.is_final:
                say(_describe(job))
                waiting.pop(0)
            else:
                await asyncio.sleep(0.1)
    if worker_task.done():
        await worker_task  # surfaces the worker's error
        say("\ninterrupted before the example jobs were final: the worker and the API are stopped")
        return 130
    say("\nall example jobs are final. See them with `pgq jobs`, or in SQL:")
    say("  SELECT id, task, state, result FROM pgq.jobs;")
    if once:
        worker.stop()
    else:
        say(
            "the worker and the API keep running for new jobs (try `pgq enqueue make_thumbnail --args "
            '\'{"width": 640, "height": 480}\' --app pgq.example_app:app` in another shell); Ctrl-C stops them.'
        )
    await worker_task
    return 0
