"""pgq in a Django project (Django 4.2+ with the psycopg 3 backend).

Add ``"pgq.integrations.django"`` to ``INSTALLED_APPS``. Then:

- ``get_app()`` is the project's ``pgq.App``: the one ``settings.PGQ_APP`` names
  (``"MODULE:ATTR"``), else one on the database ``settings.PGQ_DATABASE`` names
  (default ``"default"``), built from ``DATABASES`` by ``database_dsn()``.
- ``enqueue()`` writes the job on Django's own connection, so inside
  ``transaction.atomic()`` it commits or rolls back with the rest of the block.
- ``manage.py pgq_worker`` runs a worker for the project's tasks with its settings
  (sync tasks may use the ORM: stale connections are closed around each run);
  ``manage.py pgq_migrate`` creates or upgrades the pgq schema in that database.
- At startup every installed app's ``tasks`` module is imported (``PGQ_TASK_MODULES``
  lists other module names), so ``@app.task`` functions are registered everywhere.
"""

from __future__ import annotations

import functools
import importlib.util
import threading
from collections.abc import Callable, Mapping
from typing import Any, Unpack

import psycopg
from psycopg.conninfo import make_conninfo

from pgq.app import App
from pgq.errors import ConfigError
from pgq.job import Job
from pgq.spec import EnqueueOptions

__all__ = [
    "aenqueue",
    "autodiscover_tasks",
    "connection_of",
    "database_dsn",
    "dsn_from_database_settings",
    "enqueue",
    "get_app",
    "prepare_worker",
]

POSTGRES_ENGINES = frozenset({"django.db.backends.postgresql", "django.contrib.gis.db.backends.postgis"})
_NOT_LIBPQ = frozenset({"isolation_level", "server_side_binding", "pool", "assume_role", "cursor_factory", "context"})
"""Keys of a database's OPTIONS that Django itself reads; every other key is a libpq parameter."""


def dsn_from_database_settings(database: Mapping[str, Any], alias: str = "default") -> str:
    """The libpq DSN of one entry of Django's ``DATABASES`` (NAME, USER, PASSWORD, HOST,
    PORT and the libpq keys of OPTIONS, such as sslmode or service)."""
    engine = database.get("ENGINE", "")
    if engine not in POSTGRES_ENGINES:
        engines = ", ".join(sorted(POSTGRES_ENGINES))
        raise ConfigError(f"DATABASES[{alias!r}] uses {engine or 'no ENGINE'}; pgq needs PostgreSQL ({engines})")
    params: dict[str, Any] = {
        key: value
        for key, value in (database.get("OPTIONS") or {}).items()
        if key not in _NOT_LIBPQ and isinstance(value, str | int) and not isinstance(value, bool)
    }
    for setting, key in (("NAME", "dbname"), ("USER", "user"), ("PASSWORD", "password"), ("HOST", "host")):
        if database.get(setting):
            params[key] = str(database[setting])
    if database.get("PORT"):
        params["port"] = str(database["PORT"])
    try:
        return make_conninfo(**params)
    except psycopg.ProgrammingError as exc:
        raise ConfigError(f"DATABASES[{alias!r}] is not a valid PostgreSQL connection: {exc}") from None


def _alias(using: str | None) -> str:
    from django.conf import settings

    alias = using or getattr(settings, "PGQ_DATABASE", "default")
    if not isinstance(alias, str):
        raise ConfigError(f"PGQ_DATABASE must name an entry of DATABASES, got {alias!r}")
    return alias


def database_dsn(using: str | None = None) -> str:
    """The DSN of ``DATABASES[using]`` (default: ``settings.PGQ_DATABASE`` or ``"default"``)."""
    from django.conf import settings

    alias = _alias(using)
    if alias not in settings.DATABASES:
        raise ConfigError(f"no database {alias!r} in DATABASES (known: {', '.join(settings.DATABASES)})")
    return dsn_from_database_settings(settings.DATABASES[alias], alias)


_app: App | None = None
_app_lock = threading.RLock()
_loading = False


