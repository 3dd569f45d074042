"""The worker's event-loop lag: measured, and a warning naming the job that blocks the loop."""

from __future__ import annotations

import asyncio
import json
import logging
import time

import pytest

import pgq
from pgq.logs import JsonFormatter
from pgq.worker.metrics import NO_METRICS, WorkerMetrics
from tests.conftest import ROOT
from tests.helpers import running_worker, wait_final

README = ROOT / "README.md"

pytestmark = pytest.mark.anyio


async def test_a_sync_call_in_an_async_task_shows_as_loop_lag_and_a_warning_naming_the_job(
    dsn: str, caplog: pytest.LogCaptureFixture
) -> None:
    app = pgq.App(dsn)

    @app.task
    async def blocker() -> None:
        time.sleep(0.6)  # the mistake: a blocking call on the event loop

    caplog.set_level(logging.WARNING, logger="pgq.worker")
    async with app, running_worker(app, metrics_port=0) as worker:
        job = await blocker.enqueue()
        (done,) = await wait_final(app, [job.id])
        lag = worker.loop_lag
        for _ in range(40):  # the sample taken when the loop came back
            if lag.max_lag >= 0.3:
                break
            await asyncio.sleep(0.05)
    assert done.state == "succeeded"
    assert lag.max_lag >= 0.4

    assert isinstance(worker.metrics, WorkerMetrics)
    registry = worker.metrics.registry
    count = registry.get_sample_value("pgq_worker_event_loop_lag_seconds_count")
    under = registry.get_sample_value("pgq_worker_event_loop_lag_seconds_bucket", {"le": "0.25"})
    assert count is not None and under is not None and count - under >= 1
    assert registry.get_sample_value("pgq_worker_event_loop_blocked_total") == 1

    (warning,) = [r for r in caplog.records if "blocked the event loop" in r.getMessage()]
    message = warning.getMessage()
    assert message.startswith(f"job {job.id} blocker has blocked the event loop for ")
    assert "test_loop_lag.py" in message and "in blocker" in message
    advice = message.split(": ", 1)[1]  # the README quotes the warning
    assert advice in " ".join(README.read_text(encoding="utf-8").split())
    assert getattr(warning, "job_id", None) == job.id and getattr(warning, "task", None) == "blocker"
    assert json.loads(JsonFormatter().format(warning))["worker_id"] == worker.id  # logged from the watchdog thread


async def test_a_worker_without_a_metrics_port_pays_nothing_for_metrics(dsn: str) -> None:
    app = pgq.App(dsn)

    @app.task
    async def quick() -> int:
        return 1

    async with app, running_worker(app) as worker:
        job = await quick.enqueue()
        await wait_final(app, [job.id])
    assert worker.metrics is NO_METRICS
    assert not worker.metrics.enabled
