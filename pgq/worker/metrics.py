"""What a worker does, as Prometheus metrics (``pgq worker --metrics-port N``).

The API's ``/metrics`` says what the tables hold; these say what one worker process
does: how long each task runs, how it ends, how long jobs waited, how the claims and the
outcome writes go, whether the heartbeat and LISTEN are healthy, and how late its event
loop runs. Cheap when nobody scrapes: without a port the worker holds ``NO_METRICS``,
whose hooks do nothing; with one, a job costs a few dict lookups and three observations
on cached label children, and the gauges (jobs in flight, claimed ahead, listener up,
heartbeat age) are read from the worker's state only when Prometheus scrapes.

Label values are bounded: ``task`` is a task the app registers (any other name a row
carries is counted as ``_unknown``) and ``queue`` one the worker serves.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from pgq.job import Job
from pgq.worker.executor import Outcome, outcome_label

DURATION_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800)
LAG_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)
SIZE_BUCKETS = (1, 2, 5, 10, 25, 50, 100, 250, 500)
UNKNOWN_TASK = "_unknown"


class NoMetrics:
    """The hooks, doing nothing: what a worker without a metrics port calls."""

    enabled = False

    def started(self, job: Job) -> None:
        """A claimed job starts running (observes its wait from run_at)."""

    def ran(self, job: Job, seconds: float) -> None:
        """A job's task returned (or raised) after ``seconds``."""

    def recorded(self, job: Job, outcome: Outcome) -> None:
        """A job's outcome was written."""

    def claimed(self, jobs: int, seconds: float) -> None:
        """One claim statement took ``jobs`` jobs in ``seconds``."""

    def written(self, outcomes: int, seconds: float) -> None:
        """One outcome batch of ``outcomes`` was written in ``seconds``."""

    def loop_lag(self, seconds: float) -> None:
        """The event loop ran a timer ``seconds`` late."""

    def loop_blocked(self) -> None:
        """Something held the event loop past the warning threshold."""

    def heartbeat(self, ok: bool) -> None:
        """A heartbeat was sent (or failed)."""

    def close(self) -> None:
        """Stop serving (the worker stops)."""


NO_METRICS = NoMetrics()


class WorkerState(Collector):
    """Gauges read from the worker when scraped: nothing is paid between scrapes."""

    def __init__(self, readings: dict[str, tuple[str, Callable[[], float]]]) -> None:
        self.readings = readings
        self.heartbeat_failures = 0
        self.last_heartbeat: float | None = None

    def collect(self) -> Iterator[Metric]:
        for name, (doc, read) in self.readings.items():
            family = CounterMetricFamily if name.endswith("_total") else GaugeMetricFamily
            yield family(name.removesuffix("_total"), doc, value=read())
        yield CounterMetricFamily(
            "pgq_worker_heartbeat_failures", "Heartbeats that failed.", value=self.heartbeat_failures
        )
        if self.last_heartbeat is not None:
            yield GaugeMetricFamily(
                "pgq_worker_heartbeat_last_success_timestamp_seconds",
                "Unix time of the last heartbeat the database accepted.",
                value=self.last_heartbeat,
            )


