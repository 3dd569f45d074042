"""Tasks the dashboard's browser tests run in a real `pgq worker` (queue "ui")."""

from __future__ import annotations

import asyncio

import pgq

app = pgq.App()


@app.task(queue="ui")
async def stepper(steps: int = 5, pause: float = 0.4) -> dict[str, int]:
    """Reports progress after each step, so a page can watch its bar move."""
    for step in range(1, steps + 1):
        await asyncio.sleep(pause)
        await pgq.current_job().progress(100 * step / steps, f"step {step} of {steps}")
    return {"steps": steps}


@app.task(queue="ui", max_attempts=1)
async def always_fails(note: str = "") -> None:
    raise RuntimeError(f"always fails: {note}")


@app.task(queue="ui")
async def echo(value: str = "") -> dict[str, str]:
    """Returns its argument: the result carries whatever the caller sent."""
    return {"echo": value}
