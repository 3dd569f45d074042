"""``manage.py pgq_worker``: a pgq worker for the project's tasks, with its settings."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from pgq.errors import PgqError
from pgq.integrations.django import get_app, prepare_worker
from pgq.settings import parse_queues


class Command(BaseCommand):
    help = "Run a pgq worker for this project's tasks (on the database of PGQ_DATABASE, default 'default')."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--queues", help="comma-separated queues (default: every queue the tasks use)")
        parser.add_argument("--concurrency", type=int, help="jobs run at once (default: PGQ_CONCURRENCY or 10)")
        parser.add_argument("--poll-interval", type=float, help="seconds between polls when no NOTIFY arrives")
        parser.add_argument("--no-listen", action="store_true", help="poll only; when no direct connection can LISTEN")
        parser.add_argument("--shutdown-timeout", type=float, help="seconds running jobs get after SIGTERM")

    def handle(self, *args: Any, **options: Any) -> None:
        from pgq.worker import Worker

        if not logging.getLogger().handlers:  # Django's LOGGING did not route the worker's log lines
            logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)-7s %(name)s: %(message)s")
        try:
            app = get_app()
            if not app.tasks:
                raise CommandError(
                    "no pgq tasks registered: put them in a tasks.py of an installed app (or list "
                    "PGQ_TASK_MODULES), with @get_app().task"
                )
            prepare_worker(app)
            worker = Worker(
                app,
                queues=parse_queues(options["queues"]) if options["queues"] else None,
                concurrency=options["concurrency"],
                poll_interval=options["poll_interval"],
                listen=False if options["no_listen"] else None,
                shutdown_timeout=options["shutdown_timeout"],
            )
            asyncio.run(worker.run())
        except (PgqError, ValueError) as exc:
            raise CommandError(str(exc)) from exc
