"""`pgq bench` end to end, with tiny sizes: every workload, every ratio, no database left."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys

import pytest

from pgq.bench import BenchOptions
from pgq.bench.database import database_exists
from pgq.bench.stats import percentile
from tests.conftest import ROOT, Server, pgq_cli

EXPECTED_WORKLOADS = {
    "raw_insert_one",
    "enqueue_one",
    "raw_copy",
    "enqueue_bulk",
    "raw_claim_complete",
    "drain",
    "raw_wakeup",
    "wakeup_latency",
    "steady",
}
SCENARIO_WORKLOADS = {
    "threads",
    "mixed",
    "concurrency_10",
    "concurrency_50",
    "concurrency_200",
    "processes_1",
    "processes_2",
    "processes_4",
    "processes_8",
}
EXPECTED_RATIOS = {"enqueue_one", "enqueue_bulk", "drain", "wakeup_latency_p50", "wakeup_latency_p99"}
DRAIN_FIGURES = {"worker_cpu_us_per_job", "postgres_cpu_us_per_job", "lag_samples"}


@pytest.mark.slow
def test_bench_runs_every_workload_reports_ratios_and_drops_its_database(pg_server: Server) -> None:
    server_dsn = pg_server.dsn("postgres")
    args = ["bench", "-n", "200", "--duration", "1", "--rate", "50", "--samples", "10", "--batch", "64", "--json"]
    args += ["--rounds", "2"]
    result = pgq_cli(*args, "--scenario-jobs", "20", dsn=server_dsn, timeout=300)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert set(report["workloads"]) == EXPECTED_WORKLOADS | SCENARIO_WORKLOADS
    assert set(report["ratios"]) == EXPECTED_RATIOS | SCENARIO_WORKLOADS
    assert all(r > 0 and math.isfinite(r) for r in report["ratios"].values()), report["ratios"]
    workloads = report["workloads"]
    assert workloads["drain"]["jobs"] == 200
    # The enqueue workloads and their ceilings took turns, twice each, added up.
    assert workloads["enqueue_bulk"]["jobs"] == 400 and workloads["raw_copy"]["jobs"] == 400
    assert workloads["enqueue_one"]["rounds"] == workloads["raw_insert_one"]["rounds"] == 2
    assert workloads["enqueue_one"]["client_cpu_us_per_job"] > 0
    assert workloads["wakeup_latency"]["jobs"] == 10 and workloads["steady"]["jobs"] == 50
    assert {"p50_ms", "p99_ms", "max_ms"} <= set(workloads["steady"])
    assert report["server"]["fsync"] in {"on", "off"}
    assert report["database"].startswith("pgq_bench_")
    assert not database_exists(server_dsn, report["database"])


@pytest.mark.slow
def test_bench_scenarios_report_rate_cpu_per_job_and_event_loop_lag(pg_server: Server) -> None:
    """Sync tasks, 1 % slow jobs, concurrency 10/50/200, 1/2/4/8 processes: each a drain
    of its own, with the worker's and Postgres's CPU per job and the loop's lag."""
    server_dsn = pg_server.dsn("postgres")
    only = "drain,threads,mixed,concurrency,processes"
    result = pgq_cli(
        "bench", "-n", "30", "--scenario-jobs", "30", "--only", only, "--json", dsn=server_dsn, timeout=300
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    workloads = report["workloads"]
    assert set(workloads) == {"raw_claim_complete", "drain"} | SCENARIO_WORKLOADS
    assert set(report["ratios"]) == {"drain"} | SCENARIO_WORKLOADS
    for name in {"drain"} | SCENARIO_WORKLOADS:
        assert workloads[name]["jobs"] == 30, name
        assert set(workloads[name]) >= DRAIN_FIGURES, name
        # The server is local here: both CPU figures are read from /proc.
        assert workloads[name]["worker_cpu_us_per_job"] >= 0 and workloads[name]["postgres_cpu_us_per_job"] >= 0
    assert workloads["processes_8"]["note"].startswith("8 process(es)")
    assert workloads["concurrency_200"]["note"] == "1 process x 200"
    # The mixed drain holds a one-second job, so its lag probe has samples to report.
    mixed = workloads["mixed"]
    assert mixed["lag_samples"] > 0 and 0 <= mixed["lag_p50_ms"] <= mixed["lag_p99_ms"] <= mixed["lag_max_ms"]
    assert mixed["seconds"] >= 1.0
    table = pgq_cli("bench", "-n", "20", "--scenario-jobs", "20", "--only", "threads", dsn=server_dsn, timeout=120)
    assert table.returncode == 0, table.stderr
    assert "threads" in table.stdout and "worker CPU" in table.stdout and "lag p99" in table.stdout


def test_bench_table_output_and_only(pg_server: Server) -> None:
    result = pgq_cli("bench", "-n", "50", "--only", "enqueue_one,enqueue_bulk", dsn=pg_server.dsn("postgres"))
    assert result.returncode == 0, result.stderr
    assert "enqueue one-per-call" in result.stdout and "enqueue bulk" in result.stdout
    assert "drain" not in result.stdout and "pgq / ceiling" in result.stdout


def test_bench_rejects_an_unknown_workload() -> None:
    result = pgq_cli("bench", "--only", "enqueue,drain", dsn="host=127.0.0.1 dbname=none")
    assert result.returncode == 2 and "unknown workload(s) ['enqueue']" in result.stderr
    with pytest.raises(ValueError, match="--jobs must be at least 1"):
        BenchOptions(server_dsn="", jobs=0)


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert (percentile(values, 50), percentile(values, 99), percentile(values, 100)) == (50.0, 99.0, 100.0)
    assert percentile([3.0], 99) == 3.0 and math.isnan(percentile([], 50))


@pytest.mark.slow
def test_scale_script_reports_backlog_memory_long_transaction_and_scaling(pg_server: Server) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "DATABASE_URL": pg_server.dsn("postgres")}
    args = ["--backlog", "300", "--jobs", "100", "--duration", "0.5", "--rate", "40", "--json"]
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks.scale", *args],
        capture_output=True,
        text=True,
        timeout=240,
        env=env,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    backlog = report["backlog"]
    assert backlog["empty_table"]["jobs"] == 100 and backlog["backlog"]["jobs"] == 300
    assert backlog["backlog_vs_empty"] > 0 and 0 < backlog["rss_end_mb"] <= backlog["rss_peak_mb"]
    long_txn = report["long_txn"]
    assert long_txn["alone"]["jobs"] == long_txn["with_long_transaction"]["jobs"] == 20
    assert {"p50_ms", "p99_ms", "max_ms"} <= set(long_txn["with_long_transaction"])
    processes = report["scaling"]["processes"]
    assert set(processes) == {"1", "2", "4"} and all(p["jobs"] == 100 for p in processes.values())
