"""A real PgBouncer in transaction pooling mode in front of the test server.

One pgbouncer process per test session, on a port of its own, with its own config in a
temporary folder (auth_type trust, every database passed through). Each test's fresh
database is reached through it by ``bouncer_dsn``; ``dsn`` stays the direct route (the
LISTEN URL). Skipped with a reason where Debian's ``pgbouncer`` is not installed.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from tests.conftest import Server

PGBOUNCER = shutil.which("pgbouncer") or next(
    (p for p in ("/usr/sbin/pgbouncer", "/usr/bin/pgbouncer") if os.path.exists(p)), None
)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _config(server: Server, port: int, folder: Path) -> Path:
    users = folder / "users.txt"
    users.write_text(f'"{server.user}" ""\n')
    ini = folder / "pgbouncer.ini"
    ini.write_text(
        "[databases]\n"
        f"* = host={server.host} port={server.port}\n"
        "[pgbouncer]\n"
        "listen_addr = 127.0.0.1\n"
        f"listen_port = {port}\n"
        "unix_socket_dir =\n"
        "auth_type = trust\n"
        f"auth_file = {users}\n"
        "pool_mode = transaction\n"
        # Fewer server connections than clients: server connections are shared, as in production.
        "default_pool_size = 8\n"
        "max_client_conn = 500\n"
        "server_idle_timeout = 5\n"
    )
    return ini


@pytest.fixture(scope="session")
def pgbouncer(pg_server: Server, tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """The port of a running PgBouncer (transaction pooling) in front of ``pg_server``."""
    if PGBOUNCER is None:
        pytest.skip("pgbouncer is not installed (Debian: apt-get install pgbouncer)")
    folder = tmp_path_factory.mktemp("pgbouncer")
    port = _free_port()
    ini = _config(pg_server, port, folder)
    command = [PGBOUNCER, str(ini)]
    if os.geteuid() == 0:  # pgbouncer refuses to run as root; it reads its config before switching
        command[1:1] = ["-u", _unprivileged_user(pg_server)]
    with open(folder / "pgbouncer.log", "wb") as out:
        proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
    try:
        _wait_answers(port, pg_server.user, proc, folder / "pgbouncer.log")
        yield port
    finally:
        proc.terminate()
        proc.wait(10)


def _unprivileged_user(server: Server) -> str:
    """The owner of the server's socket folder (the embedded server's own user), else postgres."""
    if server.host.startswith("/"):
        owner = pwd.getpwuid(os.stat(server.host).st_uid).pw_name
        if owner != "root":
            return owner
    try:
        return pwd.getpwnam("postgres").pw_name
    except KeyError:
        return "nobody"


def _wait_answers(port: int, user: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 20
    while True:
        try:
            psycopg.connect(
                make_conninfo(host="127.0.0.1", port=port, user=user, dbname="postgres"), connect_timeout=2
            ).close()
            return
        except psycopg.OperationalError:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"pgbouncer did not start:\n{log.read_text()}") from None
            time.sleep(0.1)


@pytest.fixture
def bouncer_dsn(dsn: str, pgbouncer: int) -> str:
    """This test's fresh database, reached through PgBouncer in transaction mode."""
    params = conninfo_to_dict(dsn)
    return make_conninfo(host="127.0.0.1", port=pgbouncer, user=params["user"], dbname=params["dbname"])
