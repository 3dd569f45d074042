"""The README's Observability section and docs/grafana-dashboard.json say only true things:
the dashboard is valid JSON over documented metrics, the JSON log line shown is what pgq
writes, and `pgq bench --only metrics` reports the cost of metrics on and off."""

from __future__ import annotations

import json
import logging
import math
import re

import pytest

from pgq.logs import WORKER_ID, JsonFormatter
from tests.conftest import ROOT, Server, pgq_cli

README = ROOT / "README.md"
DASHBOARD = ROOT / "docs" / "grafana-dashboard.json"
_SUFFIXES = ("_bucket", "_sum", "_count")


def observability_section() -> str:
    text = README.read_text(encoding="utf-8")
    return text.split("\n## Observability\n", 1)[1].split("\n## ", 1)[0]


def documented_worker_metrics() -> set[str]:
    """Every metric name in the first column of the section's metrics table."""
    rows = [line for line in observability_section().splitlines() if line.startswith("| `pgq_")]
    return {name for row in rows for name in re.findall(r"`(pgq_\w+)`", row.split(" | ")[0])}


def documented_api_metrics() -> set[str]:
    text = README.read_text(encoding="utf-8")
    (row,) = [line for line in text.splitlines() if line.startswith("| `GET /metrics` |")]
    return set(re.findall(r"`(pgq_\w+)", row))


def base_name(sample: str) -> str:
    for suffix in _SUFFIXES:
        if sample.endswith(suffix):
            return sample.removesuffix(suffix)
    return sample


def test_the_dashboard_is_valid_json_over_documented_metrics_only() -> None:
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    assert dashboard["title"] == "pgq" and dashboard["panels"]
    exprs = [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]
    known = documented_worker_metrics() | documented_api_metrics()
    used = {base_name(name) for expr in exprs for name in re.findall(r"\bpgq_\w+", expr)}
    assert used and used <= known, sorted(used - known)
    assert {
        "pgq_job_outcomes_total",
        "pgq_worker_event_loop_lag_seconds",
        "pgq_queue_oldest_queued_age_seconds",
    } <= used


def test_the_alerts_use_documented_metrics_only() -> None:
    section = observability_section()
    alerts = section.split("Alerts worth having", 1)[1].split("\n\n", 2)[1]
    known = documented_worker_metrics() | documented_api_metrics()
    used = {base_name(name) for name in re.findall(r"\bpgq_\w+", alerts)}
    assert len(alerts.splitlines()) == 8 and used <= known, sorted(used - known)


def test_the_json_log_line_shown_is_what_pgq_writes() -> None:
    (shown,) = re.findall(r"```json\n(.*?)\n```", observability_section(), re.DOTALL)
    example = json.loads(shown)
    record = logging.LogRecord("pgq.worker", logging.INFO, __file__, 1, example["message"], None, None)
    record.created = 1796285101.22  # 2026-12-03T08:05:01.220Z
    for key in ("job_id", "task", "queue", "attempt"):
        setattr(record, key, example[key])
    token = WORKER_ID.set(example["worker_id"])
    try:
        written = JsonFormatter().format(record)
    finally:
        WORKER_ID.reset(token)
    assert written == shown


@pytest.mark.slow
def test_bench_reports_the_drain_with_metrics_off_and_on_in_one_run(pg_server: Server) -> None:
    args = ["bench", "--only", "metrics", "-n", "100", "--batch", "50", "--json"]
    result = pgq_cli(*args, dsn=pg_server.dsn("postgres"), timeout=180)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert set(report["workloads"]) == {"drain_metrics_off", "drain_metrics_on"}
    assert all(w["jobs"] == 300 for w in report["workloads"].values())  # three rounds each
    # The worker's loop lag under load (a drain this small may end before the first 0.1 s sample).
    assert re.search(r"loop lag p99 <= [\d.]+ ms|no loop lag sample", report["workloads"]["drain_metrics_on"]["note"])
    assert set(report["ratios"]) == {"metrics_on_vs_off"} and math.isfinite(report["ratios"]["metrics_on_vs_off"])
