"""`pgq enqueue`, `pgq jobs`, `pgq cancel`, `pgq retry`: one job at a time."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from typing import Any

from pgq.app import App
from pgq.cli.loading import app_for
from pgq.cli.output import local_time, print_list, show_job, summary
from pgq.errors import ConfigError
from pgq.job import JobState


def _parse_json_object(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"--args is not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise ConfigError(f'--args must be a JSON object like \'{{"to": "a@b.c"}}\', got {type(value).__name__}')
    return value


def _parse_time(text: str) -> dt.datetime:
    try:
        value = dt.datetime.fromisoformat(text)
    except ValueError:
        raise ConfigError(f"--run-at must be an ISO 8601 time like 2030-01-01T09:00:00+00:00, got {text!r}") from None
    if value.tzinfo is None:
        raise ConfigError("--run-at needs a time zone offset (e.g. +00:00)")
    return value


def cmd_enqueue(args: argparse.Namespace) -> int:
    # Bad input is refused before anything connects (or starts the embedded server).
    task_args = _parse_json_object(args.args)
    run_at = _parse_time(args.run_at) if args.run_at else None
    app = app_for(args)
    with app:
        job = app.enqueue_sync(
            args.task,
            task_args,
            queue=args.queue,
            priority=args.priority,
            delay=args.delay,
            run_at=run_at,
            max_attempts=args.max_attempts,
            idempotency_key=args.idempotency_key,
            depends_on=args.depends_on,
            on_parent_failure=args.on_parent_failure,
        )
    print(
        json.dumps(job.to_dict(), indent=2)
        if args.json
        else f"enqueued job {job.id} ({job.task}) on queue {job.queue}: {job.state.value}"
    )
    if not app.tasks:
        print(
            f"pgq: note: task name {args.task!r} and its arguments are not checked (no --app or PGQ_APP): "
            "a typo fails the job on the worker",
            file=sys.stderr,
        )
    return 0


def cmd_jobs(args: argparse.Namespace) -> int:
    app = App()
    with app:
        if args.id is not None:
            job = app.get_job_sync(args.id)
            print(json.dumps(job.to_dict(), indent=2)) if args.json else show_job(job)
            return 0
        jobs = app.list_jobs_sync(queue=args.queue, state=args.state, task=args.task, limit=args.limit)
    print_list(
        jobs,
        as_json=args.json,
        empty="no jobs",
        header=["ID", "QUEUE", "TASK", "STATE", "ATTEMPT", "CREATED", "FINISHED", "RESULT / LAST ERROR"],
        row=lambda j: [
            str(j.id),
            j.queue,
            j.task,
            j.state.value,
            f"{j.attempt}/{j.max_attempts}",
            local_time(j.created_at),
            local_time(j.finished_at),
            summary(j),
        ],
    )
    return 0


def cmd_cancel(args: argparse.Namespace) -> int:
    with App() as app:
        job = app.cancel_sync(args.id)
    if job.state == JobState.RUNNING:
        print(f"job {job.id} is running: cancel requested, its worker stops it and records it cancelled")
    else:
        print(f"job {job.id} is {job.state.value}")
    return 0


def cmd_retry(args: argparse.Namespace) -> int:
    with App() as app:
        job = app.retry_sync(args.id)
    print(f"job {job.id} is {job.state.value} again (attempt {job.attempt} of {job.max_attempts} used)")
    return 0
