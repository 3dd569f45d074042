"""pgq next to procrastinate and PgQueuer, the same workloads, interleaved.

    python3 -m venv .venv-peers && .venv-peers/bin/pip install -e . -r benchmarks/requirements-peers.txt
    DATABASE_URL=postgresql://postgres@127.0.0.1/postgres .venv-peers/bin/python -m benchmarks.peers --rounds 3

The peers live in a venv of their own: PgQueuer installs a console script also named
`pgq`, which would replace pgq's own in the development venv.

Each round runs pgq, procrastinate, PgQueuer in turn, each in a fresh database of its
own: enqueue one-per-call, bulk enqueue, a drain of pre-enqueued no-op jobs by one
worker process at concurrency 10, and idle wake-up latency (producer clock before
enqueue → worker clock at task start). Every library is used through its normal
enqueue and worker API, with logging at WARNING. The drain is timed inside the worker
process, from the first task start to the last, the same way for all three. Prints
the medians over the rounds and each peer as a ratio to pgq. A library that cannot be
imported or run is reported and skipped.
"""

from __future__ import annotations

import abc
import argparse
import asyncio
import contextlib
import json
import logging
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from pgq import App
from pgq.bench.database import fresh_database
from pgq.bench.stats import percentile

log = logging.getLogger("benchmarks.peers")

TASK = "noop"
WORKER_TIMEOUT = 600.0


# -- what runs inside a worker process ------------------------------------------------


class Tally:
    """Counts task runs inside the worker; stops it after ``expected`` and writes a summary."""

    def __init__(self, expected: int, out: Path, stop: Callable[[], None] | None = None) -> None:
        self.expected, self.out, self.stop = expected, out, stop
        self.count = 0
        self.first = self.last = 0.0
        self.latencies_ms: list[float] = []

    def hit(self, enqueued_at: float | None) -> None:
        now = time.time()
        if enqueued_at:
            self.latencies_ms.append((now - enqueued_at) * 1000)
        self.count += 1
        self.first = self.first or now
        self.last = now
        if self.count == 1:
            self.out.with_suffix(".warm").touch()  # the producer's "worker is up" signal
        if self.count == self.expected:
            summary = {"count": self.count, "first": self.first, "last": self.last, "latencies_ms": self.latencies_ms}
            self.out.write_text(json.dumps(summary))
            if self.stop is not None:
                self.stop()


async def _work_pgq(dsn: str, tally: Tally, concurrency: int) -> None:
    from pgq.worker import Worker

    app = App(dsn)

    @app.task(name=TASK, max_attempts=1)
    async def noop(enqueued_at: float | None = None) -> None:
        tally.hit(enqueued_at)

    worker = Worker(app, concurrency=concurrency)
    tally.stop = worker.stop
    await worker.run()


async def _work_procrastinate(dsn: str, tally: Tally, concurrency: int) -> None:
    app = _procrastinate_app(dsn, tally)
    async with app.open_async():
        run = asyncio.create_task(app.run_worker_async(concurrency=concurrency, install_signal_handlers=False))

        def stop() -> None:
            run.cancel()

        tally.stop = stop
        with contextlib.suppress(asyncio.CancelledError):
            await run


async def _work_pgqueuer(dsn: str, tally: Tally, concurrency: int) -> None:
    import psycopg
    from pgqueuer import PgQueuer
    from pgqueuer.db import PsycopgDriver
    from pgqueuer.models import Job

    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        pgqueuer = PgQueuer(PsycopgDriver(conn))

        @pgqueuer.entrypoint(TASK)
        async def noop(job: Job) -> None:
            tally.hit(json.loads(job.payload)["enqueued_at"] if job.payload else None)

        tally.stop = pgqueuer.shutdown.set
        await pgqueuer.run(batch_size=concurrency)


