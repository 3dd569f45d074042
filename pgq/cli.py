"""The `pgq` command line: migrate, worker, enqueue, jobs, queues, schedules, cancel, retry, api, bench, demo."""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import importlib
import json
import logging
import os
import sys
from collections.abc import Sequence
from typing import Any

from pgq import _db
from pgq.app import App
from pgq.errors import ConfigError, PgqError
from pgq.job import Job, JobState
from pgq.settings import parse_queues


def load_app(spec: str) -> App:
    """Import ``MODULE:ATTR`` (from the current directory too) and return the App."""
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise ConfigError(f"--app must look like MODULE:ATTR (e.g. myproject.tasks:app), got {spec!r}")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        raise ConfigError(f"cannot import {module_name!r} for --app: {exc}") from None
    app = getattr(module, attr, None)
    if not isinstance(app, App):
        raise ConfigError(f"{spec} is {type(app).__name__}, not a pgq.App")
    return app


def _app_for(args: argparse.Namespace) -> App:
    return load_app(args.app) if getattr(args, "app", None) else App()


# -- commands -----------------------------------------------------------------------


def cmd_migrate(args: argparse.Namespace) -> int:
    from pgq.migrate import migrate

    revision = migrate(App().dsn)
    print(f"pgq schema is at revision {revision}")
    return 0


def cmd_roles(args: argparse.Namespace) -> int:
    from pgq.migrate import create_roles

    roles = create_roles(App().dsn)
    print(f"roles {', '.join(roles)} are ready: GRANT them to your login roles (see README)")
    return 0


def cmd_worker(args: argparse.Namespace) -> int:
    from pgq.worker import Worker

    app = load_app(args.app)
    worker = Worker(
        app,
        queues=parse_queues(args.queues) if args.queues else None,
        concurrency=args.concurrency,
        poll_interval=args.poll_interval,
        listen=False if args.no_listen else None,
        shutdown_timeout=args.shutdown_timeout,
    )
    asyncio.run(worker.run())
    return 0


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
    app = _app_for(args)
    with app:
        job = app.enqueue_sync(
            args.task,
            _parse_json_object(args.args),
            queue=args.queue,
            priority=args.priority,
            delay=args.delay,
            run_at=_parse_time(args.run_at) if args.run_at else None,
            max_attempts=args.max_attempts,
            idempotency_key=args.idempotency_key,
        )
    print(
        json.dumps(job.to_dict(), indent=2)
        if args.json
        else f"enqueued job {job.id} ({job.task}) on queue {job.queue}: {job.state.value}"
    )
    return 0


def _age(when: dt.datetime | None) -> str:
    return when.astimezone().strftime("%Y-%m-%d %H:%M:%S") if when else "-"


def _last_error(job: Job) -> str:
    if not job.errors:
        return ""
    last = job.errors[-1]
    return f"{last.get('type')}: {last.get('message')}"[:60]


def _print_table(rows: Sequence[Sequence[str]]) -> None:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())


def _show_job(job: Job) -> None:
    data = job.to_dict()
    errors = data.pop("errors")
    for key, value in data.items():
        print(f"{key:>16}: {json.dumps(value) if isinstance(value, dict | list) else value}")
    for error in errors:
        when, kind, message = error.get("at"), error.get("type"), error.get("message")
        print(f"\n-- attempt {error.get('attempt')} failed at {when}: {kind}: {message}")
        print((error.get("traceback") or "").rstrip())


def cmd_jobs(args: argparse.Namespace) -> int:
    app = App()
    with app:
        if args.id is not None:
            job = app.get_job_sync(args.id)
            print(json.dumps(job.to_dict(), indent=2)) if args.json else _show_job(job)
            return 0
        jobs = app.list_jobs_sync(queue=args.queue, state=args.state, task=args.task, limit=args.limit)
    if args.json:
        print(json.dumps([j.to_dict() for j in jobs], indent=2))
        return 0
    if not jobs:
        print("no jobs")
        return 0
    header = ["ID", "QUEUE", "TASK", "STATE", "ATTEMPT", "CREATED", "FINISHED", "RESULT / LAST ERROR"]
    rows = [header] + [
        [
            str(j.id),
            j.queue,
            j.task,
            j.state.value,
            f"{j.attempt}/{j.max_attempts}",
            _age(j.created_at),
            _age(j.finished_at),
            _summary(j),
        ]
        for j in jobs
    ]
    _print_table(rows)
    return 0


