"""The HTTP API through its ASGI app on a real database: each endpoint's success and error paths."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from typing import Any

import httpx
import psycopg
import pytest
from starlette.applications import Starlette
from starlette.routing import Mount, Route, WebSocketRoute

import pgq
from pgq._db import SCHEMA_HEAD
from pgq.api import create_app
from pgq.api.openapi import document
from pgq.db import queues
from tests.conftest import WRITE, api_settings
from tests.helpers import count_rows

pytestmark = pytest.mark.anyio


async def _get_health(dsn: str) -> httpx.Response:
    transport = httpx.ASGITransport(app=create_app(pgq.App(dsn)))
    async with httpx.AsyncClient(transport=transport, base_url="http://pgq") as client:
        return await client.get("/health")


async def test_health_is_ok_on_a_migrated_database(dsn: str) -> None:
    response = await _get_health(dsn)
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "schema_revision": SCHEMA_HEAD}


async def test_health_is_503_before_migration(empty_dsn: str) -> None:
    response = await _get_health(empty_dsn)
    assert response.status_code == 503
    assert "pgq migrate" in response.json()["schema"]


async def test_health_is_503_when_the_database_is_unreachable_and_keeps_the_details_in_the_log(
    caplog: pytest.LogCaptureFixture,
) -> None:
    response = await _get_health("postgresql://nobody:secret@127.0.0.1:1/nothing")
    assert response.status_code == 503
    assert response.json() == {"status": "unavailable", "database": "the database does not answer (see the API's log)"}
    for detail in ("nobody", "secret", "127.0.0.1", "nothing", "refused"):
        assert detail not in response.text
    logged = [r.getMessage() for r in caplog.records if r.name == "pgq.api" and "health" in r.getMessage()]
    assert len(logged) == 1 and "127.0.0.1" in logged[0] and "secret" not in logged[0]


# -- POST /jobs ---------------------------------------------------------------------------


async def test_post_jobs_enqueues_with_every_option(api: httpx.AsyncClient, dsn: str) -> None:
    run_at = (dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)).isoformat()
    response = await api.post(
        "/jobs",
        json={
            "task": "send_email",
            "args": {"to": "a@b.c", "n": [1, 2]},
            "queue": "emails",
            "priority": -5,
            "run_at": run_at,
            "max_attempts": 3,
            "idempotency_key": "welcome:1",
        },
    )
    assert response.status_code == 201, response.text
    job = response.json()
    assert job["task"] == "send_email" and job["args"] == {"to": "a@b.c", "n": [1, 2]}
    assert (job["queue"], job["priority"], job["max_attempts"], job["state"]) == ("emails", -5, 3, "scheduled")
    assert dt.datetime.fromisoformat(job["run_at"]) == dt.datetime.fromisoformat(run_at)
    assert count_rows(dsn, "id = %s AND idempotency_key = 'welcome:1'", [job["id"]]) == 1

    delayed = await api.post("/jobs", json={"task": "x", "delay": 30})
    assert delayed.status_code == 201 and delayed.json()["state"] == "scheduled"
    plain = await api.post("/jobs", json={"task": "x"})
    assert plain.status_code == 201 and plain.json()["state"] == "queued" and plain.json()["queue"] == "default"


async def test_repeated_idempotency_key_returns_the_existing_job_with_200(api: httpx.AsyncClient, dsn: str) -> None:
    first = await api.post("/jobs", json={"task": "charge", "idempotency_key": "order:7"})
    again = await api.post("/jobs", json={"task": "charge", "idempotency_key": "order:7", "args": {"other": 1}})
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json()["id"] == first.json()["id"] and again.json()["args"] == {}
    assert count_rows(dsn) == 1


_BAD_BODIES: list[tuple[str, bytes, str, int, str]] = [
    ("malformed JSON", b'{"task": ', "application/json", 400, "malformed_json"),
    ("empty body", b"", "application/json", 400, "malformed_json"),
    ("invalid UTF-8", b'{"task": "\xff"}', "application/json", 400, "malformed_json"),
    ("form data", b"task=x", "application/x-www-form-urlencoded", 415, "unsupported_media_type"),
    ("no content type", b'{"task": "x"}', "", 415, "unsupported_media_type"),
    ("not an object", b"[1, 2]", "application/json", 422, "invalid_fields"),
    ("unknown field", b'{"task": "x", "argz": {}}', "application/json", 422, "argz"),
    ("missing task", b'{"args": {}}', "application/json", 422, "task"),
    ("bad task name", b'{"task": "1 drop table"}', "application/json", 422, "task"),
    ("task with newline", b'{"task": "x\\n"}', "application/json", 422, "task"),
    ("bad queue", b'{"task": "x", "queue": "a b"}', "application/json", 422, "queue"),
    ("priority too big", b'{"task": "x", "priority": 40000}', "application/json", 422, "priority"),
    ("priority a string", b'{"task": "x", "priority": "1"}', "application/json", 422, "priority"),
    ("boolean attempts", b'{"task": "x", "max_attempts": true}', "application/json", 422, "max_attempts"),
    ("zero attempts", b'{"task": "x", "max_attempts": 0}', "application/json", 422, "max_attempts"),
    ("negative delay", b'{"task": "x", "delay": -1}', "application/json", 422, "delay"),
    ("huge delay", b'{"task": "x", "delay": 1e300}', "application/json", 422, "delay"),
    ("naive run_at", b'{"task": "x", "run_at": "2030-01-01T00:00:00"}', "application/json", 422, "run_at"),
    (
        "run_at and delay",
        b'{"task": "x", "run_at": "2030-01-01T00:00:00Z", "delay": 1}',
        "application/json",
        422,
        "both",
    ),
    ("args not an object", b'{"task": "x", "args": [1]}', "application/json", 422, "args"),
    ("NUL in an argument", b'{"task": "x", "args": {"a": "\\u0000"}}', "application/json", 422, "NUL"),
    ("NUL in idempotency key", b'{"task": "x", "idempotency_key": "\\u0000"}', "application/json", 422, "NUL"),
    (
        "lone surrogate in an argument",
        b'{"task": "x", "args": {"a": "\\ud800"}}',
        "application/json",
        400,
        "not valid JSON",
    ),
    (
        "lone surrogate in idempotency key",
        b'{"task": "x", "idempotency_key": "\\udc00"}',
        "application/json",
        400,
        "not valid JSON",
    ),
    ("NaN argument", b'{"task": "x", "args": {"a": NaN}}', "application/json", 422, "argument 'a'"),
    ("empty idempotency key", b'{"task": "x", "idempotency_key": ""}', "application/json", 422, "idempotency_key"),
]


@pytest.mark.parametrize(
    ("body", "content_type", "status", "mentions"), [b[1:] for b in _BAD_BODIES], ids=[b[0] for b in _BAD_BODIES]
)
async def test_bad_input_gets_a_json_error_naming_the_problem_and_writes_no_job(
    api: httpx.AsyncClient, dsn: str, body: bytes, content_type: str, status: int, mentions: str
) -> None:
    headers = {"Content-Type": content_type} if content_type else {}
    response = await api.post("/jobs", content=body, headers=headers)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"code", "message", "details"}
    assert mentions in response.text
    assert count_rows(dsn) == 0


async def test_body_over_the_limit_is_413_while_reading_without_trusting_content_length(dsn: str) -> None:
    app = create_app(pgq.App(dsn), settings=api_settings(max_body_bytes=100))
    transport = httpx.ASGITransport(app=app)
    big = b'{"task": "x", "args": {"a": "' + b"y" * 200 + b'"}}'

    async def chunked() -> AsyncIterator[bytes]:  # no Content-Length header at all
        for i in range(0, len(big), 50):
            yield big[i : i + 50]

    async with httpx.AsyncClient(transport=transport, base_url="http://pgq", headers=WRITE) as client:
        declared = await client.post("/jobs", content=big, headers={"Content-Type": "application/json"})
        streamed = await client.post("/jobs", content=chunked(), headers={"Content-Type": "application/json"})
        small = await client.post("/jobs", json={"task": "x"})
    assert declared.status_code == streamed.status_code == 413
    assert streamed.json()["error"]["details"] == {"max_bytes": 100}
    assert small.status_code == 201
    assert count_rows(dsn) == 1


# -- reading jobs ---------------------------------------------------------------------------


async def test_get_job_returns_it_and_unknown_ids_are_404(api: httpx.AsyncClient) -> None:
    created = (await api.post("/jobs", json={"task": "x", "args": {"a": 1}})).json()
    response = await api.get(f"/jobs/{created['id']}")
    assert response.status_code == 200 and response.json() == created
    for missing in (999, 2**63, 10**30):
        gone = await api.get(f"/jobs/{missing}")
        assert gone.status_code == 404 and gone.json()["error"]["code"] == "not_found"
    assert (await api.get("/jobs/abc")).status_code == 404


async def test_list_pages_newest_first_and_stays_stable_under_concurrent_inserts(api: httpx.AsyncClient) -> None:
    ids = [(await api.post("/jobs", json={"task": "x", "args": {"i": i}})).json()["id"] for i in range(5)]
    seen: list[int] = []
    cursor: str | None = None
    while True:
        params: dict[str, Any] = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = (await api.get("/jobs", params=params)).json()
        seen += [j["id"] for j in page["jobs"]]
        await api.post("/jobs", json={"task": "x"})  # a newer job arrives between pages
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == sorted(ids, reverse=True)


async def test_list_filters_and_rejects_bad_parameters(api: httpx.AsyncClient) -> None:
    await api.post("/jobs", json={"task": "a", "queue": "q1"})
    await api.post("/jobs", json={"task": "b", "queue": "q2", "delay": 60})
    only = (await api.get("/jobs", params={"queue": "q2", "state": "scheduled", "task": "b"})).json()
    assert [j["task"] for j in only["jobs"]] == ["b"] and only["next_cursor"] is None
    assert (await api.get("/jobs", params={"state": "queued"})).json()["jobs"][0]["task"] == "a"
    for params, field in [
        ({"state": "done"}, "state"),
        ({"limit": "0"}, "limit"),
        ({"limit": "many"}, "limit"),
        ({"cursor": "bm9wZQ"}, "cursor"),
        ({"queue": "a\x00b"}, "queue"),
        ({"colour": "red"}, "colour"),
    ]:
        response = await api.get("/jobs", params=params)
        assert response.status_code == 422, params
        assert [f["field"] for f in response.json()["error"]["details"]["fields"]] == [field]


# -- cancel and retry -------------------------------------------------------------------------


async def test_cancel_and_retry_follow_the_library_and_conflicts_are_409(api: httpx.AsyncClient, dsn: str) -> None:
    job = (await api.post("/jobs", json={"task": "x"})).json()
    cancelled = await api.post(f"/jobs/{job['id']}/cancel")
    assert cancelled.status_code == 200 and cancelled.json()["state"] == "cancelled"
    retried = await api.post(f"/jobs/{job['id']}/retry")
    assert retried.status_code == 200 and retried.json()["state"] == "queued"
    again = await api.post(f"/jobs/{job['id']}/retry")
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "state_conflict"
    assert again.json()["error"]["details"] == {"state": "queued"}
    assert "only failed or cancelled" in again.json()["error"]["message"]

    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(
            "UPDATE pgq.jobs SET state = 'succeeded', attempt = 1, finished_at = now(), result = '1' WHERE id = %s",
            [job["id"]],
        )
    refused = await api.post(f"/jobs/{job['id']}/cancel")
    assert refused.status_code == 409 and refused.json()["error"]["details"]["state"] == "succeeded"
    assert (await api.post("/jobs/424242/cancel")).status_code == 404
    assert (await api.post("/jobs/424242/retry")).status_code == 404


async def test_unknown_routes_and_wrong_methods_are_json_errors(api: httpx.AsyncClient) -> None:
    missing = await api.get("/nope")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
    wrong = await api.delete("/jobs")
    assert wrong.status_code == 405 and wrong.json()["error"]["code"] == "method_not_allowed"
    assert {"GET", "POST"} <= set(wrong.headers["allow"].replace(" ", "").split(","))
    assert (await api.get("/jobs/1/cancel")).status_code == 405


# -- queues, workers, metrics, openapi ------------------------------------------------------------


async def test_queues_count_by_state_with_oldest_age_and_recent_finishes(api: httpx.AsyncClient, dsn: str) -> None:
    for body in [{"task": "x"}, {"task": "x"}, {"task": "x", "delay": 60}, {"task": "y", "queue": "other"}]:
        await api.post("/jobs", json=body)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(
            "UPDATE pgq.jobs SET run_at = now() - interval '90 seconds', created_at = now() - interval '90 seconds' "
            "WHERE state = 'queued'"
        )
        conn.execute("UPDATE pgq.jobs SET state = 'cancelled', finished_at = now() WHERE queue = 'other'")
    response = await api.get("/queues")
    assert response.status_code == 200
    queues = {q["queue"]: q for q in response.json()["queues"]}
    default, other = queues["default"], queues["other"]
    assert default["counts"] == {
        "waiting": 0, "scheduled": 1, "queued": 2, "running": 0,
        "retrying": 0, "succeeded": 0, "failed": 0, "cancelled": 0,
    }  # fmt: skip
    assert 89 < default["oldest_queued_seconds"] < 600
    assert other["counts"]["cancelled"] == 1 and other["oldest_queued_seconds"] is None
    assert other["finished_last_minute"] == {"succeeded": 0, "failed": 0, "cancelled": 1}
    assert default["final_counts_estimated"] is False


async def test_large_tables_estimate_finished_counts_from_statistics(dsn: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO pgq.jobs (task, queue, state, attempt, finished_at, result) "
            "SELECT 'x', 'bulk', 'succeeded', 1, now() - interval '1 hour', '1' FROM generate_series(1, 5000)"
        )
        conn.execute("INSERT INTO pgq.jobs (task, queue) SELECT 'x', 'bulk' FROM generate_series(1, 3)")
        conn.execute("ANALYZE pgq.jobs")
    async with pgq.App(dsn) as app:
        (stats,) = await app.run(queues.stats(exact_final_below=1000))
    assert stats.final_counts_estimated
    assert 4000 < stats.counts["succeeded"] < 6000
    assert stats.counts["queued"] == 3  # non-final states are always exact


async def test_workers_lists_the_rows_of_pgq_workers(api: httpx.AsyncClient, dsn: str) -> None:
    assert (await api.get("/workers")).json() == {"workers": []}
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO pgq.workers (id, host, pid, queues, concurrency, heartbeat_at) "
            "VALUES ('h:1:a', 'h', 1, '{default,emails}', 10, now() - interval '3 seconds')"
        )
    (worker,) = (await api.get("/workers")).json()["workers"]
    assert (worker["id"], worker["host"], worker["pid"], worker["concurrency"]) == ("h:1:a", "h", 1, 10)
    assert worker["queues"] == ["default", "emails"] and 2.5 < worker["seconds_since_heartbeat"] < 60
    assert dt.datetime.fromisoformat(worker["started_at"]) <= dt.datetime.fromisoformat(
        worker["heartbeat_at"]
    ) + dt.timedelta(seconds=5)


async def test_metrics_expose_queue_depth_age_and_request_latency(api: httpx.AsyncClient) -> None:
    await api.post("/jobs", json={"task": "x", "queue": "mail"})
    response = await api.get("/metrics")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    text = response.text
    assert 'pgq_queue_jobs{queue="mail",state="queued"} 1.0' in text
    assert 'pgq_queue_oldest_queued_age_seconds{queue="mail"}' in text
    assert "# TYPE pgq_jobs_finished_total counter" in text
    assert 'pgq_api_request_duration_seconds_count{method="POST",route="/jobs",status="201"} 1.0' in text


async def test_openapi_describes_every_route_and_method(api: httpx.AsyncClient, api_app: Starlette) -> None:
    served = (await api.get("/openapi.json")).json()
    assert served == document() and served["openapi"].startswith("3.")
    for route in api_app.routes:
        if isinstance(route, Mount) and route.path == "/ui":
            continue  # the dashboard: HTML pages, not part of the JSON API's document
        if isinstance(route, WebSocketRoute):  # described as GET with 101 (its plain-HTTP twin answers 426)
            assert "101" in served["paths"][route.path]["get"]["responses"]
            continue
        assert isinstance(route, Route)
        path = route.path.replace(":int}", "}")
        assert route.methods is not None
        assert {m.lower() for m in route.methods} - {"head"} == set(served["paths"][path]), path
