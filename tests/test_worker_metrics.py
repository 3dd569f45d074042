"""A real `pgq worker --metrics-port` process, scraped during a run: its numbers match the table."""

from __future__ import annotations

import signal
import socket
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

import pgq
import pgq.worker
from tests.helpers import WorkerProcesses, count_rows, wait_until
from tests.test_observability_docs import base_name, documented_worker_metrics

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def scrape(port: int) -> Samples:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def answers(port: int) -> bool:
    try:
        scrape(port)
    except OSError:
        return False
    return True


@pytest.mark.slow
def test_a_scraped_worker_counts_what_the_table_holds(dsn: str, start_worker: WorkerProcesses) -> None:
    app = pgq.App(dsn)
    with app:
        app.enqueue_many_sync([{"task": "slow", "args": {"seconds": 1.5}}] * 3)
    port = free_port()
    worker = start_worker("--concurrency", "4", "--metrics-port", str(port), app="tests.apps.observed:app")
    wait_until(lambda: count_rows(dsn, "state = 'running'") == 3, 30, "three running jobs")
    wait_until(lambda: answers(port), 10, "the metrics endpoint")

    during = scrape(port)
    assert during[("pgq_worker_jobs_in_flight", ())] == count_rows(dsn, "state = 'running'") == 3
    assert during[("pgq_worker_concurrency", ())] == 4
    assert during[("pgq_worker_listener_up", ())] == 1

    with app:
        app.enqueue_many_sync(
            [{"task": "ok", "args": {"n": i}} for i in range(40)] + [{"task": "broken", "max_attempts": 2}] * 5
        )
    wait_until(lambda: count_rows(dsn, "state IN ('succeeded', 'failed')") == 48, 60, "48 final jobs")
    wait_until(lambda: scrape(port)[("pgq_worker_jobs_held", ())] == 0, 10, "every outcome recorded")
    after = scrape(port)
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(30) == 0

    for task, state, outcome in (
        ("ok", "succeeded", "succeeded"),
        ("slow", "succeeded", "succeeded"),
        ("broken", "failed", "failed"),
    ):
        in_table = count_rows(dsn, "task = %s AND state = %s", (task, state))
        assert after[("pgq_job_outcomes_total", (("outcome", outcome), ("task", task)))] == in_table
    assert count_rows(dsn, "task = 'ok'") == 40 and count_rows(dsn, "task = 'broken'") == 5
    durations = {
        task: after[("pgq_job_duration_seconds_count", (("queue", "default"), ("task", task)))]
        for task in ("ok", "slow", "broken")
    }
    assert durations == {"ok": 40, "slow": 3, "broken": 10}
    # Each broken job was retried once, then failed: the table counts its attempts.
    assert after[("pgq_job_outcomes_total", (("outcome", "retried"), ("task", "broken")))] == 5
    assert count_rows(dsn, "task = 'broken' AND attempt = 2 AND jsonb_array_length(errors) = 2") == 5
    assert after[("pgq_job_duration_seconds_sum", (("queue", "default"), ("task", "slow")))] >= 4.5
    assert after[("pgq_job_queue_wait_seconds_count", (("queue", "default"),))] == 53
    assert after[("pgq_worker_claimed_jobs_total", ())] == 53  # 48 jobs, 5 of them twice
    assert 1 <= after[("pgq_worker_claims_total", ())] <= 53
    assert after[("pgq_worker_outcome_batch_size_jobs_sum", ())] == 53
    assert (
        after[("pgq_worker_outcome_write_seconds_count", ())] == after[("pgq_worker_outcome_batch_size_jobs_count", ())]
    )
    assert after[("pgq_worker_jobs_in_flight", ())] == 0
    assert after[("pgq_worker_heartbeat_last_success_timestamp_seconds", ())] > 0
    assert after[("pgq_worker_heartbeat_failures_total", ())] == 0
    assert after[("pgq_worker_event_loop_lag_seconds_count", ())] > 0
    assert after[("pgq_worker_listener_connects_total", ())] == 1
    # The README's table lists exactly what a worker serves.
    served = {base_name(name) for name, _ in after if name.startswith("pgq_") and not name.endswith("_created")}
    assert served == documented_worker_metrics()


@pytest.mark.anyio
async def test_a_metrics_port_in_use_stops_the_worker_before_it_claims(dsn: str) -> None:
    app = pgq.App(dsn)

    @app.task
    async def quick() -> None:
        pass

    with socket.socket() as taken:
        taken.bind(("0.0.0.0", 0))
        taken.listen()
        port = taken.getsockname()[1]
        worker = pgq.worker.Worker(app, metrics_port=port)
        with pytest.raises(pgq.ConfigError, match=rf"cannot serve metrics on port {port} \(PGQ_METRICS_PORT\)"):
            await worker.run()
    assert worker._pool is None  # nothing was opened
