"""The HTTP API with DATABASE_URL through PgBouncer: reads and writes pooled, wait and
SSE on the direct LISTEN URL, and a clear 503 when there is no direct route."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import time
from collections.abc import AsyncIterator

import httpx
import pytest
from starlette.applications import Starlette

import pgq
from pgq.api import create_app
from pgq.settings import Settings
from tests.conftest import WRITE, api_settings
from tests.helpers import running_worker

pytestmark = pytest.mark.anyio


@contextlib.asynccontextmanager
async def _api(bouncer_dsn: str, listen_url: str | None) -> AsyncIterator[tuple[Starlette, httpx.AsyncClient]]:
    queue = pgq.App(bouncer_dsn, settings=dataclasses.replace(Settings(), listen_url=listen_url))
    app = create_app(queue, settings=api_settings())
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://pgq", headers=WRITE) as client:
            yield app, client


def _worker_app(bouncer_dsn: str, listen_url: str) -> pgq.App:
    app = pgq.App(bouncer_dsn, settings=dataclasses.replace(Settings(), listen_url=listen_url))

    @app.task
    async def noop(n: int = 0) -> int:
        return n

    return app


async def _until_subscribed(api_app: Starlette) -> None:
    deadline = time.monotonic() + 10
    while api_app.state.job_events.subscriber_count < 1:
        assert time.monotonic() < deadline, "the request never subscribed"
        await asyncio.sleep(0.01)


async def test_reads_writes_wait_and_events_through_pgbouncer(bouncer_dsn: str, dsn: str) -> None:
    async with _api(bouncer_dsn, listen_url=dsn) as (api_app, api):
        created = [(await api.post("/jobs", json={"task": "noop", "args": {"n": i}})).json() for i in range(12)]
        assert {j["state"] for j in created} == {"queued"}
        for job in created:  # more than five uses of each statement, on shared server connections
            got = await api.get(f"/jobs/{job['id']}")
            assert got.status_code == 200 and got.json()["id"] == job["id"]
        listed = await api.get("/jobs", params={"state": "queued"})
        assert listed.status_code == 200 and len(listed.json()["jobs"]) == 12

        waiting = asyncio.create_task(api.get(f"/jobs/{created[0]['id']}/wait", params={"timeout": 60}))
        await _until_subscribed(api_app)
        streaming = asyncio.create_task(api.get(f"/jobs/{created[1]['id']}/events"))
        worker_app = _worker_app(bouncer_dsn, dsn)
        started = time.monotonic()
        async with running_worker(worker_app, poll_interval=30):  # woken by NOTIFY on the direct route
            waited = await asyncio.wait_for(waiting, 30)
            streamed = await asyncio.wait_for(streaming, 30)
        await worker_app.close()
    assert time.monotonic() - started < 20
    assert waited.status_code == 200 and waited.json()["state"] == "succeeded" and waited.json()["result"] == 0
    events = [block for block in streamed.text.strip().split("\n\n") if not block.startswith(":")]
    names = [block.splitlines()[0].removeprefix("event: ") for block in events]
    assert names[-1] == "end" and json.loads(events[-1].splitlines()[1].removeprefix("data: "))["result"] == 1


async def test_wait_without_a_direct_listen_url_is_a_clear_503(bouncer_dsn: str) -> None:
    async with _api(bouncer_dsn, listen_url=None) as (_, api):
        job = (await api.post("/jobs", json={"task": "noop"})).json()
        response = await api.get(f"/jobs/{job['id']}/wait", params={"timeout": 5})
        again = await api.get(f"/jobs/{job['id']}/events")
    assert response.status_code == 503
    message = response.json()["error"]["message"]
    assert "connection pooler" in message and "PGQ_LISTEN_URL" in message
    assert again.status_code == 503
