"""Wires a worker's observability: its metrics endpoint and the event-loop lag monitor.

Kept out of ``worker.py`` so the shell only says *that* the worker is observed; the
gauges listed here are read from the worker's state when Prometheus scrapes.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from pgq.errors import ConfigError
from pgq.job import Job
from pgq.worker.loop_lag import LoopLag
from pgq.worker.metrics import WorkerMetrics

if TYPE_CHECKING:
    from pgq.worker.worker import Worker

log = logging.getLogger("pgq.worker")


def start(worker: Worker) -> LoopLag:
    """Serve the worker's metrics (with a metrics port) and return its loop-lag monitor.

    Called first in ``Worker.run``: the readings look up the completer and the listener
    when scraped (none yet: no sample)."""

    def find_job(job_id: int) -> Job | None:
        running = worker.jobs.get(job_id)
        return None if running is None else running.job

    def backlog() -> float | None:
        completer = worker._completer
        return None if completer is None else float(completer.backlog)

    def listener_up() -> float | None:
        listener = worker.listener
        return None if listener is None else float(listener.client.connected.is_set())

    def listener_connects() -> float | None:
        listener = worker.listener
        return None if listener is None else float(listener.connects)

    metrics, settings = worker.metrics, worker.settings
    if isinstance(metrics, WorkerMetrics) and settings.metrics_port is not None:
        ahead, pacing = worker._ahead, worker.pacing
        metrics.watch(
            {
                "pgq_worker_jobs_in_flight": ("Jobs whose task is running now.", lambda: float(pacing.executing)),
                "pgq_worker_jobs_claimed_ahead": ("Jobs claimed, waiting for a free slot.", lambda: float(len(ahead))),
                "pgq_worker_jobs_held": (
                    "Jobs held: claimed, running or being recorded.",
                    lambda: float(len(worker.jobs)),
                ),
                "pgq_worker_concurrency": (
                    "Jobs this worker runs at once, at most.",
                    lambda: float(settings.concurrency),
                ),
                "pgq_worker_outcome_backlog_jobs": ("Outcomes waiting to be written.", backlog),
                "pgq_worker_listener_up": (
                    "1 while the LISTEN connection is up, 0 while the worker polls.",
                    listener_up,
                ),
                "pgq_worker_listener_connects_total": (
                    "LISTEN connections made (more: it reconnected).",
                    listener_connects,
                ),
            }
        )
        try:
            port = metrics.serve(settings.metrics_port)
        except OSError as exc:
            raise ConfigError(
                f"cannot serve metrics on port {settings.metrics_port} (PGQ_METRICS_PORT): {exc}"
            ) from None
        log.info("worker %s: Prometheus metrics on port %d (/metrics)", worker.id, port)
    return LoopLag(metrics, find_job, settings.loop_block_warning)
