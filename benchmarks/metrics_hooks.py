"""What worker metrics cost per job, in CPU: the three hooks a job passes through
(``started``, ``ran``, ``recorded``) and the two per claim and outcome batch, with
metrics off (``NO_METRICS``) and on (``WorkerMetrics``), and what one scrape costs.

    .venv/bin/python -m benchmarks.metrics_hooks [--calls 200000] [--repeat 5]

No database: it times the hooks themselves (best of --repeat runs), the cost a worker
pays on its event loop whether or not anyone scrapes. `pgq bench --only metrics` gives
the end-to-end view (a drain with metrics off and on, alternating).
"""

from __future__ import annotations

import argparse
import datetime as dt
import time

from prometheus_client import generate_latest

from pgq.job import Job, JobState
from pgq.worker.executor import Outcome
from pgq.worker.metrics import NO_METRICS, NoMetrics, WorkerMetrics


def _job() -> Job:
    now = dt.datetime.now(dt.UTC)
    values: dict[str, object] = {
        "id": 1,
        "queue": "default",
        "task": "noop",
        "args": {},
        "state": JobState.RUNNING,
        "priority": 0,
        "run_at": now - dt.timedelta(milliseconds=3),
        "attempt": 1,
        "max_attempts": 5,
        "errors": [],
        "created_at": now,
        "started_at": now,
        "heartbeat_at": now,
        "worker_id": "bench",
        "has_dependents": False,
    }
    return Job(**{name: values.get(name) for name in Job.__dataclass_fields__})  # type: ignore[arg-type]


def per_job_us(metrics: NoMetrics, job: Job, calls: int, repeat: int) -> float:
    outcome = Outcome(succeeded=True)
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        for _ in range(calls):
            metrics.started(job)
            metrics.ran(job, 0.001)
            metrics.recorded(job, outcome)
        best = min(best, time.perf_counter() - start)
    return best / calls * 1e6


def per_batch_us(metrics: NoMetrics, calls: int, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        for _ in range(calls):
            metrics.claimed(60, 0.001)
            metrics.written(60, 0.002)
        best = min(best, time.perf_counter() - start)
    return best / calls * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--calls", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    job = _job()
    on = WorkerMetrics(["noop"], "bench")
    for name, metrics in (("off", NO_METRICS), ("on", on)):
        job_us = per_job_us(metrics, job, args.calls, args.repeat)
        batch_us = per_batch_us(metrics, args.calls, args.repeat)
        print(f"metrics {name:3}: {job_us:5.2f} µs per job, {batch_us:5.2f} µs per claim + outcome batch")
    start = time.perf_counter()
    size = len(generate_latest(on.registry))
    print(f"one scrape: {(time.perf_counter() - start) * 1000:.2f} ms, {size} bytes")


if __name__ == "__main__":
    main()
