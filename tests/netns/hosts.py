"""Worker "hosts" on network stacks of their own, and a PostgreSQL reached over a bridge.

``Bridge`` is a Linux bridge in this (the root) namespace with address 10.77.N.1/24; each
``Host`` is a network namespace joined to it by a veth pair, with its own address
10.77.N.(10+i). ``Cluster`` is a throwaway PostgreSQL (the machine's own binaries, run as
the ``postgres`` user) listening on the bridge address only, with trust auth for the
subnet. ``Host.partition()`` drops the host's packets with nftables inside its namespace,
so its TCP connections stay open but silent (half-open); ``heal()`` lets them through
again. Names carry this process's pid, so parallel runs never share a bridge, a
namespace or a subnet. Needs root, ``ip`` (iproute2) and ``nft``; ``unavailable()``
says why not when it cannot run. Used by tests/netns and benchmarks/scale_hosts.py.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
from psycopg.conninfo import make_conninfo

ROOT = Path(__file__).resolve().parent.parent.parent
PG_BIN = next(iter(sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)), None)


def _run(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(args), capture_output=True, text=True, check=check, timeout=30)


def unavailable() -> str | None:
    """Why namespaces cannot be used here, or None when they can."""
    if os.geteuid() != 0:
        return "network namespace tests need root (ip netns, nftables)"
    for tool in ("ip", "nft"):
        if shutil.which(tool) is None:
            return f"`{tool}` is not installed (Debian: apt-get install iproute2 nftables)"
    if PG_BIN is None or not (PG_BIN / "initdb").exists():
        return "no PostgreSQL server binaries under /usr/lib/postgresql/*/bin"
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        return "no `postgres` user to run the test cluster as"
    probe = f"pgqprobe{os.getpid()}"
    try:
        made = _run("ip", "netns", "add", probe, check=False)
        if made.returncode != 0:
            return f"`ip netns add` fails here: {made.stderr.strip()}"
        nft = _run("ip", "netns", "exec", probe, "nft", "list", "ruleset", check=False)
        if nft.returncode != 0:
            return f"nftables does not work in a namespace here: {nft.stderr.strip()}"
    finally:
        _run("ip", "netns", "del", probe, check=False)
    return None


def _free_subnet(pid: int) -> str:
    """10.77.N, N from the pid, moved on past any subnet an interface here already uses."""
    taken = _run("ip", "-4", "-o", "addr", "show").stdout
    for step in range(250):
        subnet = f"10.77.{(pid + step) % 250 + 1}"
        if f" {subnet}." not in taken:
            return subnet
    raise RuntimeError("no free 10.77.N.0/24 subnet for the test bridge")


class Bridge:
    """A bridge with address 10.77.N.1/24, N from the pid (so parallel runs use other subnets)."""

    def __init__(self) -> None:
        pid = os.getpid()
        self.tag = str(pid % 100_000)
        self.name = f"pgqbr{self.tag}"
        self.subnet = _free_subnet(pid)
        self.address = f"{self.subnet}.1"
        self.hosts: list[Host] = []

    def up(self) -> None:
        _run("ip", "link", "add", self.name, "type", "bridge")
        _run("ip", "addr", "add", f"{self.address}/24", "dev", self.name)
        _run("ip", "link", "set", self.name, "up")

    def host(self, index: int) -> Host:
        """A new namespace on this bridge with address 10.77.N.(10+index)."""
        host = Host(self, index)
        self.hosts.append(host)
        host.up()
        return host

    def remove_hosts(self) -> None:
        for host in self.hosts:
            host.down()
        self.hosts.clear()

    def down(self) -> None:
        self.remove_hosts()
        _run("ip", "link", "del", self.name, check=False)


class Host:
    def __init__(self, bridge: Bridge, index: int) -> None:
        self.bridge = bridge
        self.index = index
        self.label = f"h{index}"
        self.ns = f"pgq{bridge.tag}{self.label}"
        self.address = f"{bridge.subnet}.{10 + index}"
        self._outside = f"v{bridge.tag}{self.label}"
        self._inside = f"{self._outside}i"
        self.procs: list[subprocess.Popen[bytes]] = []

    def up(self) -> None:
        _run("ip", "netns", "add", self.ns)
        _run("ip", "link", "add", self._outside, "type", "veth", "peer", "name", self._inside)
        _run("ip", "link", "set", self._inside, "netns", self.ns)
        _run("ip", "link", "set", self._outside, "master", self.bridge.name)
        _run("ip", "link", "set", self._outside, "up")
        _run("ip", "-n", self.ns, "addr", "add", f"{self.address}/24", "dev", self._inside)
        _run("ip", "-n", self.ns, "link", "set", self._inside, "up")
        _run("ip", "-n", self.ns, "link", "set", "lo", "up")

    def stop(self) -> None:
        """SIGTERM this host's processes and wait for them (killed after 30 s)."""
        for proc in self.procs:
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()

    def down(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(10)
        _run("ip", "netns", "del", self.ns, check=False)  # takes its end of the veth pair, and so both
        _run("ip", "link", "del", self._outside, check=False)

    def popen(self, args: list[str], *, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
        """Start a process inside this host's network namespace (output to ``log``)."""
        full_env = {**os.environ, "PYTHONPATH": str(ROOT), "PGQ_TEST_HOST": self.label, **env}
        with open(log, "ab") as out:
            proc = subprocess.Popen(
                ["ip", "netns", "exec", self.ns, *args], env=full_env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT
            )
        self.procs.append(proc)
        return proc

    def worker(
        self,
        dsn: str,
        log: Path,
        *args: str,
        env: dict[str, str] | None = None,
        app: str = "tests.apps.netns:app",
        log_level: str = "INFO",
    ) -> subprocess.Popen[bytes]:
        """A real ``pgq worker`` process on this host."""
        command = [sys.executable, "-m", "pgq", "--log-level", log_level, "worker", "--app", app, *args]
        return self.popen(command, env={"DATABASE_URL": dsn, **(env or {})}, log=log)

    def partition(self, port: int | None = None) -> None:
        """Drop every packet in and out (or only those to and from the database's ``port``)."""
        match = "" if port is None else f"tcp dport {port} "
        back = "" if port is None else f"tcp sport {port} "
        rules = (
            "table inet pgqpartition {\n"
            f"  chain out {{ type filter hook output priority 0; {match}drop; }}\n"
            f"  chain in {{ type filter hook input priority 0; {back}drop; }}\n"
            "}\n"
        )
        subprocess.run(["ip", "netns", "exec", self.ns, "nft", "-f", "-"], input=rules, text=True, check=True)

    def heal(self) -> None:
        _run("ip", "netns", "exec", self.ns, "nft", "delete", "table", "inet", "pgqpartition")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Cluster:
    """A throwaway PostgreSQL listening on the bridge address only (trust for its subnet)."""

    def __init__(self, bridge: Bridge) -> None:
        self.bridge = bridge
        self.port = _free_port()
        self.folder = Path(tempfile.mkdtemp(prefix="pgq-netns-"))
        self.data = self.folder / "data"
        self.user = "postgres"

    def _as_postgres(self, *args: str) -> None:
        subprocess.run(["runuser", "-u", "postgres", "--", *args], capture_output=True, check=True, timeout=120)

    def start(self) -> None:
        assert PG_BIN is not None
        shutil.chown(self.folder, "postgres")
        self._as_postgres(str(PG_BIN / "initdb"), "-D", str(self.data), "-U", "postgres", "-A", "trust")
        with open(self.data / "postgresql.conf", "a") as conf:
            conf.write(
                f"listen_addresses = '{self.bridge.address}'\n"
                f"port = {self.port}\n"
                f"unix_socket_directories = '{self.folder}'\n"
                "max_connections = 300\n"
                "fsync = off\n"
                "synchronous_commit = off\n"
                "full_page_writes = off\n"
                "shared_buffers = 128MB\n"
            )
        with open(self.data / "pg_hba.conf", "a") as hba:
            hba.write(f"host all all {self.bridge.subnet}.0/24 trust\n")
        self._as_postgres(
            str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-l", str(self.folder / "server.log"), "-w", "start"
        )

    def stop(self) -> None:
        assert PG_BIN is not None
        with contextlib.suppress(subprocess.SubprocessError):
            self._as_postgres(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "stop")
        shutil.rmtree(self.folder, ignore_errors=True)

    def dsn(self, dbname: str) -> str:
        return make_conninfo(host=self.bridge.address, port=self.port, user=self.user, dbname=dbname)

    @contextlib.contextmanager
    def database(self, name: str) -> Iterator[str]:
        """A fresh database at the current pgq schema (dropped afterwards), with the runs table."""
        from pgq.migrate import migrate

        with psycopg.connect(self.dsn("postgres"), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')  # test-only, a name we made
        try:
            dsn = self.dsn(name)
            migrate(dsn)
            with psycopg.connect(dsn, autocommit=True) as conn:
                conn.execute(RUNS_TABLE)
            yield dsn
        finally:
            with psycopg.connect(self.dsn("postgres"), autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


RUNS_TABLE = """
CREATE TABLE netns_runs (
    job_id bigint NOT NULL,
    attempt int NOT NULL,
    host text NOT NULL,
    pid int NOT NULL,
    at timestamptz NOT NULL DEFAULT clock_timestamp()
)
"""
"""One row per execution (tests/apps/netns.py writes it): no unique key, so a duplicate shows."""


def wait_for(predicate: object, timeout: float, what: str, interval: float = 0.1) -> float:
    """Poll ``predicate`` until true; the seconds it took (AssertionError after ``timeout``)."""
    assert callable(predicate)
    start = time.monotonic()
    while not predicate():
        if time.monotonic() - start > timeout:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)
    return time.monotonic() - start


def times_until(conditions: dict[str, Callable[[], object]], timeout: float, interval: float = 0.1) -> dict[str, float]:
    """Poll every condition until all hold; the seconds after which each first held."""
    start = time.monotonic()
    seen: dict[str, float] = {}
    while len(seen) < len(conditions):
        for name, condition in conditions.items():
            if name not in seen and condition():
                seen[name] = time.monotonic() - start
        if time.monotonic() - start > timeout:
            missing = sorted(set(conditions) - set(seen))
            raise AssertionError(f"timed out after {timeout} s waiting for {', '.join(missing)}")
        time.sleep(interval)
    return seen
