"""Rates and latency percentiles, the way every workload reports them."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Any


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100), nearest rank: an observed value, never interpolated."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


@dataclasses.dataclass(frozen=True, slots=True)
class Result:
    """One measured workload: a rate (jobs/s), latencies in milliseconds, or both."""

    name: str
    jobs: int
    seconds: float
    latencies_ms: tuple[float, ...] = ()
    note: str = ""
    extra: dict[str, Any] = dataclasses.field(default_factory=dict)
    """More figures of the run: CPU per job, the event loop's lag."""

    @property
    def rate(self) -> float:
        return self.jobs / self.seconds if self.seconds > 0 else math.nan

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"jobs": self.jobs, "seconds": round(self.seconds, 4), "rate": round(self.rate, 1)}
        if self.latencies_ms:
            out.update(
                p50_ms=round(percentile(self.latencies_ms, 50), 3),
                p99_ms=round(percentile(self.latencies_ms, 99), 3),
                max_ms=round(max(self.latencies_ms), 3),
            )
        out.update(self.extra)
        if self.note:
            out["note"] = self.note
        return out


def ratio(value: float, ceiling: float) -> float:
    """value / ceiling, rounded; NaN when either is missing."""
    if not (ceiling > 0 and value >= 0):
        return math.nan
    return round(value / ceiling, 3)


def combined(rounds: list[Result], note: str = "") -> Result:
    """Rounds of one workload as one result: their jobs and seconds added up (so the rate
    is over all of them), figures per job weighted by each round's jobs, and how many
    rounds there were."""
    first = rounds[0]
    jobs = sum(r.jobs for r in rounds)
    extra: dict[str, Any] = {}
    for key, value in first.extra.items():
        numbers = [v for r in rounds if isinstance(v := r.extra.get(key), int | float)]
        if len(numbers) == len(rounds):
            extra[key] = round(sum(v * r.jobs for v, r in zip(numbers, rounds, strict=True)) / jobs, 1)
        else:
            extra[key] = value
    extra["rounds"] = len(rounds)
    return Result(first.name, jobs, sum(r.seconds for r in rounds), note=note or first.note, extra=extra)
