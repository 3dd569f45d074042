"""Prometheus metrics (prometheus-client): queue depth and age from the database at
scrape time, finished jobs seen by this process's listener, and request latency.

Each API app has its own registry, so several apps in one process do not collide.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from pgq.api.auth import Auth
from pgq.api.auth import Scope as AuthScope
from pgq.api.reads import Reads
from pgq.api.subscriptions import JobChange
from pgq.monitoring import QueueStats

KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "CONNECT", "TRACE"})
"""Request methods kept as label values; any other string is counted as "other"."""


class _QueueCollector(Collector):
    """Reports the queue statistics read just before the scrape is rendered."""

    def __init__(self) -> None:
        self.stats: list[QueueStats] = []

    def collect(self) -> Iterator[Metric]:
        depth = GaugeMetricFamily(
            "pgq_queue_jobs", "Jobs per queue and state (final states may be estimated).", labels=["queue", "state"]
        )
        age = GaugeMetricFamily(
            "pgq_queue_oldest_queued_age_seconds",
            "How long the oldest ready job has waited (no sample while nothing waits).",
            labels=["queue"],
        )
        recent = GaugeMetricFamily(
            "pgq_queue_finished_last_minute",
            "Jobs that reached a final state in the last minute.",
            labels=["queue", "state"],
        )
        for s in self.stats:
            for state, count in s.counts.items():
                depth.add_metric([s.queue, state], count)
            if s.oldest_queued_seconds is not None:  # nothing waiting: no sample, as JSON says null
                age.add_metric([s.queue], s.oldest_queued_seconds)
            for state, count in s.finished_last_minute.items():
                recent.add_metric([s.queue, state], count)
        paused = GaugeMetricFamily("pgq_queue_paused", "1 while the queue is paused, else 0.", labels=["queue"])
        for s in self.stats:
            paused.add_metric([s.queue], 1.0 if s.paused else 0.0)
        yield from (depth, age, recent, paused)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self._queues = _QueueCollector()
        self.registry.register(self._queues)
        self.finished = Counter(
            "pgq_jobs_finished",
            "Jobs this API process saw reach a final state (from pgq_job_events) since it started.",
            ["queue", "state"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "pgq_api_request_duration_seconds",
            "API request latency by route template (wait and events last as long as they follow the job).",
            ["method", "route", "status"],
            registry=self.registry,
        )

    def on_change(self, change: JobChange) -> None:
        """Called for every job change notification: counts finished and failed jobs."""
        if change.state in {"succeeded", "failed", "cancelled"}:
            self.finished.labels(change.queue, change.state).inc()

    def render(self, stats: list[QueueStats]) -> bytes:
        self._queues.stats = stats
        return generate_latest(self.registry)

    def middleware(self, app: ASGIApp) -> ASGIApp:
        """Pure ASGI (no response buffering): times each request, labelled by route template."""

        async def timed(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != "http":
                await app(scope, receive, send)
                return
            started = time.perf_counter()
            status = [500]

            async def capture(message: Message) -> None:
                if message["type"] == "http.response.start":
                    status[0] = int(message["status"])
                await send(message)

            try:
                await app(scope, receive, capture)
            finally:
                # Label values an anonymous caller chooses must come from a bounded set.
                route = scope.get("route")
                template = getattr(route, "path", None) or "unmatched"
                method = scope["method"] if scope["method"] in KNOWN_METHODS else "other"
                self.latency.labels(method, template, str(status[0])).observe(time.perf_counter() - started)

        return timed

    def routes(self, reads: Reads, auth: Auth) -> list[Route]:
        @auth.require(AuthScope.READ)
        async def metrics(request: Request) -> Response:
            stats = await reads.read(request, lambda app: app.queue_stats())
            return Response(self.render(stats), media_type=CONTENT_TYPE_LATEST)

        return [Route("/metrics", metrics, methods=["GET"])]
