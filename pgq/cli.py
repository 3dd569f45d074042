"""The `pgq` command line: migrate, worker, enqueue, jobs, queues, pause, resume, schedules, cancel, retry,
api, bench, demo, embedded."""

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
from pgq.schedule import ScheduleState
from pgq.settings import Settings, parse_queues


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
    if not hasattr(module, attr):
        raise ConfigError(f"module {module_name!r} has no attribute {attr!r} (--app {spec})")
    app = getattr(module, attr)
    if not isinstance(app, App):
        raise ConfigError(f"{spec} is {type(app).__name__}, not a pgq.App")
    return app


def _app_spec(args: argparse.Namespace) -> str | None:
    """--app, else PGQ_APP: name the app once for every command."""
    return getattr(args, "app", None) or Settings.from_env().app


def _app_for(args: argparse.Namespace) -> App:
    spec = _app_spec(args)
    return load_app(spec) if spec else App()


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

    spec = _app_spec(args)
    if not spec:
        raise ConfigError("which app? give --app MODULE:ATTR (e.g. myproject.tasks:app) or set PGQ_APP")
    app = load_app(spec)
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
    # Bad input is refused before anything connects (or starts the embedded server).
    task_args = _parse_json_object(args.args)
    run_at = _parse_time(args.run_at) if args.run_at else None
    app = _app_for(args)
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


def _age(when: dt.datetime | None) -> str:
    return when.astimezone().strftime("%Y-%m-%d %H:%M:%S") if when else "-"


_SUMMARY_WIDTH = 60


def _cut(text: str, width: int = _SUMMARY_WIDTH) -> str:
    """One line of at most ``width`` characters, with an ellipsis when something was cut."""
    line = " ".join(text.split())
    return line if len(line) <= width else line[: width - 1] + "…"


def _last_error(job: Job) -> str:
    if not job.errors:
        return ""
    last = job.errors[-1]
    return _cut(f"{last.get('type')}: {last.get('message')}")


def _print_table(rows: Sequence[Sequence[str]]) -> None:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())


def _show_job(job: Job) -> None:
    data = job.to_dict()
    errors = data.pop("errors")
    width = max(map(len, data))
    for key, value in data.items():
        print(f"{key:>{width}}: {json.dumps(value) if isinstance(value, dict | list) else value}")
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
        return _cut(json.dumps(job.result))
    if job.state == JobState.RUNNING and job.progress:
        return _cut(f"{job.progress['percent']:g}% {job.progress.get('message') or ''}")
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
    rows = [["QUEUE", "STATE", "JOBS", "OLDEST QUEUED", "PAUSED"]] + [
        [str(q), str(s or "-"), str(n), str(age).split(".")[0] if age is not None else "-", "paused" if p else "-"]
        for q, s, n, age, p in stats
    ]
    _print_table(rows)
    return 0


def cmd_pause(args: argparse.Namespace) -> int:
    """`pgq pause QUEUE` / `pgq resume QUEUE` (one function: the same report)."""
    with App() as app:
        state = app.pause_queue_sync(args.queue) if args.command == "pause" else app.resume_queue_sync(args.queue)
    since = f" (since {state.paused_at.isoformat(sep=' ', timespec='seconds')})" if state.paused_at else ""
    print(f"queue {state.queue} {'paused' + since if state.paused else 'resumed'}")
    return 0


def _in_zone(when: dt.datetime | None, zone: str) -> str:
    from zoneinfo import ZoneInfo

    return when.astimezone(ZoneInfo(zone)).isoformat(sep=" ", timespec="seconds") if when else "-"


def _declared(s: ScheduleState) -> str:
    """Whether a live worker declares the schedule, or since when none does (it does not run)."""
    if s.orphaned:
        return f"ORPHANED: no live worker since {_in_zone(s.last_declared_at, s.timezone)}"
    count = len(s.declared_by)
    return f"{count} live worker{'s' if count != 1 else ''}"


def cmd_schedules(args: argparse.Namespace) -> int:
    if args.action == "delete":
        with App() as app:
            app.delete_schedule_sync(args.name)
        print(f"schedule {args.name} deleted (a worker whose app still declares it writes it again when it starts)")
        return 0
    with App() as app:
        schedules = app.list_schedules_sync()
    if args.json:
        print(json.dumps([s.to_dict() for s in schedules], indent=2))
        return 0
    if not schedules:
        print("no schedules (a worker writes its app's schedules when it starts)")
        return 0
    header = ["NAME", "TASK", "QUEUE", "WHEN", "TZ", "MISSED", "NEXT RUN", "LAST RUN", "LAST JOB", "DECLARED BY"]
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
            _declared(s),
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
    from pgq.api.serve import serve

    serve(args.host, args.port)
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from pgq.demo import run_demo

    log_file = Settings.from_env().data_dir.parent / "demo.log"
    log_file.parent.mkdir(parents=True, exist_ok=True)
    _log_to(logging.FileHandler(log_file), args.log_level or "INFO")
    return asyncio.run(run_demo(once=args.once, port=None if args.no_api else args.port, log_file=str(log_file)))


def cmd_embedded(args: argparse.Namespace) -> int:
    from pgq import embedded

    settings = Settings.from_env()
    if settings.database_url is not None:
        print(f"note: DATABASE_URL is set, so pgq does not use the embedded PostgreSQL in {settings.data_dir}")
    if args.action == "stop":
        stopped = embedded.stop(settings.data_dir)
        print(f"the embedded PostgreSQL in {settings.data_dir} {'is stopped' if stopped else 'was not running'}")
        return 0
    current = embedded.status(settings.data_dir)
    if current.pid is None:
        print(f"the embedded PostgreSQL in {current.data_dir} is not running")
        return 3
    print(f"the embedded PostgreSQL in {current.data_dir} is running (pid {current.pid}): {current.dsn}")
    return 0


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
    parser.add_argument(
        "--log-level",
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="default: INFO for worker and api, WARNING for one-shot commands; demo logs to a file",
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

    p = sub.add_parser(
        "embedded",
        help="status or stop of the embedded PostgreSQL in PGQ_DATA_DIR (it keeps running between commands)",
    )
    p.add_argument(
        "action", choices=["status", "stop"], help="status: exit 0 if running, 3 if not; stop: fast shutdown"
    )
    p.set_defaults(func=cmd_embedded)
    return parser


_SERVICES = {"worker", "api"}
"""Long-running commands log their progress at INFO; one-shot commands only warnings."""


def _log_to(handler: logging.Handler, level: str) -> None:
    """Send every log line (and Python warnings) to ``handler`` at ``level``."""
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
    root = logging.getLogger()
    for old in root.handlers[:]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    logging.captureWarnings(True)
    for noisy in ("alembic", "pgserver", "psycopg.pool"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    _log_to(logging.StreamHandler(sys.stderr), args.log_level or ("INFO" if args.command in _SERVICES else "WARNING"))
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
        print("pgq: interrupted (Ctrl-C)", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