def _summary(job: Job) -> str:
    """The list's last column: the result, the live progress, or the last error."""
    if job.state == JobState.SUCCEEDED:
        return json.dumps(job.result)[:60]
    if job.state == JobState.RUNNING and job.progress:
        return f"{job.progress['percent']:g}% {job.progress.get('message') or ''}"[:60].rstrip()
    return _last_error(job)


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
    _print_table(rows)
    return 0


def cmd_queues(args: argparse.Namespace) -> int:
    from pgq._queries import QUERIES

    app = App()
    with _db.connect(app.dsn) as conn:
        _db.check_schema(conn)
        stats = conn.execute(QUERIES["queue_stats_list"]).fetchall()
    if not stats:
        print("no jobs")
        return 0
    rows = [["QUEUE", "STATE", "JOBS", "OLDEST QUEUED"]] + [
        [str(q), str(s), str(n), str(age).split(".")[0] if age is not None else "-"] for q, s, n, age in stats
    ]
    _print_table(rows)
    return 0


def _in_zone(when: dt.datetime | None, zone: str) -> str:
    from zoneinfo import ZoneInfo

    return when.astimezone(ZoneInfo(zone)).isoformat(sep=" ", timespec="seconds") if when else "-"


def cmd_schedules(args: argparse.Namespace) -> int:
    with App() as app:
        schedules = app.list_schedules_sync()
    if args.json:
        print(json.dumps([s.to_dict() for s in schedules], indent=2))
        return 0
    if not schedules:
        print("no schedules (a worker writes its app's schedules when it starts)")
        return 0
    header = ["NAME", "TASK", "QUEUE", "WHEN", "TZ", "MISSED", "NEXT RUN", "LAST RUN", "LAST JOB"]
    rows = [header] + [
        [
            s.name,
            s.task,
            s.queue,
            s.cron if s.cron is not None else f"every {s.every_seconds}s",
            s.timezone,
            s.missed,
            _in_zone(s.next_run_at, s.timezone),
            _in_zone(s.last_run_at, s.timezone),
            str(s.last_job_id) if s.last_job_id is not None else "-",
        ]
        for s in schedules
    ]
    _print_table(rows)
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


def cmd_api(args: argparse.Namespace) -> int:
    from api.serve import serve

    serve(args.host, args.port)
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from pgq.demo import run_demo

    return asyncio.run(run_demo(once=args.once, port=None if args.no_api else args.port))


def cmd_bench(args: argparse.Namespace) -> int:
    from pgq.bench import WORKLOADS, BenchOptions, run_bench
    from pgq.bench.report import format_table

    # The workloads are measured with logging at WARNING, here and in the workers.
    logging.getLogger().setLevel(max(logging.WARNING, logging.getLogger().level))
    only = tuple(w.strip() for w in args.only.split(",") if w.strip()) if args.only else WORKLOADS
    options = BenchOptions(
        server_dsn=App().dsn,
        jobs=args.jobs,
        concurrency=args.concurrency,
        workers=args.workers,
        duration=args.duration,
        rate=args.rate,
        batch=args.batch,
        samples=args.samples,
        only=only,
    )
    report = run_bench(options)
    print(json.dumps(report, indent=2, default=str) if args.json else format_table(report))
    return 0


