"""Progress reports: the latest one lands even when the job ends right after it."""

from __future__ import annotations

import asyncio
import time

import pytest

import pgq
from tests.helpers import running_worker, wait_final

STEPS = (20, 40, 60, 80, 100)


@pytest.mark.anyio
async def test_last_progress_report_lands_when_the_job_ends_right_after_it(dsn: str) -> None:
    app = pgq.App(dsn)

    @app.task
    async def steps() -> str:
        ctx = pgq.current_job()
        for percent in STEPS:
            await asyncio.sleep(0.2 if percent > STEPS[0] else 0)
            await ctx.progress(percent, f"at {percent}")
        return "done"

    @app.task
    def sync_steps() -> str:
        ctx = pgq.current_job()
        for percent in STEPS:
            time.sleep(0.2 if percent > STEPS[0] else 0)
            ctx.progress_sync(percent, f"at {percent}")
        return "done"

    @app.task
    async def ends_at_once() -> str:
        await pgq.current_job().progress(10, "begun")
        await pgq.current_job().progress(100, "finished")
        return "done"

    async with app, running_worker(app):
        jobs = [await steps.enqueue(), await sync_steps.enqueue(), await ends_at_once.enqueue()]
        done = await wait_final(app, [j.id for j in jobs])
    assert [j.state for j in done] == ["succeeded"] * 3
    assert [(j.progress or {}).get("percent") for j in done] == [100, 100, 100]
    assert [(j.progress or {}).get("message") for j in done] == ["at 100", "at 100", "finished"]


@pytest.mark.anyio
async def test_failed_attempt_keeps_its_last_progress_report(dsn: str) -> None:
    app = pgq.App(dsn)

    @app.task(max_attempts=1)
    async def breaks() -> None:
        await pgq.current_job().progress(10)
        await pgq.current_job().progress(70, "almost")
        raise RuntimeError("broke at 70")

    async with app, running_worker(app):
        (done,) = await wait_final(app, [(await breaks.enqueue()).id])
    assert done.state == "failed" and done.progress is not None
    assert (done.progress["percent"], done.progress["message"]) == (70, "almost")
