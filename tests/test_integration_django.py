"""pgq in a real Django project, written by the tests: enqueue in transaction.atomic() on
Django's own connection, the DATABASES-to-DSN helper, and ``manage.py pgq_worker``.

Django's settings are configured once per process, so this module shares one database
(a fresh copy of the migrated template) and one project between its tests.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict

import pgq
from tests.conftest import Server
from tests.helpers import count_rows, wait_until

django = pytest.importorskip("django")

PROJECT = {
    "manage.py": """
        import os, sys
        if __name__ == "__main__":
            os.environ.setdefault("DJANGO_SETTINGS_MODULE", "shopsite.settings")
            from django.core.management import execute_from_command_line
            execute_from_command_line(sys.argv)
    """,
    "shopsite/__init__.py": "",
    "shopsite/settings.py": """
        SECRET_KEY = "tests-only"
        USE_TZ = True
        TIME_ZONE = "UTC"  # Django sets the process's TZ to this (its default is America/Chicago)
        INSTALLED_APPS = ["django.contrib.contenttypes", "pgq.integrations.django", "shop"]
        DATABASES = {{"default": {{
            "ENGINE": "django.db.backends.postgresql",
            "NAME": {name!r}, "USER": {user!r}, "HOST": {host!r}, "PORT": {port!r},
            "OPTIONS": {{"application_name": "shopsite", "server_side_binding": False}},
        }}}}
        DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
    """,
    "shop/__init__.py": "",
    "shop/models.py": """
        from django.db import models

        class Order(models.Model):
            item = models.CharField(max_length=100)
            shipped = models.BooleanField(default=False)
    """,
    "shop/tasks.py": """
        from django.db import connection

        from pgq.integrations.django import get_app

        from shop.models import Order

        app = get_app()

        @app.task
        def ship(order_id: int) -> dict:
            order = Order.objects.get(id=order_id)
            order.shipped = True
            order.save()
            return {"shipped": order.item, "backend_pid": connection.connection.info.backend_pid}
    """,
    "shop/own_app.py": """
        import pgq
        from pgq.integrations.django import database_dsn

        app = pgq.App(database_dsn())
    """,
    "shop/loops_app.py": """
        from pgq.integrations.django import get_app

        app = get_app()
    """,
}


@pytest.fixture(scope="module")
def project(pg_server: Server, template_db: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The Django project on a database of its own, set up in this process."""
    name = f"pgq_django_{os.getpid()}"
    root = tmp_path_factory.mktemp("django_project")
    params = conninfo_to_dict(pg_server.dsn(name))
    for path, text in PROJECT.items():
        if path == "shopsite/settings.py":
            text = text.format(name=name, user=params["user"], host=params["host"], port=str(params["port"]))
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_text(textwrap.dedent(text).lstrip())
    janitor = pg_server.janitor(name, template=template_db)
    janitor.drop()  # left over by an interrupted run of this process id
    with janitor:
        sys.path.insert(0, str(root))
        os.environ["DJANGO_SETTINGS_MODULE"] = "shopsite.settings"
        django.setup()
        from django.core.management import call_command

        call_command("migrate", run_syncdb=True, verbosity=0)
        try:
            yield root
        finally:
            from django.db import connections

            connections.close_all()
            from pgq.integrations.django import get_app

            get_app().close_sync()
            os.environ.pop("DJANGO_SETTINGS_MODULE", None)


@pytest.fixture
def dsn(project: Path) -> str:
    from pgq.integrations.django import database_dsn

    return database_dsn()


def session_alive(dsn: str, pid: int) -> bool:
    with psycopg.connect(dsn) as conn:
        return conn.execute("SELECT 1 FROM pg_stat_activity WHERE pid = %s", (pid,)).fetchone() is not None


def orders() -> Any:
    from shop.models import Order  # type: ignore[import-not-found]

    return Order.objects


def test_the_dsn_comes_from_django_databases(dsn: str, project: Path) -> None:
    from django.conf import settings

    from pgq.integrations.django import dsn_from_database_settings

    params = conninfo_to_dict(dsn)
    assert params["dbname"] == settings.DATABASES["default"]["NAME"]
    assert params["application_name"] == "shopsite"  # libpq OPTIONS pass through
    assert "server_side_binding" not in params  # Django's own OPTIONS do not
    with psycopg.connect(dsn) as conn:
        assert conn.execute("SELECT current_database()").fetchone() == (params["dbname"],)
    full = dsn_from_database_settings(
        {"ENGINE": "django.db.backends.postgresql", "NAME": "shop", "USER": "u", "PASSWORD": "p w", "PORT": 6432}
    )
    assert conninfo_to_dict(full) == {"dbname": "shop", "user": "u", "password": "p w", "port": "6432"}
    with pytest.raises(pgq.ConfigError, match=r"DATABASES\['other'\] uses django.db.backends.sqlite3"):
        dsn_from_database_settings({"ENGINE": "django.db.backends.sqlite3", "NAME": "db.sqlite3"}, "other")


def test_the_tasks_modules_are_discovered_at_startup(project: Path) -> None:
    from pgq.integrations.django import autodiscover_tasks, get_app

    assert "ship" in get_app().tasks
    assert autodiscover_tasks() == ["shop.tasks"]


