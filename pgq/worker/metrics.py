"""What a worker does, as Prometheus metrics (``pgq worker --metrics-port N``).

The API's ``/metrics`` says what the tables hold; these say what one worker process
does: how long each task runs, how it ends, how long jobs waited, how the claims and the
outcome writes go, whether the heartbeat and LISTEN are healthy, and how late its event
loop runs. Cheap when nobody scrapes: without a port the worker holds ``NO_METRICS``,
whose hooks do nothing; with one, a job costs two dict lookups, two bucket increments
and a counter (about 1.5 µs), and everything is turned into Prometheus metrics only when
scraped: the gauges (jobs in flight, claimed ahead, listener up) are read from the
worker's state then.

Label values are bounded: ``task`` is a task the app registers (any other name a row
carries is counted as ``_unknown``) and ``queue`` one the worker serves.
"""

from __future__ import annotations

import bisect
import time
from collections.abc import Callable, Collection, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
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


class Histogram:
    """Bucket counts and a sum, added to on the worker's loop and read when scraped.

    Not prometheus_client's Histogram: its ``observe`` takes a lock and costs about
    2 µs, a bisect and two additions cost a tenth of that. Only the loop's thread
    writes; a scrape that reads mid-update is off by one observation at most.
    """

    __slots__ = ("bounds", "counts", "sum")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.bounds, value)] += 1  # le is inclusive
        self.sum += value

    def buckets(self) -> list[tuple[str, float]]:
        out, total = [], 0
        for bound, count in zip((*map(str, self.bounds), "+Inf"), self.counts, strict=True):
            total += count
            out.append((bound, float(total)))
        return out


