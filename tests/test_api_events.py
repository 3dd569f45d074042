"""wait (long-poll) and events (SSE) are woken by pgq_job_events, through the ASGI app."""

from __future__ import annotations

import asyncio
import json
import time

import httpx
import psycopg
import pytest
from starlette.applications import Starlette

import pgq
from pgq.api.events import JobEvents
from tests.helpers import running_worker

pytestmark = pytest.mark.anyio


async def _until_subscribed(api_app: Starlette, count: int = 1) -> None:
    events: JobEvents = api_app.state.job_events
    deadline = time.monotonic() + 10
    while events.subscriber_count < count:
        assert time.monotonic() < deadline, "the request never subscribed"
        await asyncio.sleep(0.01)


def _worker_app(dsn: str) -> pgq.App:
    app = pgq.App(dsn)

    @app.task
    async def noop(n: int = 0) -> int:
        return n

    return app


def _parse_sse(text: str) -> list[tuple[str, dict[str, object]]]:
    events = []
    for block in text.strip().split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines() if not line.startswith(":"))
        if fields:
            events.append((fields["event"], json.loads(fields["data"])))
    return events


async def test_wait_returns_as_soon_as_the_job_succeeds(api: httpx.AsyncClient, api_app: Starlette, dsn: str) -> None:
    job = (await api.post("/jobs", json={"task": "noop", "args": {"n": 7}})).json()
    started = time.monotonic()
    waiting = asyncio.create_task(api.get(f"/jobs/{job['id']}/wait", params={"timeout": 60}))
    await _until_subscribed(api_app)
    worker_app = _worker_app(dsn)
    async with running_worker(worker_app, poll_interval=30):  # woken by NOTIFY, not by polling
        response = await waiting
    await worker_app.close()
    assert response.status_code == 200
    assert response.json()["state"] == "succeeded" and response.json()["result"] == 7
    assert time.monotonic() - started < 30


async def test_wait_answers_with_the_current_state_at_the_timeout(api: httpx.AsyncClient) -> None:
    job = (await api.post("/jobs", json={"task": "noop", "delay": 3600})).json()
    started = time.monotonic()
    response = await api.get(f"/jobs/{job['id']}/wait", params={"timeout": 0.3})
    assert response.status_code == 200 and response.json()["state"] == "scheduled"
    assert 0.25 < time.monotonic() - started < 10
    bad = await api.get(f"/jobs/{job['id']}/wait", params={"timeout": 301})
    assert bad.status_code == 422 and bad.json()["error"]["details"]["fields"][0]["field"] == "timeout"


async def test_wait_and_events_of_an_unknown_job_are_404(api: httpx.AsyncClient, api_app: Starlette) -> None:
    assert (await api.get("/jobs/999/wait", params={"timeout": 1})).status_code == 404
    assert (await api.get("/jobs/999/events")).status_code == 404
    assert api_app.state.job_events.subscriber_count == 0


async def test_wait_on_a_final_job_answers_at_once(api: httpx.AsyncClient) -> None:
    job = (await api.post("/jobs", json={"task": "noop"})).json()
    await api.post(f"/jobs/{job['id']}/cancel")
    response = await api.get(f"/jobs/{job['id']}/wait", params={"timeout": 60})
    assert response.json()["state"] == "cancelled"


async def test_events_stream_queued_running_succeeded_then_end(
    api: httpx.AsyncClient, api_app: Starlette, dsn: str
) -> None:
    job = (await api.post("/jobs", json={"task": "noop", "args": {"n": 3}})).json()
    streaming = asyncio.create_task(api.get(f"/jobs/{job['id']}/events"))
    await _until_subscribed(api_app)
    worker_app = _worker_app(dsn)
    async with running_worker(worker_app, poll_interval=30):
        response = await asyncio.wait_for(streaming, 30)
    await worker_app.close()
    assert response.headers["content-type"].startswith("text/event-stream")
    events = _parse_sse(response.text)
    assert [(name, data.get("state")) for name, data in events] == [
        ("state", "queued"),
        ("state", "running"),
        ("state", "succeeded"),
        ("end", "succeeded"),
    ]
    assert events[-1][1]["result"] == 3
    assert api_app.state.job_events.subscriber_count == 0