def get_app() -> App:
    """The project's pgq.App: ``settings.PGQ_APP`` (``"MODULE:ATTR"``) if set, else one
    App on the pgq database (created once per process)."""
    global _app, _loading
    from django.conf import settings

    with _app_lock:
        if _app is None:
            spec = getattr(settings, "PGQ_APP", None)
            if not spec:
                _app = App(database_dsn())
            elif _loading:
                raise ConfigError(
                    f"PGQ_APP {spec!r} calls get_app() while it is being imported: "
                    "create its App there with pgq.App(database_dsn())"
                )
            else:
                from pgq.cli import load_app

                _loading = True
                try:
                    _app = load_app(spec)
                finally:
                    _loading = False
        return _app


def autodiscover_tasks() -> list[str]:
    """Import the ``tasks`` module (or ``settings.PGQ_TASK_MODULES``) of every installed
    app that has one; returns the modules imported."""
    from django.apps import apps
    from django.conf import settings

    names = getattr(settings, "PGQ_TASK_MODULES", ("tasks",))
    if isinstance(names, str):
        raise ConfigError(f"PGQ_TASK_MODULES must be a list of module names, got the string {names!r}")
    imported: list[str] = []
    for config in apps.get_app_configs():
        for name in names:
            module = f"{config.name}.{name}"
            if importlib.util.find_spec(module) is not None:
                importlib.import_module(module)
                imported.append(module)
    return imported


def _fresh_connections(fn: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(fn)
    def run(**kwargs: Any) -> Any:
        from django.db import close_old_connections

        close_old_connections()  # as Django does around a request: drop broken or expired ones
        try:
            return fn(**kwargs)
        finally:
            close_old_connections()

    return run


def prepare_worker(app: App) -> None:
    """Let the app's sync tasks use the ORM in a long-running worker: around each run,
    Django's connections of that thread that are broken or older than CONN_MAX_AGE are
    closed, as Django does around each request (``manage.py pgq_worker`` calls this)."""
    for task in app.tasks.values():
        if not task.is_async and not getattr(task.fn, "_pgq_django", False):
            task.fn = _fresh_connections(task.fn)
            task.fn._pgq_django = True  # type: ignore[attr-defined]


def connection_of(using: str | None = None) -> psycopg.Connection[Any]:
    """Django's own psycopg 3 connection for ``using`` (opened if needed)."""
    from django.conf import settings
    from django.db import connections

    alias = _alias(using)
    if alias not in settings.DATABASES:
        raise ConfigError(f"no database {alias!r} in DATABASES (known: {', '.join(settings.DATABASES)})")
    wrapper = connections[alias]
    if wrapper.vendor != "postgresql":
        raise ConfigError(f"database {wrapper.alias!r} is {wrapper.vendor}, not PostgreSQL")
    wrapper.ensure_connection()
    raw = wrapper.connection
    if not isinstance(raw, psycopg.Connection):
        raise ConfigError(
            f"database {wrapper.alias!r} is driven by {type(raw).__module__}; enqueue() on Django's "
            "connection needs psycopg 3 (pip install 'psycopg[binary]', Django 4.2+ uses it when installed)"
        )
    return raw


def enqueue(
    task: str, args: Mapping[str, Any] | None = None, *, using: str | None = None, **options: Unpack[EnqueueOptions]
) -> Job:
    """Enqueue on Django's connection: inside ``transaction.atomic()`` the job commits or
    rolls back with the block; outside one (autocommit) it is committed at once.

    ``options`` are ``enqueue_sync``'s (queue, priority, delay or run_at, max_attempts,
    idempotency_key); ``using`` is a DATABASES alias. Sync, like the ORM; from async
    code, ``aenqueue``.
    """
    return get_app().enqueue_sync(task, args, conn=connection_of(using), **options)


async def aenqueue(
    task: str, args: Mapping[str, Any] | None = None, *, using: str | None = None, **options: Unpack[EnqueueOptions]
) -> Job:
    """``enqueue`` for async views, as Django's own ``acreate``/``asave`` do it: on the
    connection of Django's thread-sensitive executor, the one those calls use. Django
    has no async ``atomic()``: to commit a job with other writes, put them all in one
    sync function with ``transaction.atomic()`` and await it through ``sync_to_async``."""
    from asgiref.sync import sync_to_async

    return await sync_to_async(enqueue, thread_sensitive=True)(task, args, using=using, **options)
