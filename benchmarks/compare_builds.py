"""`pgq bench` on two builds of pgq, interleaved in one run: is the new one slower?

A refactoring must not cost speed (the 5 % rule of the architecture work), and this
machine's speed drifts by 10-20 % within minutes. So the builds take turns (A B B A …),
each round in a fresh database on the same server, and the verdict uses the ratio of
each workload to its raw-SQL ceiling measured in the same round, which cancels most of
the drift. Each build is a virtualenv with pgq installed (``pip install -e`` of a
checkout of that commit):

    python -m benchmarks.compare_builds /work/old/.venv .venv --rounds 3
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

THRESHOLD = 0.05
"""A workload whose median ratio to its ceiling falls by more than this is a regression."""


def bench_once(venv: Path, bench_args: list[str]) -> dict[str, Any]:
    """One `pgq bench --json` of the build in ``venv``; its report."""
    out = subprocess.run(
        [str(venv / "bin" / "pgq"), "bench", "--json", *bench_args],
        capture_output=True,
        text=True,
        env=os.environ.copy(),
        # The build's own checkout: its worker processes run `python -m pgq`, which
        # imports pgq from the working directory first, so from here they would run
        # this checkout's code, not the build's.
        cwd=venv.resolve().parent,
    )
    if out.returncode != 0:
        raise SystemExit(f"pgq bench of {venv} failed ({out.returncode}):\n{out.stderr[-3000:]}")
    report: dict[str, Any] = json.loads(out.stdout)
    return report


def compare(reports_a: list[dict[str, Any]], reports_b: list[dict[str, Any]]) -> list[tuple[str, float, float, float]]:
    """Per workload: median ratio-to-ceiling of A and of B, and B / A."""
    rows = []
    for name in reports_a[0]["ratios"]:
        a = statistics.median(r["ratios"][name] for r in reports_a)
        b = statistics.median(r["ratios"][name] for r in reports_b)
        rows.append((name, a, b, b / a if a else float("nan")))
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("old", type=Path, help="virtualenv of the old build")
    parser.add_argument("new", type=Path, help="virtualenv of the new build")
    parser.add_argument("--rounds", type=int, default=3, help="runs of each build (default 3)")
    parser.add_argument("--save", type=Path, help="write every report of both builds to this JSON file")
    argv = sys.argv[1:] if argv is None else argv
    split = argv.index("--") if "--" in argv else len(argv)
    args = parser.parse_args(argv[:split])
    bench_args = argv[split + 1 :]  # after "--": options for pgq bench
    old: list[dict[str, Any]] = []
    new: list[dict[str, Any]] = []
    for i in range(args.rounds):
        order = [(args.old, old), (args.new, new)] if i % 2 == 0 else [(args.new, new), (args.old, old)]
        for venv, reports in order:
            reports.append(bench_once(venv, bench_args))
            print(f"round {i + 1}: {venv} done", file=sys.stderr)
    if args.save:
        args.save.write_text(json.dumps({"old": old, "new": new}, indent=1, default=str), encoding="utf-8")
    regressions = 0
    print(f"{'workload':<24} {'old/ceiling':>12} {'new/ceiling':>12} {'new/old':>8}")
    for name, a, b, change in compare(old, new):
        flag = "  REGRESSION" if change < 1 - THRESHOLD else ""
        regressions += bool(flag)
        print(f"{name:<24} {a:>12.3f} {b:>12.3f} {change:>8.3f}{flag}")
    cpu_rows = cpu_per_job(old, new)
    if cpu_rows:
        print(f"\n{'CPU µs per job (median)':<24} {'worker old':>11} {'worker new':>11} {'PG old':>8} {'PG new':>8}")
        for name, figures in cpu_rows:
            print(f"{name:<24} " + " ".join(f"{f:>{w}.0f}" for f, w in zip(figures, (11, 11, 8, 8), strict=True)))
    return 1 if regressions else 0


def cpu_per_job(
    reports_a: list[dict[str, Any]], reports_b: list[dict[str, Any]]
) -> list[tuple[str, tuple[float, float, float, float]]]:
    """Per drain workload: median worker and Postgres CPU µs per job of A and of B."""
    rows = []
    for name, workload in reports_a[0]["workloads"].items():
        if workload.get("worker_cpu_us_per_job") is None or workload.get("postgres_cpu_us_per_job") is None:
            continue
        if reports_b[0]["workloads"].get(name, {}).get("worker_cpu_us_per_job") is None:
            continue

        def median(reports: list[dict[str, Any]], key: str, name: str = name) -> float:
            return statistics.median(r["workloads"][name][key] or 0.0 for r in reports)

        figures = (
            median(reports_a, "worker_cpu_us_per_job"),
            median(reports_b, "worker_cpu_us_per_job"),
            median(reports_a, "postgres_cpu_us_per_job"),
            median(reports_b, "postgres_cpu_us_per_job"),
        )
        rows.append((name, figures))
    return rows


if __name__ == "__main__":
    raise SystemExit(main())
