"""``manage.py pgq_migrate``: create or upgrade the pgq schema in the project's database."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from pgq.errors import PgqError
from pgq.integrations.django import database_dsn
from pgq.migrate import migrate


class Command(BaseCommand):
    help = "Create or upgrade the pgq schema in the database of PGQ_DATABASE (default 'default')."

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            revision = migrate(database_dsn())
        except PgqError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(f"pgq schema is at revision {revision}")
