"""The order of a bench run: for each workload, its raw ceiling, then pgq, on an
emptied table of one throwaway database."""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import logging
import os
from collections.abc import Awaitable, Callable
from typing import Any

import psycopg
from psycopg.conninfo import conninfo_to_dict

from pgq.app import App
from pgq.bench import raw, workloads
from pgq.bench.database import fresh_database, server_settings
from pgq.bench.queries import BENCH_QUERIES
from pgq.bench.scenarios import SCENARIOS, run_scenarios
from pgq.bench.stats import Result, combined, ratio
from pgq.worker.claim_ahead import largest_claim

WORKLOADS = ("enqueue_one", "enqueue_bulk", "drain", "latency", "steady", *SCENARIOS)
OPTIONAL_WORKLOADS = ("metrics",)
"""Run only when named in --only: ``metrics`` drains with worker metrics off and on, alternating."""
METRICS_ROUNDS = 3

log = logging.getLogger("pgq.bench")


@dataclasses.dataclass(frozen=True, slots=True)
class BenchOptions:
    """What `pgq bench` runs; the defaults are the README's results table."""

    server_dsn: str
    jobs: int = 10_000
    """Jobs for bulk enqueue and the drain; enqueue one-per-call uses a fifth of it."""
    concurrency: int = 10
    workers: int = 1
    duration: float = 10.0
    rate: float = 200.0
    batch: int = 5_000
    samples: int = 200
    spacing: float = 0.02
    scenario_jobs: int = 2_000
    """Jobs per drain of the scenarios (threads, mixed, concurrency, processes)."""
    rounds: int = 3
    """Rounds of each enqueue workload and its ceiling, taking turns (raw, pgq, pgq,
    raw, …): a drift of the machine during one of them hits both alike."""
    only: tuple[str, ...] = WORKLOADS

    def __post_init__(self) -> None:
        unknown = set(self.only) - set(WORKLOADS) - set(OPTIONAL_WORKLOADS)
        if unknown:
            known = ", ".join(WORKLOADS + OPTIONAL_WORKLOADS)
            raise ValueError(f"unknown workload(s) {sorted(unknown)}; choose from {known}")
        for name in ("jobs", "concurrency", "workers", "batch", "samples", "scenario_jobs", "rounds"):
            if getattr(self, name) < 1:
                raise ValueError(f"--{name} must be at least 1")
        if not (self.duration > 0 and self.rate > 0):
            raise ValueError("--duration and --rate must be positive")

    @property
    def one_per_call_jobs(self) -> int:
        return max(10, self.jobs // 5)


async def _reset(dsn: str) -> None:
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        await conn.execute(BENCH_QUERIES["bench_jobs_reset"])


async def _measure(dsn: str, step: Callable[[], Awaitable[Result]]) -> Result:
    await _reset(dsn)
    result = await step()
    log.debug("%s: %s", result.name, result.to_dict())
    return result


async def _run(dsn: str, o: BenchOptions) -> dict[str, Result]:
    results: dict[str, Result] = {}
    app = App(dsn)
    async with app:

        async def run(step: Callable[[], Awaitable[Result]]) -> None:
            result = await _measure(dsn, step)
            results[result.name] = result

        async def taking_turns(*steps: Callable[[], Awaitable[Result]]) -> None:
            rounds: dict[str, list[Result]] = {}
            for n in range(o.rounds):
                for step in steps if n % 2 == 0 else reversed(steps):
                    result = await _measure(dsn, step)
                    rounds.setdefault(result.name, []).append(result)
            results.update({name: combined(r) for name, r in rounds.items()})

        if "enqueue_one" in o.only:
            n = o.one_per_call_jobs
            await taking_turns(lambda: raw.insert_one(dsn, n), lambda: workloads.enqueue_one(app, n))
        if "enqueue_bulk" in o.only:
            await taking_turns(
                lambda: raw.copy_many(dsn, o.jobs, o.batch), lambda: workloads.enqueue_bulk(app, o.jobs, o.batch)
            )
        if "drain" in o.only:

            async def raw_drain() -> Result:
                await workloads.prefill(app, o.jobs, o.batch)
                return await raw.claim_complete(dsn, o.jobs, o.workers, largest_claim(o.concurrency))

            await run(raw_drain)
            await run(lambda: workloads.drain(app, dsn, o.jobs, o.workers, o.concurrency, o.batch))
        if "latency" in o.only:
            await run(lambda: raw.wakeup(dsn, o.samples, o.spacing))
            await run(lambda: workloads.wakeup_latency(app, dsn, o.samples, o.spacing))
        if "steady" in o.only:
            await run(lambda: workloads.steady(app, dsn, o.rate, o.duration, o.workers, o.concurrency))
        await run_scenarios(app, dsn, o.only, o.scenario_jobs, o.concurrency, run)
        if "metrics" in o.only:
            results.update(await _metrics_cost(app, dsn, o))
    return results


async def _metrics_cost(app: App, dsn: str, o: BenchOptions) -> dict[str, Result]:
    """The drain with worker metrics off, then on, METRICS_ROUNDS times (alternating, so
    a drift of the machine hits both alike); each side's rounds added up."""
    rounds: dict[bool, list[Result]] = {False: [], True: []}
    for _ in range(METRICS_ROUNDS):
        for on in (False, True):
            step = functools.partial(workloads.drain_metrics, app, dsn, o.jobs, o.workers, o.concurrency, o.batch, on)
            rounds[on].append(await _measure(dsn, step))
    return {
        r[0].name: combined(r, note="; ".join([f"{len(r)} rounds", *(x.note for x in r if "loop lag" in x.note)]))
        for r in rounds.values()
    }


def ratios(results: dict[str, Result]) -> dict[str, float]:
    """pgq as a fraction of its raw ceiling: rates pgq/raw, latencies raw/pgq (1.0 = raw)."""
    out: dict[str, float] = {}
    pairs = [("enqueue_one", "raw_insert_one"), ("enqueue_bulk", "raw_copy"), ("drain", "raw_claim_complete")]
    for pgq_name, raw_name in pairs:
        if pgq_name in results and raw_name in results:
            out[pgq_name] = ratio(results[pgq_name].rate, results[raw_name].rate)
    if "raw_claim_complete" in results:  # each scenario's drain against the raw drain
        paired = {"drain", *(name for pair in pairs for name in pair)}
        for name, result in results.items():
            if result.extra and name not in paired and not name.startswith("drain_metrics"):
                out[name] = ratio(result.rate, results["raw_claim_complete"].rate)
    if "drain_metrics_on" in results and "drain_metrics_off" in results:
        out["metrics_on_vs_off"] = ratio(results["drain_metrics_on"].rate, results["drain_metrics_off"].rate)
    if "wakeup_latency" in results and "raw_wakeup" in results:
        for key in ("p50_ms", "p99_ms"):
            pgq_ms = results["wakeup_latency"].to_dict()[key]
            out[f"wakeup_latency_{key.removesuffix('_ms')}"] = ratio(results["raw_wakeup"].to_dict()[key], pgq_ms)
    return out


def run_bench(options: BenchOptions) -> dict[str, Any]:
    """Run the selected workloads in a database of their own; return the JSON report."""
    with fresh_database(options.server_dsn, "pgq_bench") as dsn:
        database = conninfo_to_dict(dsn).get("dbname")
        settings = server_settings(dsn)
        results = asyncio.run(_run(dsn, options))
    return {
        "database": database,
        "machine": {"cpus": os.cpu_count()},
        "server": settings,
        "options": {k: v for k, v in dataclasses.asdict(options).items() if k != "server_dsn"},
        "workloads": {name: r.to_dict() for name, r in results.items()},
        "ratios": ratios(results),
    }
