"""Pausing a queue: workers claim nothing from it until it is resumed; running jobs finish.

Through every interface: the library, real worker processes, the HTTP API (with its
token matrix), the CLI, SQL and the metrics.
"""

from __future__ import annotations

import time
from typing import Any

import httpx
import psycopg
import pytest
from starlette.applications import Starlette

import pgq
from tests.conftest import READ_TOKEN, WRITE_TOKEN, pgq_cli
from tests.faults import FAST
from tests.helpers import WorkerProcesses, count_rows, read_runs, wait_until

Conn = psycopg.Connection[Any]


def _claim(conn: Conn, queues: list[str], limit: int = 10) -> list[str]:
    rows = conn.execute("SELECT queue FROM pgq.claim_jobs(%s, %s, 'test-claimer')", (queues, limit)).fetchall()
    return [r[0] for r in rows]


@pytest.mark.slow
def test_pause_stops_claims_of_two_worker_processes_and_resume_wakes_them_at_once(
    dsn: str, start_worker: WorkerProcesses
) -> None:
    # A 30 s poll interval: only the NOTIFY sent by resume can start the jobs in time.
    env = {**FAST, "PGQ_POLL_INTERVAL": "30"}
    workers = [start_worker("--concurrency", "4", env=env) for _ in range(2)]
    with pgq.App(dsn) as app:
        long_job = app.enqueue_sync("sleepy", args={"seconds": 1.5})
        wait_until(lambda: count_rows(dsn, "state = 'running'") == 1, 15, "the long job to start")

        paused = app.pause_queue_sync("default")  # the queue has no pgq.queues row yet
        assert paused.queue == "default" and paused.paused and paused.paused_at is not None
        waiting = [app.enqueue_sync("noop", args={"n": i}).id for i in range(10)]  # each insert NOTIFYs

        time.sleep(2.0)  # the long job ends meanwhile; woken workers find nothing to claim
        assert app.get_job_sync(long_job.id).state == pgq.JobState.SUCCEEDED  # running jobs finish
        assert count_rows(dsn, "state = 'queued'") == 10
        assert sorted(read_runs(start_worker.run_log)) == [long_job.id]

        resumed_at = time.monotonic()
        resumed = app.resume_queue_sync("default")
        assert resumed == pgq.QueuePause("default", None) and not resumed.paused
        wait_until(lambda: count_rows(dsn, "state = 'succeeded'") == 11, 10, "the waiting jobs to run")
        assert time.monotonic() - resumed_at < 5  # well before either worker's 30 s poll
    assert sorted(read_runs(start_worker.run_log)) == sorted([long_job.id, *waiting])
    assert all(w.poll() is None for w in workers)


def test_a_paused_queue_gives_nothing_to_a_claim_of_several_queues_or_with_limits(dsn: str, conn: Conn) -> None:
    with pgq.App(dsn) as app:
        app.enqueue_many_sync([{"task": "t", "queue": q} for q in ("a", "b", "c") for _ in range(3)])
        app.set_queue_limits_sync("c", max_running=10)
        app.pause_queue_sync("a")
        app.pause_queue_sync("c")
        assert _claim(conn, ["a"]) == []
        assert _claim(conn, ["c"]) == []
        assert sorted(_claim(conn, ["a", "b", "c"])) == ["b", "b", "b"]
        assert app.queue_limits_sync()[-1] == pgq.QueueLimits("c", max_running=10)  # limits are kept
        app.resume_queue_sync("a")
        app.resume_queue_sync("c")
        assert sorted(_claim(conn, ["a", "c"])) == ["a", "a", "a", "c", "c", "c"]


def test_pause_and_resume_are_visible_in_sql_and_idempotent(dsn: str, conn: Conn) -> None:
    with pgq.App(dsn) as app:
        app.enqueue_sync("t", queue="busy")
        first = app.pause_queue_sync("empty")  # no jobs and no row: pausing creates the row
        again = app.pause_queue_sync("empty")
        assert again.paused_at == first.paused_at  # pausing twice keeps the first time
        app.pause_queue_sync("busy")
        assert [q.queue for q in app.paused_queues_sync()] == ["busy", "empty"]

        rows = conn.execute("SELECT queue, paused_at IS NOT NULL FROM pgq.queues ORDER BY queue").fetchall()
        assert rows == [("busy", True), ("empty", True)]
        assert conn.execute("SELECT queue, state, jobs, paused FROM pgq.queue_stats").fetchall() == [
            ("busy", "queued", 1, True)
        ]
        stats = {s.queue: s for s in app.queue_stats_sync()}
        assert stats["empty"].paused and stats["empty"].counts["queued"] == 0  # listed without jobs
        assert stats["busy"].paused and stats["busy"].paused_at is not None

        assert app.resume_queue_sync("never-paused") == pgq.QueuePause("never-paused")  # a no-op
        conn.execute("LISTEN pgq_jobs")
        app.resume_queue_sync("busy")
        assert [n.payload for n in conn.notifies(timeout=2, stop_after=1)] == ["busy"]
        assert [q.queue for q in app.paused_queues_sync()] == ["empty"]
        assert conn.execute("SELECT paused FROM pgq.queue_stats").fetchall() == [(False,)]