# -- parser -------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pgq",
        description="A job queue that needs nothing but PostgreSQL. The database is DATABASE_URL "
        "(or --database-url); without one, an embedded PostgreSQL in PGQ_DATA_DIR.",
    )
    parser.add_argument("--database-url", help="PostgreSQL DSN (overrides DATABASE_URL)")
    parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
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
    p.add_argument("--app", required=True, help="MODULE:ATTR of your pgq.App, e.g. myproject.tasks:app")
    p.add_argument("--queues", help="comma-separated queues (default: PGQ_QUEUES, else every queue the tasks use)")
    p.add_argument("--concurrency", type=int, help="jobs run at once (default: PGQ_CONCURRENCY or 10)")
    p.add_argument("--poll-interval", type=float, help="seconds between polls when no NOTIFY arrives (default 2)")
    p.add_argument("--no-listen", action="store_true", help="poll only; when no direct connection can LISTEN")
    p.add_argument("--listen-url", help="direct DSN for LISTEN only, past PgBouncer (default: PGQ_LISTEN_URL)")
    p.add_argument("--shutdown-timeout", type=float, help="seconds running jobs get after SIGTERM (default 30)")
    p.set_defaults(func=cmd_worker)

    p = sub.add_parser("enqueue", help="enqueue a job by task name")
    p.add_argument("task", help="the task's registered name")
    p.add_argument("--args", default="{}", help="keyword arguments as a JSON object")
    p.add_argument("--app", help="MODULE:ATTR: check the task name against this app's tasks and use its defaults")
    p.add_argument("--queue")
    p.add_argument("--priority", type=int, help="lower runs first (default 0)")
    p.add_argument("--delay", type=float, help="seconds from now")
    p.add_argument("--run-at", help="ISO 8601 time with offset")
    p.add_argument("--max-attempts", type=int)
    p.add_argument("--idempotency-key")
    p.add_argument("--json", action="store_true", help="print the job as JSON")
    p.set_defaults(func=cmd_enqueue)

    p = sub.add_parser("jobs", help="list jobs, newest first, or show one with its errors")
    p.add_argument("id", nargs="?", type=int, help="show this job in full")
    p.add_argument("--queue")
    p.add_argument("--state", choices=[s.value for s in JobState])
    p.add_argument("--task")
    p.add_argument("--limit", type=int, default=50)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_jobs)

    p = sub.add_parser("queues", help="jobs per queue and state (the pgq.queue_stats view)")
    p.set_defaults(func=cmd_queues)

    p = sub.add_parser("schedules", help="periodic jobs with their next and last run (the pgq.schedules table)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_schedules)

    p = sub.add_parser("cancel", help="cancel a job that has not started")
    p.add_argument("id", type=int)
    p.set_defaults(func=cmd_cancel)

    p = sub.add_parser("retry", help="put a failed or cancelled job back in its queue")
    p.add_argument("id", type=int)
    p.set_defaults(func=cmd_retry)

    p = sub.add_parser("api", help="serve the HTTP API (tokens: PGQ_API_READ_TOKENS, PGQ_API_WRITE_TOKENS)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on; other than loopback needs tokens")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--listen-url", help="direct DSN for wait/events' LISTEN, past PgBouncer (default: PGQ_LISTEN_URL)")
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
    p.add_argument("--only", help="comma-separated workloads: enqueue_one,enqueue_bulk,drain,latency,steady")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(func=cmd_bench)

    p = sub.add_parser("demo", help="migrate, run a worker for the example app and show its jobs finishing")
    p.add_argument("--once", action="store_true", help="exit when the example jobs are done")
    p.add_argument("--port", type=int, default=8000, help="port of the HTTP API on 127.0.0.1 (default 8000)")
    p.add_argument("--no-api", action="store_true", help="run the worker without the HTTP API")
    p.set_defaults(func=cmd_demo)
    return parser


def _configure_logging(level: str) -> None:
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)-7s %(name)s: %(message)s", stream=sys.stderr)
    for noisy in ("alembic", "pgserver", "psycopg.pool"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLogger().level))


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    _configure_logging(args.log_level)
    if args.database_url:
        os.environ["DATABASE_URL"] = args.database_url
    if getattr(args, "listen_url", None):
        os.environ["PGQ_LISTEN_URL"] = args.listen_url  # read by the App's settings, like DATABASE_URL
    try:
        return int(args.func(args))
    except PgqError as exc:
        print(f"pgq: error: {exc}", file=sys.stderr)
        return 2 if isinstance(exc, ConfigError) else 1
    except (ValueError, TypeError) as exc:
        # Bad input to the library (a malformed argument, an invalid option value).
        print(f"pgq: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
