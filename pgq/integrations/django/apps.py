"""The Django app of pgq (``INSTALLED_APPS += ["pgq.integrations.django"]``)."""

from __future__ import annotations

from django.apps import AppConfig


class PgqConfig(AppConfig):
    name = "pgq.integrations.django"
    label = "pgq"
    verbose_name = "pgq job queue"

    def ready(self) -> None:
        from pgq.integrations.django import autodiscover_tasks

        autodiscover_tasks()  # every process registers the project's tasks, as the worker does
