"""The long-running and setup commands: migrate, roles, worker, api, demo, embedded, bench."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging

from pgq.app import App
from pgq.cli.loading import app_spec, load_app
from pgq.cli.logs import log_format, log_to
from pgq.errors import ConfigError
from pgq.settings import Settings, parse_queues


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
    from pgq.worker.startup import run

    spec = app_spec(args)
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
        metrics_port=args.metrics_port,
    )
    run(worker.run(), args.event_loop or app.settings.event_loop)
    return 0


def cmd_api(args: argparse.Namespace) -> int:
    from pgq.api.serve import serve

    serve(args.host, args.port)
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from pgq.demo import run_demo

    log_file = Settings.from_env().data_dir.parent / "demo.log"
    log_file.parent.mkdir(parents=True, exist_ok=True)
    log_to(logging.FileHandler(log_file), args.log_level or "INFO", log_format(args.log_format))
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
        scenario_jobs=args.scenario_jobs,
        rounds=args.rounds,
        only=only,
    )
    report = run_bench(options)
    print(json.dumps(report, indent=2, default=str) if args.json else format_table(report))
    return 0
