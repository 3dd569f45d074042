"""`pgq queues`, `pgq limits`, `pgq pause` / `resume`, `pgq schedules`: queue-wide views and settings."""

from __future__ import annotations

import argparse

from pgq.app import App
from pgq.cli.output import declared_by, in_zone, print_list, print_table
from pgq.db import queues


def cmd_limits(args: argparse.Namespace) -> int:
    with App() as app:
        if args.queue is not None:
            app.set_queue_limits_sync(
                args.queue,
                max_running=args.max_running,
                rate_limit=args.rate,
                rate_period=args.per if args.rate is not None else None,
            )
        limits = app.queue_limits_sync()
    if not limits:
        print("no queue limits")
        return 0
    rows = [["QUEUE", "MAX RUNNING", "RATE"]] + [
        [
            lim.queue,
            "-" if lim.max_running is None else str(lim.max_running),
            "-" if lim.rate_period is None else f"{lim.rate_limit} per {lim.rate_period.total_seconds():g}s",
        ]
        for lim in limits
    ]
    print_table(rows)
    return 0


def cmd_queues(args: argparse.Namespace) -> int:
    with App() as app:
        stats = app.run_sync(queues.state_lines())
    if not stats:
        print("no jobs")
        return 0
    rows = [["QUEUE", "STATE", "JOBS", "OLDEST QUEUED", "PAUSED"]] + [
        [
            line.queue,
            line.state or "-",
            str(line.jobs),
            str(line.oldest_queued_age).split(".")[0] if line.oldest_queued_age is not None else "-",
            "paused" if line.paused else "-",
        ]
        for line in stats
    ]
    print_table(rows)
    return 0


def cmd_pause(args: argparse.Namespace) -> int:
    """`pgq pause QUEUE` / `pgq resume QUEUE` (one function: the same report)."""
    with App() as app:
        state = app.pause_queue_sync(args.queue) if args.command == "pause" else app.resume_queue_sync(args.queue)
    since = f" (since {state.paused_at.isoformat(sep=' ', timespec='seconds')})" if state.paused_at else ""
    print(f"queue {state.queue} {'paused' + since if state.paused else 'resumed'}")
    return 0


def cmd_schedules(args: argparse.Namespace) -> int:
    if args.action == "delete":
        with App() as app:
            app.delete_schedule_sync(args.name)
        print(f"schedule {args.name} deleted (a worker whose app still declares it writes it again when it starts)")
        return 0
    with App() as app:
        schedules = app.list_schedules_sync()
    print_list(
        schedules,
        as_json=args.json,
        empty="no schedules (a worker writes its app's schedules when it starts)",
        header=["NAME", "TASK", "QUEUE", "WHEN", "TZ", "MISSED", "NEXT RUN", "LAST RUN", "LAST JOB", "DECLARED BY"],
        row=lambda s: [
            s.name,
            s.task,
            s.queue,
            s.cron if s.cron is not None else f"every {s.every_seconds}s",
            s.timezone,
            s.missed,
            in_zone(s.next_run_at, s.timezone),
            in_zone(s.last_run_at, s.timezone),
            str(s.last_job_id) if s.last_job_id is not None else "-",
            declared_by(s),
        ],
    )
    return 0
