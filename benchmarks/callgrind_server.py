"""A throwaway PostgreSQL whose backends run under valgrind's callgrind.

CPU time on a shared 2-core machine moves by 5–10 % from run to run, which hides the
small differences some questions are about (does a schema change cost plain jobs 3 %?).
callgrind counts the instructions a backend executes instead: the same statements on the
same data give the same count whatever else the machine is doing. ``instructions`` runs
a workload on one connection and returns the count of the backend that served it; the
``callgrind.out`` files stay in ``folder`` for ``callgrind_annotate`` to say where the
instructions went.

The databases are made first on the same cluster started normally (migrating under
valgrind would take minutes), then the cluster is restarted with every process under
callgrind. Needs valgrind and the PostgreSQL server binaries (Debian: valgrind,
postgresql); run as root, the cluster runs as the ``postgres`` user.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

import psycopg

PG_BIN = next(iter(sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)), None)
SETTINGS = {
    # Nothing but the workload runs: no autovacuum or statistics flushes between runs,
    # and no fsync (its cost is in the kernel, which callgrind does not count anyway).
    "autovacuum": "off",
    "fsync": "off",
    "full_page_writes": "off",
    "listen_addresses": "''",
    "shared_buffers": "128MB",
    "max_connections": "20",
}


class CallgrindServer:
    def __init__(self) -> None:
        if PG_BIN is None or shutil.which("valgrind") is None:
            raise SystemExit("needs valgrind and PostgreSQL's server binaries (apt-get install valgrind postgresql)")
        self.folder = Path(tempfile.mkdtemp(prefix="pgq-callgrind-"))
        self.data = self.folder / "data"
        self.port = 5400 + os.getpid() % 500
        self._server: subprocess.Popen[bytes] | None = None
        self._log: BinaryIO | None = None
        if os.geteuid() == 0:
            shutil.chown(self.folder, "postgres")
        self._run(str(PG_BIN / "initdb"), "-D", str(self.data), "-U", "postgres", "-A", "trust", "--no-sync")
        with open(self.data / "postgresql.conf", "a") as conf:
            for name, value in {
                **SETTINGS,
                "port": str(self.port),
                "unix_socket_directories": f"'{self.folder}'",
            }.items():
                conf.write(f"{name} = {value}\n")

    def _as_postgres(self, args: list[str]) -> list[str]:
        return ["runuser", "-u", "postgres", "--", *args] if os.geteuid() == 0 else args

    def _run(self, *args: str) -> None:
        subprocess.run(self._as_postgres(list(args)), capture_output=True, check=True, timeout=300)

    def dsn(self, dbname: str) -> str:
        return f"host={self.folder} port={self.port} user=postgres dbname={dbname}"

    @contextlib.contextmanager
    def plain(self) -> Iterator[None]:
        """The cluster started normally, to create and fill the databases."""
        assert PG_BIN is not None
        ctl = str(PG_BIN / "pg_ctl")
        self._run(ctl, "-D", str(self.data), "-l", str(self.folder / "plain.log"), "-w", "start")
        try:
            yield
        finally:
            self._run(ctl, "-D", str(self.data), "-m", "fast", "-w", "stop")

    def create_database(self, name: str) -> str:
        with psycopg.connect(self.dsn("postgres"), autocommit=True) as conn:
            conn.execute(psycopg.sql.SQL("CREATE DATABASE {}").format(psycopg.sql.Identifier(name)))
        return self.dsn(name)

    def start_under_callgrind(self) -> None:
        assert PG_BIN is not None
        command = self._as_postgres(
            [
                "valgrind",
                "--tool=callgrind",
                "--trace-children=yes",
                f"--callgrind-out-file={self.folder}/callgrind.out.%p",
                str(PG_BIN / "postgres"),
                "-D",
                str(self.data),
            ]
        )
        self._log = open(self.folder / "callgrind.log", "wb")  # noqa: SIM115 - the server's, closed in close()
        self._server = subprocess.Popen(command, stdout=self._log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 300
        while True:
            try:
                psycopg.connect(self.dsn("postgres"), connect_timeout=60).close()
                return
            except psycopg.OperationalError:
                if time.monotonic() > deadline or self._server.poll() is not None:
                    raise
                time.sleep(1)

    def instructions(self, dbname: str, workload: Callable[[psycopg.Connection], None]) -> int:
        """Instructions the backend executed for one connection running ``workload``
        (its connection setup and exit included)."""
        with psycopg.connect(self.dsn(dbname), autocommit=True) as conn:
            pid = conn.info.backend_pid
            workload(conn)
        out = self.folder / f"callgrind.out.{pid}"
        deadline = time.monotonic() + 120
        while not _complete(out):
            if time.monotonic() > deadline:
                raise TimeoutError(f"callgrind wrote no {out}")
            time.sleep(0.2)
        return _total(out)

    def close(self) -> None:
        if self._server is not None:
            self._server.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._server.wait(120)
            if self._server.poll() is None:
                self._server.kill()
        if self._log is not None:
            self._log.close()
        if os.environ.get("PGQ_KEEP_CALLGRIND"):
            print(f"callgrind files kept in {self.folder}")
        else:
            shutil.rmtree(self.folder, ignore_errors=True)


def _complete(path: Path) -> bool:
    return path.exists() and any(line.startswith("totals:") for line in _lines(path))


def _lines(path: Path) -> list[str]:
    return path.read_text(errors="replace").splitlines()


def _total(path: Path) -> int:
    for line in _lines(path):
        if line.startswith("totals:"):
            return int(line.split()[1])
    raise ValueError(f"no totals line in {path}")
