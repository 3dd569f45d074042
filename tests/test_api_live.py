"""GET /events (SSE) and GET /ws (WebSocket) against a real uvicorn server and Postgres."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import psycopg
import pytest
from websockets.exceptions import ConnectionClosed

import pgq
from pgq.api.schemas import JobChangeOut
from tests.conftest import READ_TOKEN, WRITE, WRITE_TOKEN, api_settings
from tests.live_clients import (
    Event,
    RawWebSocket,
    SseClient,
    job_events,
    serve_api,
    until_subscribed,
    ws_connect,
    ws_read,
)

pytestmark = pytest.mark.anyio

FILTERS: list[dict[str, Any]] = [
    {},
    {"queue": ["mail"]},
    {"task": ["b"]},
    {"state": ["succeeded", "failed"]},
    {"queue": ["mail", "other"], "state": ["queued"]},
]


def _matches(params: dict[str, Any], change: dict[str, Any]) -> bool:
    field = {"queue": "queue", "task": "task", "state": "state"}
    return all(change[field[name]] in values for name, values in params.items())


async def _sql(dsn: str, *statements: tuple[str, list[Any]]) -> None:
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        for query, params in statements:
            await conn.execute(query, params)


async def test_events_and_ws_send_the_changes_each_filter_matches_in_order(dsn: str) -> None:
    async with serve_api(dsn) as (address, app), httpx.AsyncClient(base_url=f"http://{address}") as http:
        sse = [SseClient(address, f) for f in FILTERS]
        for client in sse:
            await client.open()
            assert client.status == 200 and client.headers["content-type"].startswith("text/event-stream")
        sockets = [await ws_connect(address, f) for f in FILTERS]
        await until_subscribed(app, 2 * len(FILTERS))
        ids = {}
        for queue, task in [("default", "a"), ("mail", "b"), ("mail", "a")]:
            created = await http.post("/jobs", json={"task": task, "queue": queue}, headers=WRITE)
            ids[queue, task] = created.json()["id"]
        a, b, c = ids["default", "a"], ids["mail", "b"], ids["mail", "a"]
        running = "UPDATE pgq.jobs SET state = 'running', attempt = 1, started_at = now(), heartbeat_at = now(), "
        await _sql(
            dsn,
            (running + "worker_id = 'w' WHERE id = ANY(%s)", [[a, b]]),
            ("UPDATE pgq.jobs SET progress = '{\"percent\": 50}' WHERE id = %s", [b]),
            ("UPDATE pgq.jobs SET state = 'succeeded', finished_at = now() WHERE id = %s", [a]),
            ("UPDATE pgq.jobs SET state = 'failed', finished_at = now() WHERE id = %s", [b]),
            ("UPDATE pgq.jobs SET heartbeat_at = now() WHERE id = %s", [c]),  # not a change: no event
        )
        truth = [
            {"id": a, "queue": "default", "task": "a", "state": "queued", "attempt": 0, "progress": False},
            {"id": b, "queue": "mail", "task": "b", "state": "queued", "attempt": 0, "progress": False},
            {"id": c, "queue": "mail", "task": "a", "state": "queued", "attempt": 0, "progress": False},
            {"id": a, "queue": "default", "task": "a", "state": "running", "attempt": 1, "progress": False},
            {"id": b, "queue": "mail", "task": "b", "state": "running", "attempt": 1, "progress": False},
            {"id": b, "queue": "mail", "task": "b", "state": "running", "attempt": 1, "progress": True},
            {"id": a, "queue": "default", "task": "a", "state": "succeeded", "attempt": 1, "progress": False},
            {"id": b, "queue": "mail", "task": "b", "state": "failed", "attempt": 1, "progress": False},
        ]
        for params, client, ws in zip(FILTERS, sse, sockets, strict=True):
            expected = [change for change in truth if _matches(params, change)]
            received = await client.read(len(expected))
            assert [(name, data) for name, data, _ in received] == [("job", e) for e in expected], params
            ws_received = await ws_read(ws, len(expected), [])
            assert [(name, data) for name, data, _ in ws_received] == [("job", e) for e in expected], params
            for _, data, _ in received:
                JobChangeOut.model_validate(data, strict=True)
            with pytest.raises(TimeoutError):  # and nothing else
                await client.read(len(expected) + 1, timeout=0.3)
            client.close()
            await ws.close()


async def test_a_bulk_enqueue_asks_for_a_resync_instead_of_one_event_per_job(dsn: str) -> None:
    async with serve_api(dsn) as (address, app), pgq.App(dsn) as producer:
        everything, running_only = SseClient(address), SseClient(address, {"state": ["running"]})
        await everything.open()
        await running_only.open()
        async with ws_connect(address) as ws:
            await until_subscribed(app, 3)
            await producer.enqueue_many([{"task": "t"} for _ in range(150)])
            await producer.enqueue("t", queue="after")
            [(name, data, _), (after, job, _)] = await everything.read(2)
            assert (name, data) == ("resync", {"reason": "bulk_insert"})
            assert after == "job" and job["queue"] == "after"
            ws_events = await ws_read(ws, 2, [])
            assert ws_events[0][:2] == ("resync", {"reason": "bulk_insert"})
            with pytest.raises(TimeoutError):  # a filter no inserted job can match gets nothing
                await running_only.read(1, timeout=0.3)
        everything.close()
        running_only.close()


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"state": "done"}, "state.0"),
        ({"queue": "no spaces"}, "queue.0"),
        ({"task": "1bad"}, "task.0"),
        ({"stat": "queued"}, "stat"),
        ({"queue": ["q"] * 51}, "queue"),
    ],
)
async def test_invalid_filters_are_422_on_events_and_4422_on_ws(dsn: str, params: dict[str, Any], field: str) -> None:
    async with serve_api(dsn) as (address, app):
        client = SseClient(address, params)
        await client.open()
        assert client.status == 422
        error = httpx.Response(422, content=await client.read_body()).json()["error"]
        assert error["code"] == "invalid_fields"
        assert [f["field"] for f in error["details"]["fields"]] == [field]
        client.close()
        async with ws_connect(address, params) as ws:
            with pytest.raises(ConnectionClosed) as closed:
                await ws.recv()
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 4422
        assert field.split(".")[0] in closed.value.rcvd.reason
        assert job_events(app).subscriber_count == 0


@pytest.mark.parametrize(
    ("token", "status"),
    [(None, 401), ("wrong", 401), (READ_TOKEN, 200), (WRITE_TOKEN, 200)],
    ids=["no_token", "unknown_token", "read_token", "write_token"],
)
async def test_auth_of_events_and_ws(dsn: str, token: str | None, status: int) -> None:
    async with serve_api(dsn) as (address, app):
        client = SseClient(address, token=token)
        await client.open()
        assert client.status == status
        if status == 401:
            assert client.headers["www-authenticate"] == 'Bearer realm="pgq"'
            body = httpx.Response(401, content=await client.read_body()).json()
            assert body["error"]["code"] == "unauthorized"
        client.close()
        async with ws_connect(address, token=token) as ws:
            if status == 401:
                with pytest.raises(ConnectionClosed) as closed:
                    await ws.recv()
                assert closed.value.rcvd is not None and closed.value.rcvd.code == 4401
                assert "bearer token" in closed.value.rcvd.reason
            else:
                await until_subscribed(app, 1)
                await _sql(dsn, ("INSERT INTO pgq.jobs (task) VALUES ('t')", []))
                assert (await ws_read(ws, 1, []))[0][0] == "job"
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        async with httpx.AsyncClient() as http:
            plain = await http.get(f"http://{address}/ws", headers=headers)
        assert plain.status_code == (426 if status == 200 else 401)
        assert plain.json()["error"]["code"] == ("upgrade_required" if status == 200 else "unauthorized")


async def test_without_tokens_events_and_ws_need_none(dsn: str) -> None:
    async with serve_api(dsn, settings=api_settings(read_tokens=frozenset(), write_tokens=frozenset())) as (
        address,
        app,
    ):
        client = SseClient(address, token=None)
        await client.open()
        async with ws_connect(address, token=None) as ws:
            await until_subscribed(app, 2)
            await _sql(dsn, ("INSERT INTO pgq.jobs (task) VALUES ('t')", []))
            assert (await client.read(1))[0][0] == (await ws_read(ws, 1, []))[0][0] == "job"
        client.close()


async def test_a_lost_listen_connection_tells_every_stream_to_resync(dsn: str) -> None:
    async with serve_api(dsn) as (address, app):
        client = SseClient(address)
        await client.open()
        async with ws_connect(address) as ws:
            await until_subscribed(app, 2)
            async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
                cur = await conn.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() "
                    "AND pid <> pg_backend_pid() AND query LIKE '%%LISTEN pgq_job_events%%'"
                )
                assert await cur.fetchall() == [(True,)]
            assert (await client.read(1))[0][:2] == ("resync", {"reason": "reconnected"})
            assert (await ws_read(ws, 1, []))[0][:2] == ("resync", {"reason": "reconnected"})
            await _sql(dsn, ("INSERT INTO pgq.jobs (task) VALUES ('t')", []))  # and it listens again
            assert (await client.read(2))[1][0] == "job"
        client.close()


def _latencies(events: list[Event], committed: dict[int, float]) -> list[float]:
    return [at - committed[data["id"]] for name, data, at in events if name == "job"]


async def test_200_sse_and_200_ws_clients_get_every_event_promptly_while_one_of_each_stalls(dsn: str) -> None:
    buffer, stall = 100, 2.0
    async with serve_api(dsn, event_buffer=buffer, stall_seconds=stall, send_buffer=16384) as (address, app):
        events = job_events(app)
        # The stalled pair hears every queue; the 400 others only the queue "live".
        stalled_ws, stalled_sse = RawWebSocket(address), SseClient(address)
        assert await stalled_ws.open(stall=True) == 101
        await until_subscribed(app, 1)
        [stalled_ws_subscription] = events.queue_wide
        await stalled_sse.open(stall=True)
        readers = [SseClient(address, {"queue": ["live"]}) for _ in range(200)]
        await asyncio.gather(*(r.open() for r in readers))
        sockets = await asyncio.gather(*(ws_connect(address, {"queue": ["live"]}) for _ in range(200)))
        await until_subscribed(app, 402)
        # A flood on another queue fills the stalled clients' sockets and then their buffers.
        async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
            await conn.execute("SET synchronous_commit = off")
            await conn.execute("INSERT INTO pgq.jobs (task, queue) SELECT 'f', 'flood' FROM generate_series(1, 3000)")
            for _ in range(100):
                await conn.execute(
                    "UPDATE pgq.jobs SET state = 'cancelled', finished_at = now() WHERE id IN "
                    "(SELECT id FROM pgq.jobs WHERE queue = 'flood' AND state = 'queued' ORDER BY id LIMIT 30)"
                )
            # The stuck WebSocket is let go after ``stall`` seconds; it reads again at once,
            # while its close frame still waits to be written.
            deadline = asyncio.get_running_loop().time() + 4 * stall + 10
            while stalled_ws_subscription in events.queue_wide:
                assert asyncio.get_running_loop().time() < deadline, "the stuck WebSocket was never let go"
                await asyncio.sleep(0.05)
            stalled_ws_end = asyncio.create_task(stalled_ws.close_code())
            # Now the 400 readers, reading all along: 20 jobs enqueued, each commit timed.
            sse_reads = [asyncio.create_task(r.read(20)) for r in readers]
            ws_reads = [asyncio.create_task(ws_read(ws, 20, [])) for ws in sockets]
            committed: dict[int, float] = {}
            for _ in range(20):
                cur = await conn.execute("INSERT INTO pgq.jobs (task, queue) VALUES ('t', 'live') RETURNING id")
                row = await cur.fetchone()
                assert row is not None
                committed[row[0]] = asyncio.get_running_loop().time()
        sse_events = await asyncio.gather(*sse_reads)
        ws_events = await asyncio.gather(*ws_reads)
        for received in [*sse_events, *ws_events]:
            assert sorted(data["id"] for _, data, _ in received) == sorted(committed)
        latencies = sorted(x for received in [*sse_events, *ws_events] for x in _latencies(received, committed))
        assert latencies[len(latencies) // 2] < 1.0 and latencies[-1] < 5.0, latencies[-10:]
        # Every buffer stayed within its bound, and both stalled clients were let go: the
        # WebSocket with 1008, the SSE stream dropped mid-stream.
        assert all(s.peak <= buffer for s in events.queue_wide)
        assert len(events.queue_wide) == 400, "the stalled SSE client is still subscribed"
        code, messages = await stalled_ws_end
        assert code == 1008 and messages and all(m["type"] in {"job", "resync"} for m in messages)
        assert not await stalled_sse.read_to_end()  # cut short: no last chunk
        for client in [stalled_sse, *readers]:
            client.close()
        stalled_ws.close()
        await asyncio.gather(*(ws.close() for ws in sockets))


async def _flood(dsn: str, queue: str, jobs: int) -> None:
    """``jobs`` changes on ``queue``, 30 per transaction, as fast as Postgres commits them."""
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        await conn.execute("SET synchronous_commit = off")
        await conn.execute(
            "INSERT INTO pgq.jobs (task, queue) SELECT 'f', %s FROM generate_series(1, %s)", [queue, jobs]
        )
        for _ in range(0, jobs, 30):
            await conn.execute(
                "UPDATE pgq.jobs SET state = 'cancelled', finished_at = now() WHERE id IN "
                "(SELECT id FROM pgq.jobs WHERE queue = %s AND state = 'queued' ORDER BY id LIMIT 30)",
                [queue],
            )


async def test_a_client_that_falls_behind_gets_a_resync_and_then_the_newer_changes(dsn: str) -> None:
    async with serve_api(dsn, event_buffer=50, stall_seconds=60, send_buffer=16384) as (address, app):
        slow_sse, slow_ws = SseClient(address), RawWebSocket(address)
        await slow_sse.open(stall=True)
        assert await slow_ws.open(stall=True) == 101
        await until_subscribed(app, 2)
        await _flood(dsn, "flood", 3000)
        assert all(s.dropped > 0 and s.waiting <= 50 for s in job_events(app).queue_wide)
        await _sql(dsn, ("INSERT INTO pgq.jobs (task, queue) VALUES ('t', 'after')", []))
        # Reading again, each gets what was already written, a resync, and the changes since.
        received = await slow_sse.read(1)
        while received[-1][1].get("queue") != "after":
            received = await slow_sse.read(len(received) + 1)
        resyncs = [data for name, data, _ in received if name == "resync"]
        assert resyncs[0] == {"reason": "bulk_insert"} and {"reason": "overflow"} in resyncs
        assert len(received) < 3000  # the dropped changes never came
        messages: list[dict[str, Any]] = []
        async for opcode, payload in slow_ws.frames():
            messages.append(json.loads(payload))
            if opcode != 0x1 or messages[-1].get("queue") == "after":
                break
        assert {"type": "resync", "reason": "overflow"} in messages and messages[-1]["queue"] == "after"
        slow_sse.close()
        slow_ws.close()
