"""`pgq demo`: the README's first command. Migrates, runs a worker for the example app,
enqueues a few jobs and prints each one as it finishes, then keeps the worker running."""

from __future__ import annotations

import asyncio
import json
from typing import Any

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


async def run_demo(*, once: bool = False) -> int:
    migrate(app.dsn)
    worker = Worker(app, concurrency=4, poll_interval=1.0)
    worker_task = asyncio.create_task(worker.run())
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
            "the worker keeps running for new jobs (try `pgq enqueue make_thumbnail --args "
            '\'{"width": 640, "height": 480}\'` in another shell); Ctrl-C stops it.',
            flush=True,
        )
    await worker_task
    return 0
