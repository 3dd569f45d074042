"""The event loop's lag, measured inside a bench worker process.

A probe task sleeps ``interval`` seconds over and over and records how much later than
asked it woke up: the time the loop was busy with something else (claiming, running
and completing jobs) when the probe was due. The samples carry the wall clock so the
bench keeps only those taken while its workload ran.
"""

from __future__ import annotations

import asyncio
import collections
import json
import time
from pathlib import Path
from typing import Any

from pgq.bench.stats import percentile

INTERVAL = 0.01
"""Seconds between two samples (the probe asks to sleep this long)."""


class LagProbe:
    """Sleep ``interval`` s in a loop on the running event loop; keep (time, lag ms)."""

    def __init__(self, interval: float = INTERVAL, keep: int = 200_000) -> None:
        self.interval = interval
        self.samples: collections.deque[tuple[float, float]] = collections.deque(maxlen=keep)

    async def run(self) -> None:
        while True:
            asked = time.perf_counter()
            await asyncio.sleep(self.interval)
            late = time.perf_counter() - asked - self.interval
            self.samples.append((time.time(), max(0.0, late) * 1000))

    def write(self, path: Path) -> None:
        path.write_text(json.dumps(list(self.samples)), encoding="utf-8")


def read_samples(directory: Path) -> list[tuple[float, float]]:
    """Every sample the worker processes wrote to ``directory`` (one file each)."""
    samples: list[tuple[float, float]] = []
    for file in sorted(directory.glob("*.json")):
        samples.extend((float(t), float(lag)) for t, lag in json.loads(file.read_text(encoding="utf-8")))
    return samples


def summary(samples: list[tuple[float, float]], start: float, end: float) -> dict[str, Any]:
    """p50 / p99 / max lag in ms of the samples taken between ``start`` and ``end``."""
    lags = [lag for t, lag in samples if start <= t <= end]
    if not lags:
        return {"lag_samples": 0}
    return {
        "lag_samples": len(lags),
        "lag_p50_ms": round(percentile(lags, 50), 2),
        "lag_p99_ms": round(percentile(lags, 99), 2),
        "lag_max_ms": round(max(lags), 2),
    }
