"""How soon ``await app.wait(job_id)`` returns after its job finishes: LISTEN vs polling only.

    DATABASE_URL=postgresql://postgres@127.0.0.1/postgres .venv/bin/python -m benchmarks.wait_wakeup

In a throwaway database a real `pgq worker` process runs ``nap`` jobs that sleep a
random 0.2-1.2 s (so a job ends at a random point of a poll interval). This process
enqueues one job at a time and waits for it, --samples times per mode: first with the
App's shared waiter (woken by the pgq_job_events notification), then with a waiter that
never listens and reads the row every --poll seconds (what a wait falls back to while
LISTEN is down). Latency is from the job's ``finished_at`` (the start of the worker's
completing transaction, same host, same clock) to ``wait()`` having returned the final
row; it includes that transaction's commit. Prints p50/p90/max/mean and the row reads
per wait of each mode.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path

import pgq
from pgq import waiting
from pgq.bench.database import fresh_database

app = pgq.App()
"""The worker's app (``--app benchmarks.wait_wakeup:app``); DATABASE_URL says where."""


@app.task
async def nap(seconds: float) -> float:
    await asyncio.sleep(seconds)
    return seconds


def _percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


async def _measure(queue: pgq.App, waiter: waiting.JobWaiter, samples: int) -> tuple[list[float], float]:
    """Latencies in ms, and row reads per wait."""
    latencies: list[float] = []
    reads_before = waiter.reads
    for _ in range(samples):
        job = await queue.enqueue("nap", {"seconds": round(random.uniform(0.2, 1.2), 3)})
        done = await waiter.wait(queue, job.id, timeout=60)
        returned = time.time()
        if done.finished_at is None or done.state is not pgq.JobState.SUCCEEDED:
            raise RuntimeError(f"job {done.id} ended {done.state}: {done.errors}")
        latencies.append(max(0.0, returned - done.finished_at.timestamp()) * 1000)
    return latencies, (waiter.reads - reads_before) / samples


def _line(name: str, latencies: list[float], reads: float) -> str:
    return (
        f"{name:<22} p50 {_percentile(latencies, 50):8.1f} ms   p90 {_percentile(latencies, 90):8.1f} ms   "
        f"max {max(latencies):8.1f} ms   mean {statistics.fmean(latencies):8.1f} ms   reads/wait {reads:.1f}"
    )


async def _run(dsn: str, samples: int, poll: float) -> None:
    async with pgq.App(dsn, settings=pgq.Settings()) as queue:
        shared = waiting.waiter_for(queue)
        await queue.wait((await queue.enqueue("nap", {"seconds": 0.01})).id, timeout=60)  # worker and LISTEN up
        if not shared.listening:
            raise RuntimeError("LISTEN did not come up")
        listen, listen_reads = await _measure(queue, shared, samples)
        polling = waiting.JobWaiter(queue.listen_dsn, listen=False, poll_interval=poll)
        poll_only, poll_reads = await _measure(queue, polling, samples)
    print(f"wait() wake-up after the job is final, {samples} jobs each (poll interval {poll:g}s):")
    print(_line("LISTEN (shared)", listen, listen_reads))
    print(_line("poll only", poll_only, poll_reads))
    print(f"mean ratio poll/LISTEN: {statistics.fmean(poll_only) / statistics.fmean(listen):.0f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=int, default=30, help="jobs waited for per mode")
    parser.add_argument("--poll", type=float, default=waiting.POLL_INTERVAL, help="poll-only mode's interval (s)")
    args = parser.parse_args()
    server = os.environ.get("DATABASE_URL") or "postgresql://postgres@127.0.0.1/postgres"
    with fresh_database(server, "pgq_bench_wait") as dsn:
        env = {**os.environ, "DATABASE_URL": dsn, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
        worker = subprocess.Popen(
            [sys.executable, "-m", "pgq", "worker", "--app", "benchmarks.wait_wakeup:app", "--concurrency", "2"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            asyncio.run(_run(dsn, args.samples, args.poll))
        finally:
            worker.terminate()
            worker.wait(30)


if __name__ == "__main__":
    main()