def test_pgq_app_names_the_projects_own_app(project: Path) -> None:
    from django.test import override_settings

    import pgq.integrations.django as integration

    default = integration.get_app()
    try:
        integration._app = None
        with override_settings(PGQ_APP="shop.own_app:app"):
            from shop.own_app import app  # type: ignore[import-not-found]

            assert integration.get_app() is app
        integration._app = None
        with override_settings(PGQ_APP="shop.loops_app:app"), pytest.raises(pgq.ConfigError, match="while it is"):
            integration.get_app()
    finally:
        integration._app = default


def test_enqueue_in_atomic_commits_with_the_block(dsn: str) -> None:
    from django.db import transaction

    from pgq.integrations.django import enqueue

    with transaction.atomic():
        order = orders().create(item="teapot")
        job = enqueue("ship", {"order_id": order.id}, priority=3)
        # Same transaction as the order: nobody else sees the job yet.
        assert count_rows(dsn, "id = %s", [job.id]) == 0
    assert count_rows(dsn, "id = %s AND state = 'queued' AND priority = 3", [job.id]) == 1
    assert orders().filter(id=order.id).exists()
    assert (job.task, job.args) == ("ship", {"order_id": order.id})


def test_enqueue_in_a_rolled_back_block_leaves_nothing(dsn: str) -> None:
    from django.db import transaction

    from pgq.integrations.django import enqueue

    before = count_rows(dsn)

    class Oops(Exception):
        pass

    with pytest.raises(Oops), transaction.atomic():
        order = orders().create(item="doomed vase")
        enqueue("ship", {"order_id": order.id})
        raise Oops
    assert count_rows(dsn) == before
    assert not orders().filter(item="doomed vase").exists()


def test_enqueue_checks_its_input_before_writing(dsn: str) -> None:
    from django.db import transaction

    from pgq.integrations.django import enqueue

    before = count_rows(dsn)
    with transaction.atomic():
        with pytest.raises(pgq.UnknownTaskError):
            enqueue("shipp", {"order_id": 1})
        with pytest.raises(TypeError, match="missing argument 'order_id'"):
            enqueue("ship", {})
    with pytest.raises(pgq.ConfigError, match="no database 'nope'"), transaction.atomic():
        enqueue("ship", {"order_id": 1}, using="nope")
    assert count_rows(dsn) == before


def test_aenqueue_writes_on_the_connection_of_djangos_async_orm_calls(dsn: str) -> None:
    from asgiref.sync import sync_to_async
    from django.db import transaction

    from pgq.integrations.django import aenqueue

    async def view() -> tuple[pgq.Job, int]:
        # A transaction left open on the connection of Django's thread-sensitive executor
        # (where acreate runs): a job written on that same connection stays invisible.
        await sync_to_async(transaction.set_autocommit)(False)
        try:
            order = await orders().acreate(item="mug")
            job = await aenqueue("ship", {"order_id": order.id})
            unseen = count_rows(dsn, "id = %s", [job.id])
            await sync_to_async(transaction.commit)()
        finally:
            await sync_to_async(transaction.set_autocommit)(True)
        return job, unseen

    job, unseen = asyncio.run(view())
    assert unseen == 0  # same connection, same open transaction as the ORM's insert
    assert count_rows(dsn, "id = %s AND state = 'queued'", [job.id]) == 1


def test_an_idempotent_repeat_on_djangos_connection_reads_the_job_back_whole(dsn: str) -> None:
    from pgq.integrations.django import enqueue

    order = orders().create(item="kettle")
    first = enqueue("ship", {"order_id": order.id}, idempotency_key=f"ship-{order.id}")
    again = enqueue("ship", {"order_id": order.id}, idempotency_key=f"ship-{order.id}")
    assert again.id == first.id
    assert again.args == {"order_id": order.id}  # a dict, though Django reads jsonb as text


def test_manage_py_pgq_worker_runs_the_projects_jobs(dsn: str, project: Path, tmp_path: Path) -> None:
    from django.db import transaction

    from pgq.integrations.django import enqueue

    with transaction.atomic():
        order = orders().create(item="lamp")
        job = enqueue("ship", {"order_id": order.id})
    log = tmp_path / "worker.log"
    with open(log, "wb") as out:
        worker = subprocess.Popen(
            [sys.executable, "manage.py", "pgq_worker", "--concurrency", "2"],
            cwd=project,
            env={**os.environ, "DJANGO_SETTINGS_MODULE": "shopsite.settings"},
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        done = job.wait_sync(timeout=60)
        assert done.state is pgq.JobState.SUCCEEDED, log.read_text()
        assert done.result["shipped"] == "lamp"
        assert orders().get(id=order.id).shipped  # the task used the ORM, in the worker
        # ... and its connection was closed after the run (CONN_MAX_AGE is 0), as after a request.
        pid = done.result["backend_pid"]
        wait_until(lambda: not session_alive(dsn, pid), 10, "the task's Django connection to close")
    finally:
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(30) == 0, log.read_text()
    assert "worker " in log.read_text()
    assert "started" in log.read_text()


def test_manage_py_pgq_migrate_reports_the_revision(project: Path) -> None:
    out = subprocess.run(
        [sys.executable, "manage.py", "pgq_migrate"],
        cwd=project,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "shopsite.settings"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("pgq schema is at revision ")
