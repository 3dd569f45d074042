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
EXPECTED_RATIOS = {"enqueue_one", "enqueue_bulk", "drain", "wakeup_latency_p50", "wakeup_latency_p99"}


@pytest.mark.slow
def test_bench_runs_every_workload_reports_ratios_and_drops_its_database(pg_server: Server) -> None:
    server_dsn = pg_server.dsn("postgres")
    args = ["bench", "-n", "200", "--duration", "1", "--rate", "50", "--samples", "10", "--batch", "64", "--json"]
    result = pgq_cli(*args, dsn=server_dsn, timeout=180)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert set(report["workloads"]) == EXPECTED_WORKLOADS
    assert set(report["ratios"]) == EXPECTED_RATIOS
    assert all(r > 0 and math.isfinite(r) for r in report["ratios"].values()), report["ratios"]
    workloads = report["workloads"]
    assert workloads["drain"]["jobs"] == 200 and workloads["enqueue_bulk"]["jobs"] == 200
    assert workloads["wakeup_latency"]["jobs"] == 10 and workloads["steady"]["jobs"] == 50
    assert {"p50_ms", "p99_ms", "max_ms"} <= set(workloads["steady"])
    assert report["server"]["fsync"] in {"on", "off"}
    assert report["database"].startswith("pgq_bench_")
    assert not database_exists(server_dsn, report["database"])


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