class WorkerMetrics(NoMetrics):
    """The hooks, counting into plain numbers that one collector exposes when scraped."""

    enabled = True

    def __init__(self, tasks: Collection[str], worker_id: str, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.worker_id = worker_id
        self._tasks = frozenset(tasks)
        self.durations: dict[tuple[str, str], Histogram] = {}
        self.outcomes: dict[tuple[str, str], int] = {}
        self.waits: dict[str, Histogram] = {}
        self.claims = self.claimed_jobs = self.blocks = self.heartbeat_failures = 0
        self.last_heartbeat: float | None = None
        self.claim_size, self.claim_latency = Histogram(SIZE_BUCKETS), Histogram(LAG_BUCKETS)
        self.batch_size, self.write_latency = Histogram(SIZE_BUCKETS), Histogram(LAG_BUCKETS)
        self.lag = Histogram(LAG_BUCKETS)
        self.readings: dict[str, tuple[str, Callable[[], float | None]]] = {}
        self.registry.register(_Exposition(self))
        self._server: Any = None

    def watch(self, readings: dict[str, tuple[str, Callable[[], float | None]]]) -> None:
        """Values read at scrape time: name -> (help, read); a name ending in _total is a
        counter; a reading of None shows no sample."""
        self.readings = readings

    def serve(self, port: int, host: str = "0.0.0.0") -> int:  # noqa: S104 - Prometheus scrapes from elsewhere
        """Serve /metrics on a daemon thread; return the port (the one chosen when 0)."""
        self._server, _ = start_http_server(port, host, registry=self.registry)
        return int(self._server.server_port)

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def started(self, job: Job) -> None:
        if job.started_at is not None:
            wait = self.waits.get(job.queue)
            if wait is None:
                wait = self.waits[job.queue] = Histogram(DURATION_BUCKETS)
            wait.observe(max((job.started_at - job.run_at).total_seconds(), 0.0))

    def ran(self, job: Job, seconds: float) -> None:
        key = (job.task if job.task in self._tasks else UNKNOWN_TASK, job.queue)
        duration = self.durations.get(key)
        if duration is None:
            duration = self.durations[key] = Histogram(DURATION_BUCKETS)
        duration.observe(seconds)

    def recorded(self, job: Job, outcome: Outcome) -> None:
        key = (job.task if job.task in self._tasks else UNKNOWN_TASK, outcome_label(outcome))
        self.outcomes[key] = self.outcomes.get(key, 0) + 1

    def claimed(self, jobs: int, seconds: float) -> None:
        self.claims += 1
        self.claimed_jobs += jobs
        self.claim_size.observe(jobs)
        self.claim_latency.observe(seconds)

    def written(self, outcomes: int, seconds: float) -> None:
        self.batch_size.observe(outcomes)
        self.write_latency.observe(seconds)

    def loop_lag(self, seconds: float) -> None:
        self.lag.observe(seconds)

    def loop_blocked(self) -> None:
        self.blocks += 1

    def heartbeat(self, ok: bool) -> None:
        if ok:
            self.last_heartbeat = time.time()
        else:
            self.heartbeat_failures += 1


def _histogram(name: str, doc: str, labels: list[str], series: dict[Any, Histogram]) -> HistogramMetricFamily:
    family = HistogramMetricFamily(name, doc, labels=labels)
    for key, histogram in list(series.items()):
        values = list(key) if isinstance(key, tuple) else [key]
        family.add_metric(values, histogram.buckets(), sum_value=histogram.sum)
    return family


class _Exposition(Collector):
    """Everything a worker's /metrics shows, built from its numbers when scraped."""

    def __init__(self, m: WorkerMetrics) -> None:
        self.m = m

    def collect(self) -> Iterator[Metric]:
        m = self.m
        info = GaugeMetricFamily("pgq_worker_info", "This worker process (value 1).", labels=["worker_id"])
        info.add_metric([m.worker_id], 1)
        yield info
        yield _histogram(
            "pgq_job_duration_seconds",
            "Time a task ran, per attempt (queue wait not included).",
            ["task", "queue"],
            m.durations,
        )
        outcomes = CounterMetricFamily(
            "pgq_job_outcomes", "Attempts recorded, by how they ended.", labels=["task", "outcome"]
        )
        for (task, label), count in list(m.outcomes.items()):
            outcomes.add_metric([task, label], count)
        yield outcomes
        yield _histogram(
            "pgq_job_queue_wait_seconds", "Time from a job's run_at to its attempt's start.", ["queue"], m.waits
        )
        yield CounterMetricFamily("pgq_worker_claims", "Claim statements run.", value=m.claims)
        yield CounterMetricFamily("pgq_worker_claimed_jobs", "Jobs claimed.", value=m.claimed_jobs)
        for name, doc, histogram in (
            ("pgq_worker_claim_size_jobs", "Jobs per claim statement.", m.claim_size),
            ("pgq_worker_claim_seconds", "Time of one claim statement.", m.claim_latency),
            ("pgq_worker_outcome_batch_size_jobs", "Outcomes per write.", m.batch_size),
            ("pgq_worker_outcome_write_seconds", "Time of one outcome batch write.", m.write_latency),
            ("pgq_worker_event_loop_lag_seconds", "How late the event loop ran a timer (sampled every 0.1 s).", m.lag),
        ):
            yield _histogram(name, doc, [], {(): histogram})
        yield CounterMetricFamily(
            "pgq_worker_event_loop_blocked", "Times the event loop was held past the warning threshold.", value=m.blocks
        )
        yield CounterMetricFamily(
            "pgq_worker_heartbeat_failures", "Heartbeats that failed.", value=m.heartbeat_failures
        )
        if m.last_heartbeat is not None:
            yield GaugeMetricFamily(
                "pgq_worker_heartbeat_last_success_timestamp_seconds",
                "Unix time of the last heartbeat the database accepted.",
                value=m.last_heartbeat,
            )
        for name, (doc, read) in m.readings.items():
            value = read()
            if value is not None:
                family = CounterMetricFamily if name.endswith("_total") else GaugeMetricFamily
                yield family(name.removesuffix("_total"), doc, value=value)


def worker_metrics(port: int | None, tasks: Collection[str], worker_id: str) -> NoMetrics:
    """``NO_METRICS`` without a port; a ``WorkerMetrics`` (not serving yet) with one."""
    return NO_METRICS if port is None else WorkerMetrics(tasks, worker_id)
