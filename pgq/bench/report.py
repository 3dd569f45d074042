"""The readable form of a bench report (the JSON form is the report itself)."""

from __future__ import annotations

import math
from typing import Any

_ROWS = [
    # label, pgq workload, raw workload, ratio key, what is shown
    ("enqueue one-per-call", "enqueue_one", "raw_insert_one", "enqueue_one", "rate"),
    ("enqueue bulk", "enqueue_bulk", "raw_copy", "enqueue_bulk", "rate"),
    ("drain", "drain", "raw_claim_complete", "drain", "rate"),
    ("idle wake-up p50", "wakeup_latency", "raw_wakeup", "wakeup_latency_p50", "p50_ms"),
    ("idle wake-up p99", "wakeup_latency", "raw_wakeup", "wakeup_latency_p99", "p99_ms"),
    ("steady enqueue→finish p50", "steady", None, None, "p50_ms"),
    ("steady enqueue→finish p99", "steady", None, None, "p99_ms"),
    ("steady enqueue→finish max", "steady", None, None, "max_ms"),
    ("steady producer rate", "steady", None, None, "rate"),
    # --only metrics: the "ceiling" column is the same drain with metrics off.
    ("drain, metrics off", "drain_metrics_off", None, None, "rate"),
    ("drain, metrics on ÷ off", "drain_metrics_on", "drain_metrics_off", "metrics_on_vs_off", "rate"),
]


_CLIENT = "client_cpu_us_per_job"
"""The enqueue workloads' CPU per job in the producer, which is the bench process."""


def _value(workload: dict[str, Any] | None, field: str) -> str:
    if workload is None or field not in workload:
        return "-"
    value = float(workload[field])
    if math.isnan(value):
        return "-"
    return f"{value:,.0f} jobs/s" if field == "rate" else f"{value:.2f} ms"


def _figure(workload: dict[str, Any], key: str, unit: str) -> str:
    value = workload.get(key)
    return "-" if value is None else f"{value:,.0f} {unit}" if unit == "µs" else f"{value:.1f} {unit}"


def _rows(report: dict[str, Any]) -> list[tuple[str, str, str | None, str | None, str]]:
    """The table's rows: the fixed ones, then each scenario against the raw drain."""
    known = {row[1] for row in _ROWS} | {row[2] for row in _ROWS}
    extra = [(name, name, "raw_claim_complete", name, "rate") for name in report["workloads"] if name not in known]
    return [*_ROWS, *extra]


def format_table(report: dict[str, Any]) -> str:
    workloads: dict[str, dict[str, Any]] = report["workloads"]
    ratios: dict[str, float] = report["ratios"]
    rows = [["workload", "jobs", "pgq", "raw SQL ceiling", "pgq / ceiling", "worker CPU", "PG CPU", "lag p99", "notes"]]
    for label, pgq_name, raw_name, ratio_key, field in _rows(report):
        pgq = workloads.get(pgq_name)
        if pgq is None:
            continue
        raw = workloads.get(raw_name) if raw_name else None
        ratio = ratios.get(ratio_key) if ratio_key else None
        rows.append(
            [
                label,
                str(pgq["jobs"]),
                _value(pgq, field),
                _value(raw, field),
                "-" if ratio is None or math.isnan(ratio) else f"{ratio:.2f}",
                _figure(pgq, _CLIENT if _CLIENT in pgq else "worker_cpu_us_per_job", "µs"),
                _figure(pgq, "postgres_cpu_us_per_job", "µs"),
                _figure(pgq, "lag_p99_ms", "ms"),
                pgq.get("note", ""),
            ]
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows]
    server = report["server"]
    lines.insert(1, "-" * len(lines[0]))
    lines.append("")
    lines.append(
        f"{report['machine']['cpus']} CPUs; {str(server.get('version', '?')).split(' on ')[0]}, "
        f"fsync={server.get('fsync')}, synchronous_commit={server.get('synchronous_commit')}, "
        f"shared_buffers={server.get('shared_buffers')}"
    )
    lines.append("pgq / ceiling: rates pgq ÷ raw, latencies raw ÷ pgq (1.00 = as fast as bare SQL)")
    if raw_cpu := [
        f"{name} {_figure(w, _CLIENT, 'µs')} + {_figure(w, 'postgres_cpu_us_per_job', 'µs')}"
        for name, w in workloads.items()
        if name.startswith("raw_") and _CLIENT in w
    ]:
        rounds = max(w.get("rounds", 1) for w in workloads.values())
        lines.append(
            f"enqueue rows: {rounds} round(s) of pgq and of raw SQL in turn, added up; CPU of the producer "
            f"(the bench) and its backends; raw SQL: {', '.join(raw_cpu)}"
        )
    if any("worker_cpu_us_per_job" in w for w in workloads.values()):
        lines.append(
            "scenarios ÷ the raw claim-and-complete loop; CPU per job of the worker processes and of the "
            "database's backends (/proc); lag p99: how late the worker's event loop woke from a 10 ms sleep"
        )
    return "\n".join(lines)
