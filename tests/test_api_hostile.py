"""What an anonymous or hostile client can do to the API: nothing it varies may grow
without bound, leak connection details, write a job from bad input, or cause a 500."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from typing import Any

import httpx
import psycopg
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

import pgq
from pgq.api import create_app
from tests.conftest import READ, api_settings
from tests.helpers import count_rows

pytestmark = pytest.mark.anyio


async def test_junk_methods_and_paths_do_not_grow_the_metrics(api: httpx.AsyncClient) -> None:
    before = len((await api.get("/metrics")).text)
    for i in range(300):
        await api.request(f"JUNK{i}", "/jobs")
        await api.get(f"/nowhere/{i}")
    text = (await api.get("/metrics")).text
    assert len(text) < before + 6000  # a few new series, not 600
    assert "JUNK" not in text and "/nowhere" not in text
    assert 'method="other",route="/jobs",status="405"' in text
    assert 'method="GET",route="unmatched",status="404"' in text


async def test_a_burst_of_health_checks_shares_the_pool_instead_of_opening_connections(dsn: str) -> None:
    app = create_app(pgq.App(dsn, pool_max_size=4), settings=api_settings())
    dbname = psycopg.conninfo.conninfo_to_dict(dsn)["dbname"]
    most = [0]
    stop = threading.Event()

    def sample() -> None:
        with psycopg.connect(dsn, autocommit=True) as conn:
            while not stop.is_set():
                row = conn.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = %s", [dbname]).fetchone()
                most[0] = max(most[0], int(row[0]) if row else 0)
                time.sleep(0.005)

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://pgq") as client:
                responses = await asyncio.gather(*(client.get("/health") for _ in range(300)))
    finally:
        stop.set()
        sampler.join(10)
    assert {r.status_code for r in responses} == {200}
    # The sampler, the listener and the pool (at most 4): not one per request.
    assert most[0] <= 1 + 1 + 4, most[0]


@pytest.mark.parametrize(
    ("args", "mentions"),
    [
        ({"a\x00": 1}, "argument name 'a\\x00' contains a NUL"),
        ({"a": {"b\x00": 1}}, "argument 'a' has a key containing a NUL"),
        ({"a": [{"k": "v\x00"}]}, "contains a NUL character"),
        ({"a": 10**4001}, "more than 4000 digits"),
    ],
)
async def test_nul_in_an_argument_name_or_nested_key_is_refused_before_the_write(
    api: httpx.AsyncClient, dsn: str, args: dict[str, Any], mentions: str
) -> None:
    async with pgq.App(dsn) as app:
        with pytest.raises(ValueError, match=r"NUL|4000 digits") as info:
            await app.enqueue("t", args)
        assert mentions in str(info.value)
    if not any(isinstance(v, int) for v in args.values()):  # JSON parsers refuse such ints themselves
        response = await api.post("/jobs", json={"task": "t", "args": args})
        assert response.status_code == 422, response.text
        assert response.json()["error"]["details"]["fields"][0]["field"] == "args"
    assert count_rows(dsn) == 0


async def test_library_readers_refuse_nul_in_names_with_a_typed_error(dsn: str) -> None:
    async with pgq.App(dsn) as app:
        with pytest.raises(ValueError, match="queue"):
            await app.list_jobs(queue="a\x00b")
        with pytest.raises(ValueError, match="task"):
            await app.list_jobs(task="a\x00b")
        with pytest.raises(ValueError, match="idempotency_key"):
            await app.enqueue("t", idempotency_key="k\x00")
    assert count_rows(dsn) == 0


@pytest.mark.parametrize("path", ["/jobs/{}", "/jobs/{}/wait", "/jobs/{}/events"])
async def test_huge_ids_in_paths_are_404_not_500(api: httpx.AsyncClient, path: str) -> None:
    for huge in ("9" * 5000, str(2**63), "0" * 30 + "1", "1" + "0" * 19):
        response = await api.get(path.format(huge))
        assert response.status_code == 404, (huge[:30], response.text)
        assert response.json()["error"]["code"] == "not_found"
        assert len(response.text) < 300
    for action in ("cancel", "retry"):
        assert (await api.post(f"/jobs/{'9' * 5000}/{action}")).status_code == 404


async def test_huge_and_odd_numbers_in_queries_are_422(api: httpx.AsyncClient) -> None:
    for params in ({"limit": "9" * 5000}, {"cursor": "9" * 5000}, {"cursor": "-1"}):
        assert (await api.get("/jobs", params=params)).status_code == 422, params
    job = (await api.post("/jobs", json={"task": "t"})).json()
    for timeout in ("9" * 5000, "nan", "inf"):
        response = await api.get(f"/jobs/{job['id']}/wait", params={"timeout": timeout})
        assert response.status_code == 422, timeout
    assert "finite number" in (await api.get(f"/jobs/{job['id']}/wait", params={"timeout": "nan"})).text
    assert (await api.get("/jobs", params={"cursor": "9" * 19})).json()["jobs"][0]["id"] == job["id"]


async def test_library_reads_and_changes_of_ids_beyond_bigint_are_not_found(dsn: str) -> None:
    async with pgq.App(dsn) as app:
        for huge in (10**5000, 2**63, 0, -1):
            with pytest.raises(pgq.JobNotFoundError):
                await app.get_job(huge)
            with pytest.raises(pgq.JobNotFoundError):
                await app.cancel(huge)
            with pytest.raises(pgq.JobNotFoundError):
                await app.retry(huge)


async def test_cancelling_a_cancelled_job_is_409_as_the_readme_says(api: httpx.AsyncClient, dsn: str) -> None:
    job = (await api.post("/jobs", json={"task": "t"})).json()
    assert (await api.post(f"/jobs/{job['id']}/cancel")).status_code == 200
    again = await api.post(f"/jobs/{job['id']}/cancel")
    assert again.status_code == 409, again.text
    assert again.json()["error"]["details"] == {"state": "cancelled"}
    async with pgq.App(dsn) as app:
        with pytest.raises(pgq.JobStateError, match="is cancelled and cannot be cancelled"):
            await app.cancel(job["id"])


async def test_oldest_age_metric_is_absent_for_a_queue_with_nothing_waiting(api: httpx.AsyncClient) -> None:
    await api.post("/jobs", json={"task": "t", "queue": "later", "delay": 600})
    await api.post("/jobs", json={"task": "t", "queue": "now"})
    queues = {q["queue"]: q for q in (await api.get("/queues")).json()["queues"]}
    assert queues["later"]["oldest_queued_seconds"] is None
    text = (await api.get("/metrics")).text
    assert 'pgq_queue_oldest_queued_age_seconds{queue="later"}' not in text
    assert 'pgq_queue_oldest_queued_age_seconds{queue="now"}' in text


async def test_an_unexpected_error_is_logged_once_and_answered_500_as_json(
    dsn: str, caplog: pytest.LogCaptureFixture
) -> None:
    app = create_app(pgq.App(dsn), settings=api_settings())

    async def broken(request: Request) -> Response:
        raise RuntimeError("a bug")

    app.router.routes.append(Route("/broken", broken))
    transport = httpx.ASGITransport(app=app)  # re-raises whatever the app lets escape
    with caplog.at_level(logging.ERROR):
        async with httpx.AsyncClient(transport=transport, base_url="http://pgq", headers=READ) as client:
            response = await client.get("/broken")
    assert response.status_code == 500
    assert response.json()["error"] == {"code": "internal_error", "message": "internal server error", "details": {}}
    assert "a bug" not in response.text
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and "unhandled error on GET /broken" in errors[0].getMessage()


async def test_wait_answers_at_its_timeout_with_the_job_as_it_is_now(
    api: httpx.AsyncClient, api_app: Starlette, dsn: str
) -> None:
    job = (await api.post("/jobs", json={"task": "t"})).json()
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(
            "UPDATE pgq.jobs SET state = 'running', attempt = 1, worker_id = 'w', started_at = now(), "
            "heartbeat_at = now() WHERE id = %s",
            [job["id"]],
        )
    waiting = asyncio.create_task(api.get(f"/jobs/{job['id']}/wait", params={"timeout": 1.5}))
    await asyncio.sleep(0.5)
    # A cancel request on a running job changes no state, so nothing announces it.
    assert (await api.post(f"/jobs/{job['id']}/cancel")).json()["cancel_requested_at"] is not None
    response = await waiting
    assert response.status_code == 200
    assert response.json()["state"] == "running" and response.json()["cancel_requested_at"] is not None
