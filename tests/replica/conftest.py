"""A real primary and a streaming replica, started by the tests.

The primary is an embedded PostgreSQL (pgserver) in a temporary folder; the replica is
made from it with ``pg_basebackup -R`` of the same binaries and started beside it on a
socket of its own. One pair per test session: each test gets a fresh migrated database
on the primary (CREATE DATABASE replicates too) and waits until the replica has it.
As root, both servers run as pgserver's ``pgserver`` user, like the embedded one.
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg.conninfo import make_conninfo

from pgq.migrate import migrate
from tests.conftest import Server, start_embedded

_counter = itertools.count()


def _bin(name: str) -> str:
    from pgserver._commands import POSTGRES_BIN_PATH

    return str(POSTGRES_BIN_PATH / name)


def _os_user() -> str | None:
    return "pgserver" if os.geteuid() == 0 else None


def _run(*args: str) -> None:
    result = subprocess.run(args, capture_output=True, text=True, timeout=120, user=_os_user())
    if result.returncode != 0:
        raise RuntimeError(f"{args[0]} failed: {result.stderr.strip() or result.stdout.strip()}")


@dataclasses.dataclass
class Replica:
    """A streaming replica of the session's primary, on a Unix socket of its own."""

    data_dir: Path
    socket_dir: Path
    port: int

    def dsn(self, dbname: str) -> str:
        return make_conninfo(host=str(self.socket_dir), port=self.port, user="postgres", dbname=dbname)

    def start(self) -> None:
        log = self.data_dir.parent / "replica.log"
        _run(_bin("pg_ctl"), "-D", str(self.data_dir), "-l", str(log), "-w", "-t", "60", "start")

    def stop(self) -> None:
        """Gone at once, as a crashed or unplugged replica is."""
        _run(_bin("pg_ctl"), "-D", str(self.data_dir), "-m", "immediate", "-w", "stop")

    def pause_replay(self) -> None:
        with psycopg.connect(self.dsn("postgres"), autocommit=True) as conn:
            conn.execute("SELECT pg_wal_replay_pause()")

    def resume_replay(self) -> None:
        with psycopg.connect(self.dsn("postgres"), autocommit=True) as conn:
            conn.execute("SELECT pg_wal_replay_resume()")

    def wait_for_database(self, dbname: str, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                with psycopg.connect(self.dsn(dbname), connect_timeout=2) as conn:
                    if conn.execute("SELECT to_regclass('pgq.alembic_version') IS NOT NULL").fetchone() == (True,):
                        return
            except psycopg.OperationalError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"the replica did not get database {dbname} within {timeout} s")
            time.sleep(0.1)


@pytest.fixture(scope="session")
def primary(tmp_path_factory: pytest.TempPathFactory) -> Server:
    if shutil.which("useradd") is None and os.geteuid() == 0:
        pytest.skip("running as root needs useradd to create the pgserver user")
    return start_embedded(tmp_path_factory.mktemp("primary") / "pgdata")


@pytest.fixture(scope="session")
def replica(primary: Server, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Replica]:
    base = tmp_path_factory.mktemp("replica")
    base.chmod(0o755)  # the server's own user must reach its folders
    data_dir, socket_dir = base / "data", base / "sock"
    socket_dir.mkdir(mode=0o777)
    socket_dir.chmod(0o777)
    if os.geteuid() == 0:
        shutil.chown(base, "pgserver")
    port = primary.port + 1 + os.getpid() % 1000
    _run(
        _bin("pg_basebackup"),
        f"--host={primary.host}",
        f"--port={primary.port}",
        "--username=postgres",
        f"--pgdata={data_dir}",
        "--write-recovery-conf",
        "--wal-method=stream",
        "--checkpoint=fast",
    )
    with (data_dir / "postgresql.auto.conf").open("a") as conf:
        conf.write(
            f"port = {port}\nunix_socket_directories = '{socket_dir}'\nlisten_addresses = ''\nhot_standby = on\n"
        )
    standby = Replica(data_dir, socket_dir, port)
    standby.start()
    yield standby
    with contextlib.suppress(RuntimeError):  # a test left it stopped
        standby.stop()


@pytest.fixture
def replicated_dsns(primary: Server, replica: Replica) -> Iterator[tuple[str, str]]:
    """A fresh migrated database on the primary, and the same database on the replica."""
    name = f"pgq_replica_{os.getpid()}_{next(_counter)}"
    with primary.janitor(name):
        migrate(primary.dsn(name))
        replica.wait_for_database(name)
        yield primary.dsn(name), replica.dsn(name)
