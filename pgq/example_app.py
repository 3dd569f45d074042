"""The example app that `pgq demo` runs: one async, one sync and one flaky task.

Run a worker for it yourself with ``pgq worker --app pgq.example_app:app``.
"""

from __future__ import annotations

import asyncio
import hashlib
import time

import pgq

app = pgq.App()


@app.task(queue="emails")
async def send_welcome_email(to: str) -> dict[str, str]:
    """Async task: runs on the worker's event loop."""
    await asyncio.sleep(0.2)  # stands in for an SMTP round trip
    return {"sent_to": to, "message_id": hashlib.sha1(to.encode()).hexdigest()[:12]}  # noqa: S324


@app.task
def make_thumbnail(width: int, height: int) -> dict[str, int]:
    """Sync task: runs in a thread, so blocking calls are fine."""
    time.sleep(0.1)  # stands in for image work
    return {"width": max(1, width // 4), "height": max(1, height // 4)}


@app.task(max_attempts=3, retry=0.5)
async def fetch_exchange_rate(currency: str) -> dict[str, object]:
    """Fails its first attempt on purpose, to show a persisted retry."""
    if pgq.current_job().attempt == 1:
        raise ConnectionError("upstream timed out (simulated on the first attempt)")
    return {"currency": currency, "rate": 1.08, "attempt": pgq.current_job().attempt}