async def test_events_report_progress_changes(api: httpx.AsyncClient, api_app: Starlette, dsn: str) -> None:
    job = (await api.post("/jobs", json={"task": "noop"})).json()
    streaming = asyncio.create_task(api.get(f"/jobs/{job['id']}/events"))
    await _until_subscribed(api_app)
    # Tasks will report progress (later); until then the row is written directly.
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        await conn.execute("UPDATE pgq.jobs SET progress = '{\"percent\": 50}' WHERE id = %s", [job["id"]])
        await conn.execute("UPDATE pgq.jobs SET state = 'cancelled', finished_at = now() WHERE id = %s", [job["id"]])
    events = _parse_sse((await asyncio.wait_for(streaming, 30)).text)
    assert ("progress", {"id": job["id"], "progress": {"percent": 50}}) in events
    assert events[-1][0] == "end" and events[-1][1]["state"] == "cancelled"


_STEPS = [
    "UPDATE pgq.jobs SET state = 'running', attempt = 1, started_at = now(), heartbeat_at = now(), worker_id = 'w'"
    " WHERE id = %s",
    *[f"UPDATE pgq.jobs SET progress = jsonb_build_object('percent', {p}) WHERE id = %s" for p in (25, 50, 75, 100)],
    "UPDATE pgq.jobs SET state = 'succeeded', finished_at = now(), result = '1' WHERE id = %s",
]


async def _run_job_like_a_worker(dsn: str, job_ids: list[int]) -> None:
    """Claim, report 25..100 and succeed each job, one transaction per step, as fast as a worker."""
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        await conn.execute("SET synchronous_commit = off")
        for jid in job_ids:
            for step in _STEPS:
                await conn.execute(step, [jid])


_STATE_ORDER = ["queued", "running", "succeeded"]


def _assert_told_in_order(events: list[tuple[str, dict[str, object]]]) -> None:
    """After the first read, every change once and in order; nothing but end after the final state."""
    names = [name for name, _ in events]
    assert names[-1] == "end" and names.count("end") == 1, names
    assert names[-2] == "state" and events[-2][1]["state"] == "succeeded", events
    told = [(name, data["state"] if name == "state" else data["progress"]) for name, data in events[:-1]]
    # Every report from the first one told, and the last (100) before the final state.
    percents = [value["percent"] for name, value in told if name == "progress" and isinstance(value, dict)]
    assert percents and percents == list(range(percents[0], 101, 25)), told
    states = [str(value) for name, value in told if name == "state"]
    assert states == sorted(set(states), key=_STATE_ORDER.index), told


async def test_events_of_one_job_arrive_in_order_in_200_streams(
    api: httpx.AsyncClient, api_app: Starlette, dsn: str
) -> None:
    jobs = [(await api.post("/jobs", json={"task": "noop"})).json()["id"] for _ in range(50)]
    early = [asyncio.create_task(api.get(f"/jobs/{jid}/events")) for jid in jobs for _ in range(2)]
    await _until_subscribed(api_app, len(early))
    writers = [asyncio.create_task(_run_job_like_a_worker(dsn, jobs[i::5])) for i in range(5)]
    # Half the streams start while the jobs change: their first read races the writers.
    late = [asyncio.create_task(api.get(f"/jobs/{jid}/events")) for jid in jobs for _ in range(2)]
    await asyncio.gather(*writers)
    responses = await asyncio.wait_for(asyncio.gather(*early, *late), 60)
    for response in responses:
        _assert_told_in_order(_parse_sse(response.text))
    assert api_app.state.job_events.subscriber_count == 0
