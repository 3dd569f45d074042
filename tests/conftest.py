"""Fixtures: a real PostgreSQL, and a fresh migrated database for every test.

The server is the one on 127.0.0.1:5432 when it answers (PGQ_TEST_EMBEDDED=1 skips
it); otherwise the embedded pgserver is started in a temporary folder. The schema is
migrated once into a template database (pytest-postgresql's janitor) and each test
gets its own copy of it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import os
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import make_conninfo
from pytest_postgresql.janitor import DatabaseJanitor
from starlette.applications import Starlette

import pgq
from pgq.api import create_app
from pgq.api.config import ApiSettings
from pgq.migrate import migrate
from tests.helpers import WorkerProcesses

ROOT = Path(__file__).resolve().parent.parent
_counter = itertools.count()


@dataclasses.dataclass(frozen=True)
class Server:
    host: str
    port: int
    user: str

    def dsn(self, dbname: str) -> str:
        return make_conninfo(host=self.host, port=self.port, user=self.user, dbname=dbname)

    def janitor(self, dbname: str, *, template: str | None = None, as_template: bool = False) -> DatabaseJanitor:
        return DatabaseJanitor(
            user=self.user,
            host=self.host,
            port=self.port,
            dbname=dbname,
            template_dbname=template,
            as_template=as_template,
        )


def _local_server_answers() -> bool:
    if os.environ.get("PGQ_TEST_EMBEDDED") == "1":
        return False
    try:
        with socket.create_connection(("127.0.0.1", 5432), timeout=1):
            pass
        psycopg.connect("host=127.0.0.1 port=5432 user=postgres dbname=postgres", connect_timeout=3).close()
    except (OSError, psycopg.Error):
        return False
    return True


def start_embedded(data_dir: Path) -> Server:
    """Start a throwaway embedded PostgreSQL (deleted at exit)."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from pgserver.postgres_server import get_server

        server = get_server(data_dir, cleanup_mode="delete")
    info = server.get_postmaster_info()
    return Server(host=str(info.socket_dir), port=int(info.port), user="postgres")


@pytest.fixture(scope="session")
def pg_server(tmp_path_factory: pytest.TempPathFactory) -> Server:
    if _local_server_answers():
        return Server(host="127.0.0.1", port=5432, user="postgres")
    return start_embedded(tmp_path_factory.mktemp("embedded") / "pgdata")


@pytest.fixture(scope="session")
def template_db(pg_server: Server) -> Iterator[str]:
    name = f"pgq_template_{os.getpid()}"
    janitor = pg_server.janitor(name, as_template=True)
    janitor.drop()
    with janitor:
        migrate(pg_server.dsn(name))
        yield name


@contextlib.contextmanager
def _database(server: Server, name: str, template: str | None = None) -> Iterator[str]:
    """A new database, dropped WITH (FORCE) afterwards: a client that reconnects while the
    test ends (a listener's backoff) must not fail the drop, as it could the janitor's."""
    server.janitor(name, template=template).init()
    try:
        yield server.dsn(name)
    finally:
        with psycopg.connect(server.dsn("postgres"), autocommit=True) as admin:
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture
def dsn(pg_server: Server, template_db: str) -> Iterator[str]:
    """A fresh database at the current pgq schema, dropped after the test."""
    with _database(pg_server, f"pgq_test_{os.getpid()}_{next(_counter)}", template_db) as fresh:
        yield fresh


@pytest.fixture
def empty_dsn(pg_server: Server) -> Iterator[str]:
    """A fresh database without the pgq schema."""
    with _database(pg_server, f"pgq_empty_{os.getpid()}_{next(_counter)}") as fresh:
        yield fresh


@pytest.fixture
def conn(dsn: str) -> Iterator[psycopg.Connection[tuple[object, ...]]]:
    """An autocommit connection for looking at the table the way an operator would."""
    with psycopg.connect(dsn, autocommit=True) as connection:
        yield connection


@pytest.fixture
def start_worker(dsn: str, tmp_path: Path) -> Iterator[WorkerProcesses]:
    """Start real `pgq worker` processes on this test's database; killed at the end."""
    workers = WorkerProcesses(dsn, tmp_path)
    yield workers
    workers.kill_all()


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def pgq_cli(
    *args: str, dsn: str | None, timeout: float = 60, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the real `pgq` command line and capture what it prints."""
    full_env = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    full_env.pop("DATABASE_URL", None)
    if dsn is not None:
        full_env["DATABASE_URL"] = dsn
    return subprocess.run(
        [sys.executable, "-m", "pgq", *args], capture_output=True, text=True, timeout=timeout, env=full_env, cwd=ROOT
    )


READ_TOKEN = "read-token-for-tests"
WRITE_TOKEN = "write-token-for-tests"
READ = {"Authorization": f"Bearer {READ_TOKEN}"}
WRITE = {"Authorization": f"Bearer {WRITE_TOKEN}"}


def api_settings(**overrides: object) -> ApiSettings:
    fields: dict[str, object] = {"read_tokens": frozenset({READ_TOKEN}), "write_tokens": frozenset({WRITE_TOKEN})}
    return ApiSettings(**{**fields, **overrides})  # type: ignore[arg-type]


@pytest.fixture
async def api_app(dsn: str) -> AsyncIterator[Starlette]:
    """The HTTP API on the test database, with the suite's tokens, lifespan run."""
    app = create_app(pgq.App(dsn), settings=api_settings())
    async with app.router.lifespan_context(app):
        yield app


@pytest.fixture
async def api(api_app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client for ``api_app``; requests carry the write token unless told otherwise."""
    transport = httpx.ASGITransport(app=api_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://pgq", headers=WRITE) as client:
        yield client
