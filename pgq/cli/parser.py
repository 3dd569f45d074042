"""The argument parser: every command, its options and its help text."""

from __future__ import annotations

import argparse

from pgq.cli.jobs import cmd_cancel, cmd_enqueue, cmd_jobs, cmd_retry
from pgq.cli.queues import cmd_limits, cmd_pause, cmd_queues, cmd_schedules
from pgq.cli.services import cmd_api, cmd_bench, cmd_demo, cmd_embedded, cmd_migrate, cmd_roles, cmd_worker
from pgq.cli.workflows import cmd_enqueue_workflow, cmd_workflow, cmd_workflows
from pgq.job import JobState


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pgq",
        description="A job queue that needs nothing but PostgreSQL. The database is DATABASE_URL "
        "(or --database-url); without one, an embedded PostgreSQL in PGQ_DATA_DIR.",
    )
    parser.add_argument("--database-url", help="PostgreSQL DSN (overrides DATABASE_URL)")
    parser.add_argument(
        "--log-level",
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="default: INFO for worker and api, WARNING for one-shot commands; demo logs to a file",
    )
    parser.add_argument(
        "--log-format",
        choices=["human", "json"],
        help="human (default), or json: one object per line with job_id, task, queue, attempt, worker_id "
        "(default: PGQ_LOG_FORMAT)",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("migrate", help="create or upgrade the pgq schema (safe to run twice, or concurrently)")
    p.set_defaults(func=cmd_migrate)

    p = sub.add_parser("limits", help="show per-queue limits, or set a queue's (omitted limits are removed)")
    p.add_argument("queue", nargs="?", help="the queue to set limits for")
    p.add_argument("--max-running", type=int, help="jobs of this queue running at once, on all workers together")
    p.add_argument("--rate", type=int, help="at most this many job starts ...")
    p.add_argument("--per", type=float, default=1.0, help="... per this many seconds (default 1)")
    p.set_defaults(func=cmd_limits)

    p = sub.add_parser("roles", help="create least-privilege roles pgq_producer, pgq_worker, pgq_reader")
    p.set_defaults(func=cmd_roles)

    p = sub.add_parser("worker", help="run a worker for an app's tasks")
    p.add_argument("--app", help="MODULE:ATTR of your pgq.App, e.g. myproject.tasks:app (default: PGQ_APP)")
    p.add_argument("--queues", help="comma-separated queues (default: PGQ_QUEUES, else every queue the tasks use)")
    p.add_argument("--concurrency", type=int, help="jobs run at once (default: PGQ_CONCURRENCY or 10)")
    p.add_argument("--poll-interval", type=float, help="seconds between polls when no NOTIFY arrives (default 2)")
    p.add_argument("--no-listen", action="store_true", help="poll only; when no direct connection can LISTEN")
    p.add_argument("--listen-url", help="direct DSN for LISTEN only, past PgBouncer (default: PGQ_LISTEN_URL)")
    p.add_argument("--shutdown-timeout", type=float, help="seconds running jobs get after SIGTERM (default 30)")
    p.add_argument(
        "--event-loop",
        choices=["asyncio", "uvloop"],
        help="asyncio, or uvloop: less CPU per job; pip install 'pgq-queue[uvloop]' "
        "(default: PGQ_EVENT_LOOP or asyncio)",
    )
    p.add_argument(
        "--metrics-port", type=int, help="serve Prometheus metrics on this port at /metrics (default: PGQ_METRICS_PORT)"
    )
    p.set_defaults(func=cmd_worker)

    p = sub.add_parser("enqueue", help="enqueue a job by task name")
    p.add_argument("task", help="the task's registered name")
    p.add_argument("--args", default="{}", help="keyword arguments as a JSON object")
    p.add_argument(
        "--app",
        help="MODULE:ATTR (default: PGQ_APP): check the task name and its arguments against this app's tasks "
        "and use the task's defaults",
    )
    p.add_argument("--queue")
    p.add_argument("--priority", type=int, help="lower runs first (default 0)")
    p.add_argument("--delay", type=float, help="seconds from now")
    p.add_argument("--run-at", help="ISO 8601 time with offset")
    p.add_argument("--max-attempts", type=int)
    p.add_argument("--idempotency-key")
    p.add_argument(
        "--depends-on",
        type=int,
        action="append",
        default=[],
        metavar="ID",
        help="wait until job ID is final (repeat for more parents); not with --idempotency-key",
    )
    p.add_argument(
        "--on-parent-failure",
        choices=["cancel", "run"],
        help="when a parent fails or is cancelled: cancel this job too (default) or run it anyway",
    )
    p.add_argument("--json", action="store_true", help="print the job as JSON")
    p.set_defaults(func=cmd_enqueue)

    p = sub.add_parser(
        "enqueue-workflow",
        help="enqueue a workflow from its JSON description (the body of POST /workflows)",
        description='FILE (or - for stdin) holds {"name": ..., "steps": [...]} or the list of steps; '
        'a step is {"name", "task", "args", "after": [step names], ...the options of enqueue}.',
    )
    p.add_argument("file", help="a JSON file, or - to read stdin")
    p.add_argument("--name", help="the workflow's name (default: the first step's task)")
    p.add_argument("--json", action="store_true", help="print the workflow as JSON")
    p.set_defaults(func=cmd_enqueue_workflow)

    p = sub.add_parser("workflows", help="list workflows, newest first, with their steps counted by state")
    p.add_argument("--limit", type=int, default=50)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_workflows)

    p = sub.add_parser("workflow", help="show a workflow and its steps, or cancel or retry it")
    p.add_argument("id", type=int)
    action = p.add_mutually_exclusive_group()
    action.add_argument(
        "--cancel", action="store_true", help="cancel the steps not started; running ones get a cancel request"
    )
    action.add_argument(
        "--retry", action="store_true", help="run the failed and cancelled steps again (the steps after them wait)"
    )
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_workflow)

    p = sub.add_parser("jobs", help="list jobs, newest first, or show one with its errors")
    p.add_argument("id", nargs="?", type=int, help="show this job in full")
    p.add_argument("--queue")
    p.add_argument("--state", choices=[s.value for s in JobState])
    p.add_argument("--task")
    p.add_argument("--limit", type=int, default=50)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_jobs)

    p = sub.add_parser("queues", help="jobs per queue and state, and paused queues (the pgq.queue_stats view)")
    p.set_defaults(func=cmd_queues)

    for name, what in (("pause", "stop workers claiming from QUEUE (running jobs finish)"), ("resume", "undo pause")):
        p = sub.add_parser(name, help=what)
        p.add_argument("queue", help="the queue's name")
        p.set_defaults(func=cmd_pause)

    p = sub.add_parser(
        "schedules",
        help="periodic jobs with their next and last run, and whether a live worker declares them",
        description="Lists pgq.schedule_status. A schedule no live worker declares is ORPHANED and does not run.",
    )
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_schedules, action=None)
    actions = p.add_subparsers(dest="action", metavar="ACTION")
    d = actions.add_parser("delete", help="remove a schedule (its jobs stay)")
    d.add_argument("name", help="the schedule's name, as `pgq schedules` shows it")

    cancel_help = (
        "cancel a job: one waiting is cancelled at once, a running one gets a cancel request its worker acts on"
    )
    p = sub.add_parser("cancel", help=cancel_help, description=cancel_help.capitalize() + ".")
    p.add_argument("id", type=int)
    p.set_defaults(func=cmd_cancel)

    p = sub.add_parser("retry", help="put a failed or cancelled job back in its queue")
    p.add_argument("id", type=int)
    p.set_defaults(func=cmd_retry)

    p = sub.add_parser("api", help="serve the HTTP API (tokens: PGQ_API_READ_TOKENS, PGQ_API_WRITE_TOKENS)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on; other than loopback needs tokens")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--listen-url", help="direct DSN for wait/events' LISTEN, past PgBouncer (default: PGQ_LISTEN_URL)")
    p.add_argument("--read-url", help="a streaming replica for list/get/stats/dashboard reads (PGQ_READ_DATABASE_URL)")
    p.set_defaults(func=cmd_api)

    p = sub.add_parser(
        "bench",
        help="measure pgq against the raw-SQL ceiling, in a database of its own (created and dropped)",
        description="Creates a database on the server of DATABASE_URL (or the embedded one), runs the "
        "workloads against pgq and as bare SQL, prints pgq as a fraction of the raw ceiling, drops the database.",
    )
    p.add_argument("-n", "--jobs", type=int, default=10_000, help="jobs for bulk enqueue and drain (default 10000)")
    p.add_argument("--concurrency", type=int, default=10, help="jobs per worker process at once (default 10)")
    p.add_argument("--workers", type=int, default=1, help="worker processes for drain and steady (default 1)")
    p.add_argument("--duration", type=float, default=10.0, help="seconds of the steady-state run (default 10)")
    p.add_argument("--rate", type=float, default=200.0, help="jobs/s the steady-state producer sends (default 200)")
    p.add_argument("--batch", type=int, default=5_000, help="jobs per enqueue_many call (default 5000)")
    p.add_argument("--samples", type=int, default=200, help="jobs of the idle wake-up latency run (default 200)")
    p.add_argument("--scenario-jobs", type=int, default=2_000, help="jobs per drain of each scenario (default 2000)")
    p.add_argument(
        "--rounds", type=int, default=3, help="rounds of each enqueue workload and of its ceiling, in turn (default 3)"
    )
    p.add_argument(
        "--only",
        help="comma-separated workloads: enqueue_one,enqueue_bulk,drain,latency,steady; "
        "scenarios: threads,mixed,concurrency,processes; and, only when named, "
        "metrics (the drain with worker metrics off and on, alternating)",
    )
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(func=cmd_bench)

    p = sub.add_parser("demo", help="migrate, run a worker for the example app and show its jobs finishing")
    p.add_argument("--once", action="store_true", help="exit when the example jobs are done")
    p.add_argument("--port", type=int, default=8000, help="port of the HTTP API on 127.0.0.1 (default 8000)")
    p.add_argument("--no-api", action="store_true", help="run the worker without the HTTP API")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser(
        "embedded",
        help="status or stop of the embedded PostgreSQL in PGQ_DATA_DIR (it keeps running between commands)",
    )
    p.add_argument(
        "action", choices=["status", "stop"], help="status: exit 0 if running, 3 if not; stop: fast shutdown"
    )
    p.set_defaults(func=cmd_embedded)
    return parser