class WorkerMetrics(NoMetrics):
    """The hooks, counting, in a registry of this worker's own."""

    enabled = True

    def __init__(self, tasks: Collection[str], worker_id: str, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self._tasks = frozenset(tasks)
        r = self.registry
        Gauge("pgq_worker_info", "This worker process (value 1).", ["worker_id"], registry=r).labels(worker_id).set(1)
        self.duration = Histogram(
            "pgq_job_duration_seconds",
            "Time a task ran, per attempt (queue wait not included).",
            ["task", "queue"],
            buckets=DURATION_BUCKETS,
            registry=r,
        )
        self.outcomes = Counter(
            "pgq_job_outcomes", "Attempts recorded, by how they ended.", ["task", "outcome"], registry=r
        )
        self.wait = Histogram(
            "pgq_job_queue_wait_seconds",
            "Time from a job's run_at to the start of its attempt.",
            ["queue"],
            buckets=DURATION_BUCKETS,
            registry=r,
        )
        self.claims = Counter("pgq_worker_claims", "Claim statements run.", registry=r)
        self.claimed_jobs = Counter("pgq_worker_claimed_jobs", "Jobs claimed.", registry=r)
        self.claim_size = Histogram(
            "pgq_worker_claim_size_jobs", "Jobs per claim statement.", buckets=SIZE_BUCKETS, registry=r
        )
        self.claim_latency = Histogram(
            "pgq_worker_claim_seconds", "Time of one claim statement.", buckets=LAG_BUCKETS, registry=r
        )
        self.batch_size = Histogram(
            "pgq_worker_outcome_batch_size_jobs", "Outcomes per write.", buckets=SIZE_BUCKETS, registry=r
        )
        self.write_latency = Histogram(
            "pgq_worker_outcome_write_seconds", "Time of one outcome batch write.", buckets=LAG_BUCKETS, registry=r
        )
        self.lag = Histogram(
            "pgq_worker_event_loop_lag_seconds",
            "How late the event loop ran a timer (sampled a few times a second).",
            buckets=LAG_BUCKETS,
            registry=r,
        )
        self.blocks = Counter(
            "pgq_worker_event_loop_blocked", "Times the event loop was held past the warning threshold.", registry=r
        )
        self.state = WorkerState({})
        self._children: dict[tuple[str, str], Any] = {}
        self._server: Any = None

    def watch(self, readings: dict[str, tuple[str, Callable[[], float]]]) -> None:
        """Gauges read at scrape time: name -> (help, read)."""
        self.state.readings = readings
        self.registry.register(self.state)

    def serve(self, port: int, host: str = "0.0.0.0") -> int:  # noqa: S104 - Prometheus scrapes from elsewhere
        """Serve /metrics on a daemon thread; return the port (the one chosen when 0)."""
        self._server, _ = start_http_server(port, host, registry=self.registry)
        return int(self._server.server_port)

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def _task(self, job: Job) -> str:
        return job.task if job.task in self._tasks else UNKNOWN_TASK

    def _child(self, kind: str, key: str, make: Callable[[], Any]) -> Any:
        child = self._children.get((kind, key))
        if child is None:
            child = self._children[kind, key] = make()
        return child

    def started(self, job: Job) -> None:
        if job.started_at is not None:
            waited = (job.started_at - job.run_at).total_seconds()
            self._child("wait", job.queue, lambda: self.wait.labels(job.queue)).observe(max(waited, 0.0))

    def ran(self, job: Job, seconds: float) -> None:
        task = self._task(job)
        key = f"{task}\x00{job.queue}"
        self._child("ran", key, lambda: self.duration.labels(task, job.queue)).observe(seconds)

    def recorded(self, job: Job, outcome: Outcome) -> None:
        task, label = self._task(job), outcome_label(outcome)
        self._child("outcome", f"{task}\x00{label}", lambda: self.outcomes.labels(task, label)).inc()

    def claimed(self, jobs: int, seconds: float) -> None:
        self.claims.inc()
        self.claimed_jobs.inc(jobs)
        self.claim_size.observe(jobs)
        self.claim_latency.observe(seconds)

    def written(self, outcomes: int, seconds: float) -> None:
        self.batch_size.observe(outcomes)
        self.write_latency.observe(seconds)

    def loop_lag(self, seconds: float) -> None:
        self.lag.observe(seconds)

    def loop_blocked(self) -> None:
        self.blocks.inc()

    def heartbeat(self, ok: bool) -> None:
        if ok:
            self.state.last_heartbeat = time.time()
        else:
            self.state.heartbeat_failures += 1


def worker_metrics(port: int | None, tasks: Collection[str], worker_id: str) -> NoMetrics:
    """``NO_METRICS`` without a port; a ``WorkerMetrics`` (not serving yet) with one."""
    return NO_METRICS if port is None else WorkerMetrics(tasks, worker_id)