def _procrastinate_app(dsn: str, tally: Tally | None = None) -> Any:
    import procrastinate

    app = procrastinate.App(connector=procrastinate.PsycopgConnector(conninfo=dsn))

    @app.task(name=TASK)
    async def noop(enqueued_at: float | None = None) -> None:
        if tally is not None:
            tally.hit(enqueued_at)

    return app


_WORKERS: dict[str, Callable[[str, Tally, int], Coroutine[Any, Any, None]]] = {
    "pgq": _work_pgq,
    "procrastinate": _work_procrastinate,
    "pgqueuer": _work_pgqueuer,
}


def worker_main(library: str, dsn: str, expected: int, concurrency: int, out: str) -> None:
    logging.basicConfig(level=logging.WARNING)
    asyncio.run(_WORKERS[library](dsn, Tally(expected, Path(out)), concurrency))


# -- the producer side, one class per library -----------------------------------------


class Library(abc.ABC):
    name: str

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn

    @abc.abstractmethod
    async def install(self) -> None: ...

    @abc.abstractmethod
    async def enqueue(self, enqueued_at: float | None = None) -> None: ...

    @abc.abstractmethod
    async def enqueue_batch(self, count: int) -> None: ...

    async def close(self) -> None:
        return None


class Pgq(Library):
    name = "pgq"

    async def install(self) -> None:
        from pgq.migrate import migrate

        migrate(self.dsn)
        self.app = App(self.dsn)
        await self.app.open()

    async def enqueue(self, enqueued_at: float | None = None) -> None:
        await self.app.enqueue(TASK, {"enqueued_at": enqueued_at} if enqueued_at else None)

    async def enqueue_batch(self, count: int) -> None:
        await self.app.enqueue_many([{"task": TASK}] * count)

    async def close(self) -> None:
        await self.app.close()


class Procrastinate(Library):
    name = "procrastinate"

    async def install(self) -> None:
        self.app = _procrastinate_app(self.dsn)
        await self.app.open_async()
        await self.app.schema_manager.apply_schema_async()
        self.task = self.app.tasks[TASK]

    async def enqueue(self, enqueued_at: float | None = None) -> None:
        if enqueued_at:
            await self.task.defer_async(enqueued_at=enqueued_at)
        else:
            await self.task.defer_async()

    async def enqueue_batch(self, count: int) -> None:
        await self.task.batch_defer_async(*([{}] * count))

    async def close(self) -> None:
        await self.app.close_async()


class PgQueuerLib(Library):
    name = "pgqueuer"

    async def install(self) -> None:
        import psycopg
        from pgqueuer.db import PsycopgDriver
        from pgqueuer.queries import Queries

        self.conn = await psycopg.AsyncConnection.connect(self.dsn, autocommit=True)
        self.queries = Queries(PsycopgDriver(self.conn))
        await self.queries.install()

    async def enqueue(self, enqueued_at: float | None = None) -> None:
        payload = json.dumps({"enqueued_at": enqueued_at}).encode() if enqueued_at else None
        await self.queries.enqueue(TASK, payload)

    async def enqueue_batch(self, count: int) -> None:
        await self.queries.enqueue([TASK] * count, [None] * count, [0] * count)

    async def close(self) -> None:
        await self.conn.close()


LIBRARIES: dict[str, type[Library]] = {"pgq": Pgq, "procrastinate": Procrastinate, "pgqueuer": PgQueuerLib}


def available(name: str) -> str | None:
    """None if the library can be imported, else why not."""
    module = {"pgq": "pgq", "procrastinate": "procrastinate", "pgqueuer": "pgqueuer"}[name]
    try:
        __import__(module)
    except ImportError as exc:
        return (
            f"cannot import {module} ({exc}); run the peers in a venv of their own: "
            "pip install -e . -r benchmarks/requirements-peers.txt"
        )
    return None


# -- workloads --------------------------------------------------------------------------


