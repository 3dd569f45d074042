"""Tasks the observability tests run in `pgq worker` subprocesses: one that succeeds
(and logs a line of its own), one that fails for good, one that takes its time."""

from __future__ import annotations

import asyncio
import logging

import pgq

app = pgq.App()
log = logging.getLogger("tests.observed")


@app.task
async def ok(n: int = 0) -> int:
    log.info("working on %d", n)
    return n


@app.task(max_attempts=1)
async def broken() -> None:
    raise ValueError("broken on purpose")


@app.task
async def slow(seconds: float) -> float:
    await asyncio.sleep(seconds)
    return seconds