@pytest.mark.parametrize("name", ["", "bad queue", "a" * 129, "a\n", "caf\u00e9"])
def test_pause_refuses_a_bad_queue_name_and_writes_nothing(dsn: str, conn: Conn, name: str) -> None:
    with pgq.App(dsn) as app:
        for change in (app.pause_queue_sync, app.resume_queue_sync):
            with pytest.raises(ValueError, match=r"queue name .* is invalid"):
                change(name)
    assert conn.execute("SELECT count(*) FROM pgq.queues").fetchone() == (0,)


_TOKENS = {"none": None, "wrong": "not-a-token", "read": READ_TOKEN, "write": WRITE_TOKEN}


@pytest.mark.anyio
@pytest.mark.parametrize("action", ["pause", "resume"])
@pytest.mark.parametrize("token", _TOKENS)
async def test_pause_endpoints_need_a_write_token(api_app: Starlette, dsn: str, token: str, action: str) -> None:
    secret = _TOKENS[token]
    transport = httpx.ASGITransport(app=api_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://pgq") as client:
        headers = {"Authorization": f"Bearer {secret}"} if secret else {}
        response = await client.post(f"/queues/mail/{action}", headers=headers)
    expected = {"none": 401, "wrong": 401, "read": 403, "write": 200}[token]
    assert response.status_code == expected, response.text
    if expected != 200:
        assert response.json()["error"]["code"] == {401: "unauthorized", 403: "forbidden"}[expected]
        assert count_rows(dsn, "true") == 0
        with psycopg.connect(dsn) as conn:
            assert conn.execute("SELECT count(*) FROM pgq.queues").fetchone() == (0,)


@pytest.mark.anyio
async def test_pause_endpoints_answer_the_queue_state_shown_in_queues_and_metrics(api: httpx.AsyncClient) -> None:
    await api.post("/jobs", json={"task": "x", "queue": "mail"})
    paused = await api.post("/queues/mail/pause")
    assert paused.status_code == 200
    body = paused.json()
    assert body["queue"] == "mail" and body["paused"] is True and body["paused_at"]
    assert (await api.post("/queues/idle/pause")).json()["paused"] is True

    queues = {q["queue"]: q for q in (await api.get("/queues")).json()["queues"]}
    assert queues["mail"]["paused"] is True and queues["mail"]["paused_at"] == body["paused_at"]
    assert queues["idle"]["paused"] is True and queues["idle"]["counts"]["queued"] == 0
    metrics = (await api.get("/metrics")).text
    assert 'pgq_queue_paused{queue="mail"} 1.0' in metrics
    assert 'pgq_queue_paused{queue="idle"} 1.0' in metrics

    resumed = await api.post("/queues/mail/resume")
    assert resumed.status_code == 200
    assert resumed.json() == {"queue": "mail", "paused": False, "paused_at": None}
    queues = {q["queue"]: q for q in (await api.get("/queues")).json()["queues"]}
    assert queues["mail"]["paused"] is False and queues["mail"]["paused_at"] is None
    assert 'pgq_queue_paused{queue="mail"} 0.0' in (await api.get("/metrics")).text


@pytest.mark.anyio
@pytest.mark.parametrize("path", ["bad%20name", "a" * 129, "a%0A", "caf%C3%A9", "x" * 5000])
async def test_pause_endpoints_refuse_bad_queue_names_with_422(api: httpx.AsyncClient, dsn: str, path: str) -> None:
    for action in ("pause", "resume"):
        response = await api.post(f"/queues/{path}/{action}")
        assert response.status_code == 422, response.text
        error = response.json()["error"]
        assert error["code"] == "invalid_fields" and "invalid queue name" in error["message"]
        assert len(response.text) < 300  # the name is not echoed back
    with psycopg.connect(dsn) as conn:
        assert conn.execute("SELECT count(*) FROM pgq.queues").fetchone() == (0,)


@pytest.mark.anyio
async def test_pause_endpoints_take_only_post(api: httpx.AsyncClient) -> None:
    assert (await api.get("/queues/mail/pause")).status_code == 405
    assert (await api.post("/queues/mail/stop")).status_code == 404


def test_pause_resume_and_queues_commands(dsn: str) -> None:
    with pgq.App(dsn) as app:
        app.enqueue_sync("t", queue="mail")
    paused = pgq_cli("pause", "mail", dsn=dsn)
    assert paused.returncode == 0, paused.stderr
    assert paused.stdout.startswith("queue mail paused (since ")
    assert pgq_cli("pause", "idle", dsn=dsn).returncode == 0
    lines = pgq_cli("queues", dsn=dsn).stdout.splitlines()
    assert lines[0].split() == ["QUEUE", "STATE", "JOBS", "OLDEST", "QUEUED", "PAUSED"]
    assert lines[1].split() == ["idle", "-", "0", "-", "paused"]
    assert lines[2].split()[:3] == ["mail", "queued", "1"] and lines[2].split()[-1] == "paused"

    resumed = pgq_cli("resume", "mail", dsn=dsn)
    assert (resumed.returncode, resumed.stdout) == (0, "queue mail resumed\n")
    assert pgq_cli("queues", dsn=dsn).stdout.splitlines()[2].split()[-1] == "-"

    bad = pgq_cli("pause", "bad queue", dsn=dsn)
    assert bad.returncode == 2 and "queue name 'bad queue' is invalid" in bad.stderr and not bad.stdout