class WorkerProcess:
    """One worker process of a library, stopping by itself after ``expected`` tasks."""

    def __init__(self, library: str, dsn: str, expected: int, concurrency: int, out: Path) -> None:
        self.out = out
        command = [sys.executable, "-m", "benchmarks.peers", "--worker", library, str(expected), str(concurrency)]
        self.proc = subprocess.Popen(
            [*command, str(out)],
            cwd=Path(__file__).resolve().parent.parent,
            env={**os.environ, "PGQ_PEERS_DSN": dsn},  # not on the command line: it may hold a password
        )

    async def wait_for(self, path: Path) -> None:
        deadline = time.monotonic() + WORKER_TIMEOUT
        while not await asyncio.to_thread(path.exists):
            if self.proc.poll() is not None:
                raise RuntimeError(f"worker process exited with status {self.proc.returncode}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"worker did not write {path.name} in {WORKER_TIMEOUT:.0f} s")
            await asyncio.sleep(0.02)

    async def summary(self) -> dict[str, Any]:
        await self.wait_for(self.out)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        return dict(json.loads(self.out.read_text()))

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


async def run_library(name: str, dsn: str, o: argparse.Namespace, scratch: Path) -> dict[str, float]:
    lib = LIBRARIES[name](dsn)
    scratch = Path(tempfile.mkdtemp(dir=scratch))  # fresh per run: the worker signals by creating files
    await lib.install()
    out: dict[str, float] = {}
    try:
        start = time.perf_counter()
        for _ in range(o.one):
            await lib.enqueue()
        out["enqueue_one"] = o.one / (time.perf_counter() - start)

        start = time.perf_counter()
        for offset in range(0, o.jobs, o.batch):
            await lib.enqueue_batch(min(o.batch, o.jobs - offset))
        out["enqueue_bulk"] = o.jobs / (time.perf_counter() - start)

        # The drain: everything enqueued so far, one worker process at concurrency C.
        total = o.one + o.jobs
        worker = WorkerProcess(name, dsn, total, o.concurrency, scratch / f"{name}-drain.json")
        try:
            summary = await worker.summary()
        finally:
            worker.kill()
        out["drain"] = (summary["count"] - 1) / (summary["last"] - summary["first"])

        # Idle wake-up: a warm-up job, then one job at a time with the worker idle.
        worker = WorkerProcess(name, dsn, o.samples + 1, o.concurrency, scratch / f"{name}-latency.json")
        try:
            await lib.enqueue()
            await worker.wait_for(worker.out.with_suffix(".warm"))
            for _ in range(o.samples):
                await lib.enqueue(enqueued_at=time.time())
                await asyncio.sleep(o.spacing)
            latencies = (await worker.summary())["latencies_ms"]
        finally:
            worker.kill()
        out["wakeup_p50_ms"] = percentile(latencies, 50)
        out["wakeup_p99_ms"] = percentile(latencies, 99)
    finally:
        await lib.close()
    return out


METRICS = [
    ("enqueue_one", "enqueue one-per-call", "jobs/s", True),
    ("enqueue_bulk", "enqueue bulk", "jobs/s", True),
    ("drain", "drain (1 process)", "jobs/s", True),
    ("wakeup_p50_ms", "idle wake-up p50", "ms", False),
    ("wakeup_p99_ms", "idle wake-up p99", "ms", False),
]


def report(runs: dict[str, list[dict[str, float]]], skipped: dict[str, str]) -> dict[str, Any]:
    medians = {
        lib: {key: statistics.median(r[key] for r in rounds) for key, *_ in METRICS}
        for lib, rounds in runs.items()
        if rounds
    }
    ratios: dict[str, dict[str, float]] = {}
    if "pgq" in medians:
        for lib, values in medians.items():
            # How many times better pgq is: rates pgq ÷ peer, latencies peer ÷ pgq.
            ratios[lib] = {
                key: (medians["pgq"][key] / values[key] if higher_is_better else values[key] / medians["pgq"][key])
                for key, _, _, higher_is_better in METRICS
            }
    return {
        "rounds": {lib: len(r) for lib, r in runs.items()},
        "medians": medians,
        "pgq_advantage": ratios,
        "skipped": skipped,
    }


def format_report(result: dict[str, Any], options: argparse.Namespace) -> str:
    libs = list(result["medians"])
    rows = [["workload", *libs, *(f"pgq vs {lib}" for lib in libs if lib != "pgq")]]
    for key, label, unit, _ in METRICS:
        cells = [label]
        for lib in libs:
            value = result["medians"][lib][key]
            cells.append(f"{value:,.0f} {unit}" if unit == "jobs/s" else f"{value:.2f} {unit}")
        for lib in libs:
            if lib != "pgq":
                cells.append(f"{result['pgq_advantage'][lib][key]:.2f}x" if "pgq" in result["medians"] else "-")
        rows.append(cells)
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    lines.insert(1, "-" * len(lines[0]))
    lines.append("")
    lines.append(
        f"medians of {options.rounds} interleaved round(s); one-per-call {options.one} jobs, bulk {options.jobs} "
        f"in batches of {options.batch}, drain of all of them at concurrency {options.concurrency}, "
        f"{options.samples} wake-up samples; 'pgq vs X' > 1 means pgq is better"
    )
    lines.extend(f"skipped {lib}: {why}" for lib, why in result["skipped"].items())
    return "\n".join(lines)


async def main_async(o: argparse.Namespace, server_dsn: str) -> dict[str, Any]:
    libs = [lib.strip() for lib in o.libraries.split(",")]
    skipped = {lib: why for lib in libs if (why := available(lib))}
    runs: dict[str, list[dict[str, float]]] = {lib: [] for lib in libs if lib not in skipped}
    scratch = Path(tempfile.mkdtemp(prefix="pgq-peers-"))
    try:
        for round_no in range(1, o.rounds + 1):
            for lib in list(runs):
                if lib in skipped:
                    continue
                print(f"round {round_no}/{o.rounds}: {lib} ...", file=sys.stderr, flush=True)
                try:
                    with fresh_database(server_dsn, f"pgq_peers_{lib}", migrate=False) as dsn:
                        runs[lib].append(await run_library(lib, dsn, o, scratch))
                except Exception as exc:  # noqa: BLE001 - a peer that cannot run is reported, not fatal
                    skipped[lib] = f"failed: {type(exc).__name__}: {exc}"
                    print(f"  {lib} failed, skipping it: {skipped[lib]}", file=sys.stderr)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return report({lib: r for lib, r in runs.items() if r}, skipped)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks.peers", description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=3, help="interleaved rounds; medians are reported (default 3)")
    p.add_argument("-n", "--jobs", type=int, default=10_000, help="bulk-enqueued jobs (default 10000)")
    p.add_argument("--one", type=int, default=1_000, help="jobs enqueued one per call (default 1000)")
    p.add_argument("--batch", type=int, default=1_000, help="jobs per bulk call (default 1000)")
    p.add_argument("--concurrency", type=int, default=10, help="worker concurrency (default 10)")
    p.add_argument("--samples", type=int, default=100, help="idle wake-up latency samples (default 100)")
    p.add_argument("--spacing", type=float, default=0.02, help="seconds between latency samples (default 0.02)")
    p.add_argument("--libraries", default="pgq,procrastinate,pgqueuer", help="which, in round order")
    p.add_argument("--json", action="store_true")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = argv if argv is not None else sys.argv[1:]
    if args[:1] == ["--worker"]:
        library, expected, concurrency, out = args[1:5]
        worker_main(library, os.environ["PGQ_PEERS_DSN"], int(expected), int(concurrency), out)
        return 0
    logging.basicConfig(level=logging.WARNING)
    options = parse_args(args)
    server_dsn = App().dsn
    result = asyncio.run(main_async(options, server_dsn))
    print(json.dumps(result, indent=2) if options.json else format_report(result, options))
    return 0


if __name__ == "__main__":
    sys.exit(main())
