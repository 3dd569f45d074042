"""Least privilege: what each pgq role can and cannot do, checked with SET ROLE."""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest

import pgq
from pgq._queries import QUERIES
from tests.conftest import pgq_cli
from tests.helpers import success_params

Conn = psycopg.Connection[tuple[object, ...]]


@pytest.fixture
def as_role(dsn: str) -> Iterator[object]:
    result = pgq_cli("roles", dsn=dsn)
    assert result.returncode == 0, result.stderr
    assert "pgq_producer, pgq_worker, pgq_reader" in result.stdout
    conns: list[Conn] = []

    def connect(role: str) -> Conn:
        conn = psycopg.connect(dsn, autocommit=True)
        conn.execute(psycopg.sql.SQL("SET ROLE {}").format(psycopg.sql.Identifier(role)))
        conns.append(conn)
        return conn

    yield connect
    for conn in conns:
        conn.close()


def _denied(conn: Conn, statement: str) -> bool:
    try:
        conn.execute(statement.encode())
    except psycopg.errors.InsufficientPrivilege:
        return True
    return False


def test_producer_can_enqueue_and_read_but_not_change_jobs(dsn: str, as_role: object) -> None:
    conn = as_role("pgq_producer")  # type: ignore[operator]
    app = pgq.App(dsn)
    job = app.enqueue_sync("noop", {"n": 1}, conn=conn)
    again = app.enqueue_sync("noop", idempotency_key="k", conn=conn)
    assert app.enqueue_sync("noop", idempotency_key="k", conn=conn).id == again.id
    assert conn.execute("SELECT state FROM pgq.jobs WHERE id = %s", (job.id,)).fetchone() == ("queued",)
    assert _denied(conn, "UPDATE pgq.jobs SET priority = 1")
    assert _denied(conn, "DELETE FROM pgq.jobs")
    assert _denied(conn, "SELECT * FROM pgq.leases")
    app.close_sync()


def test_reader_can_only_read(dsn: str, as_role: object) -> None:
    with pgq.App(dsn) as app:
        app.enqueue_sync("noop")
    conn = as_role("pgq_reader")  # type: ignore[operator]
    assert conn.execute("SELECT count(*) FROM pgq.jobs").fetchone() == (1,)
    assert conn.execute("SELECT count(*) FROM pgq.queue_stats").fetchone() == (1,)
    conn.execute("SELECT * FROM pgq.workers, pgq.leases, pgq.alembic_version")
    assert _denied(conn, "INSERT INTO pgq.jobs (task) VALUES ('noop')")
    assert _denied(conn, "UPDATE pgq.jobs SET priority = 1")
    assert _denied(conn, "DELETE FROM pgq.workers")


def test_worker_can_claim_and_maintain_but_not_run_ddl(dsn: str, as_role: object) -> None:
    with pgq.App(dsn) as app:
        job = app.enqueue_sync("noop")
    conn = as_role("pgq_worker")  # type: ignore[operator]
    claimed = conn.execute(QUERIES["job_claim"], {"queues": ["default"], "limit": 5, "worker_id": "w"}).fetchall()
    assert len(claimed) == 1
    conn.execute(QUERIES["lease_acquire"], {"name": "maintenance", "worker_id": "w", "ttl": "1 second"})
    conn.execute(QUERIES["job_rescue_stale"], {"lease": "1 hour", "limit": 10})
    row = conn.execute(QUERIES["job_record_outcomes"], success_params(job.id, 1, "w")).fetchone()
    assert row == (job.id, "succeeded")
    assert _denied(conn, "CREATE TABLE pgq.mine (x int)")
    assert _denied(conn, "DROP TABLE pgq.jobs")
    assert _denied(conn, "ALTER TABLE pgq.jobs ADD COLUMN x int")
    assert _denied(conn, "TRUNCATE pgq.jobs")


def test_producer_can_enqueue_workflows_and_the_worker_can_settle_them(dsn: str, as_role: object) -> None:
    producer = as_role("pgq_producer")  # type: ignore[operator]
    app = pgq.App(dsn)
    parent = app.enqueue_sync("noop", conn=producer)
    child = app.enqueue_sync("noop", depends_on=[parent], conn=producer)
    flow = app.enqueue_workflow_sync(pgq.chain(pgq.Step("noop"), pgq.Step("noop", name="after")), conn=producer)
    assert child.state == "waiting" and [s.state for s in flow.steps] == ["queued", "waiting"]
    assert len(app.enqueue_many_sync([{"task": "noop"}] * 3, conn=producer)) == 3  # COPY takes ids first
    # The producer may mark parents, but change nothing else about a job.
    assert _denied(producer, "UPDATE pgq.jobs SET state = 'queued'")
    worker = as_role("pgq_worker")  # type: ignore[operator]
    claimed = worker.execute(QUERIES["job_claim"], {"queues": ["default"], "limit": 9, "worker_id": "w"}).fetchall()
    assert len(claimed) == 5
    for job_id in (parent.id, flow.steps[0].id):
        assert worker.execute(QUERIES["job_record_outcomes"], success_params(job_id, 1, "w")).fetchone() == (
            job_id,
            "succeeded",
        )
    assert app.get_job_sync(child.id).state == "queued"
    assert app.get_job_sync(flow.steps[1].id).state == "queued"
    assert worker.execute("SELECT count(*) FROM pgq.job_parents").fetchone() == (2,)
    app.close_sync()
