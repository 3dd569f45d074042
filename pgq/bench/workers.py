"""Real `pgq worker` processes running the bench app against the bench database."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

APP = "pgq.bench.tasks:app"


@contextlib.contextmanager
def worker_processes(
    dsn: str,
    count: int,
    concurrency: int,
    options: Sequence[str] = (),
    *,
    lag_dir: Path | None = None,
    module: str | None = None,
    env: Mapping[str, str] | None = None,
) -> Iterator[list[subprocess.Popen[bytes]]]:
    """Start ``count`` worker processes (logging at WARNING, with ``options`` added); SIGTERM them on exit.

    They are ``pgq worker`` processes, or with ``lag_dir`` the same worker with a lag
    probe (``pgq.bench.worker_main``, which takes no other options), whose samples land
    in ``lag_dir`` at exit. A benchmark script's own variant of that worker is
    ``module`` (run as ``python -m module --worker``), with ``env`` added."""
    env = {**os.environ, **(env or {}), "DATABASE_URL": dsn}
    command = [sys.executable, "-m", "pgq", "--log-level", "WARNING", "worker", "--app", APP]
    if lag_dir is not None:
        env["PGQ_BENCH_LAG_DIR"] = str(lag_dir)
        command = [sys.executable, "-m", "pgq.bench.worker_main"]
    if module is not None:
        command = [sys.executable, "-m", module, "--worker"]
    procs = [
        subprocess.Popen([*command, "--concurrency", str(concurrency), *options], env=env, stdin=subprocess.DEVNULL)
        for _ in range(count)
    ]
    try:
        yield procs
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def check_alive(procs: list[subprocess.Popen[bytes]]) -> None:
    """Raise if a worker process died (a bench that waits on a dead worker would hang)."""
    for proc in procs:
        if proc.poll() is not None:
            raise RuntimeError(f"a bench worker process exited early with status {proc.returncode}")
