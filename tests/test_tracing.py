"""Traces from enqueue to execution: a job enqueued in a span runs in a span of the same trace.

OpenTelemetry is imported inside the fixtures, not at collection: pgq uses it only once a
process has imported it, and the rest of the suite runs without it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import psycopg
import pytest

import pgq
from tests.helpers import running_worker, wait_final

if TYPE_CHECKING:
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

pytestmark = pytest.mark.anyio

_exporter: list[Any] = []


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    """Finished spans of this test, from the process's one tracer provider (set once)."""
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    if not _exporter:
        exporter = InMemorySpanExporter()
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        trace.set_tracer_provider(provider)
        _exporter.append(exporter)
    exporter = _exporter[0]
    exporter.clear()
    yield exporter
    exporter.clear()


def _run_span(spans: InMemorySpanExporter, job_id: int) -> Any:
    (span,) = [s for s in spans.get_finished_spans() if s.attributes and s.attributes.get("pgq.job.id") == job_id]
    return span


async def test_a_job_enqueued_in_a_span_runs_in_a_child_span_of_the_same_trace(
    dsn: str, spans: InMemorySpanExporter
) -> None:
    from opentelemetry import trace
    from opentelemetry.trace import StatusCode

    app = pgq.App(dsn)

    @app.task
    async def traced(n: int) -> int:
        return n

    @app.task(max_attempts=1)
    async def fails() -> None:
        raise ValueError("no luck")

    tracer = trace.get_tracer("tests")
    async with app:
        with tracer.start_as_current_span("request") as parent:
            job = await traced.enqueue(n=1)
            failing = await fails.enqueue()
        untraced = await traced.enqueue(n=2)
        async with running_worker(app):
            await wait_final(app, [job.id, failing.id, untraced.id])
        stored = await app.get_job(job.id)

    trace_id = parent.get_span_context().trace_id
    assert stored.trace_context is not None and f"{trace_id:032x}" in stored.trace_context["traceparent"]
    assert (await _stored_context(dsn, untraced.id)) is None

    run = _run_span(spans, job.id)
    assert run.name == "pgq.run traced" and run.kind == trace.SpanKind.CONSUMER
    assert run.context.trace_id == trace_id and run.parent is not None
    assert run.parent.span_id == parent.get_span_context().span_id
    assert run.attributes is not None
    assert (
        dict(run.attributes).items()
        >= {"pgq.job.task": "traced", "pgq.job.queue": "default", "pgq.job.attempt": 1}.items()
    )
    assert run.status.status_code != StatusCode.ERROR

    failed = _run_span(spans, failing.id)
    assert failed.context.trace_id == trace_id and failed.status.status_code == StatusCode.ERROR
    (event,) = [e for e in failed.events if e.name == "exception"]
    assert event.attributes is not None and event.attributes["exception.type"] == "ValueError"
    assert event.attributes["exception.message"] == "no luck"

    alone = _run_span(spans, untraced.id)
    assert alone.parent is None and alone.context.trace_id != trace_id


async def test_bulk_enqueue_records_the_trace_context_on_every_path(dsn: str, spans: InMemorySpanExporter) -> None:
    """COPY (ready now, no key), the multi-row INSERT (keys or times), the caller's
    connection, and jobs that wait for others (depends_on, a workflow's steps)."""
    from opentelemetry import trace

    app = pgq.App(dsn)
    async with app:
        with trace.get_tracer("tests").start_as_current_span("batch") as parent:
            copied = await app.enqueue_many([{"task": "t"}, {"task": "t"}])
            inserted = await app.enqueue_many([{"task": "t", "idempotency_key": "k1"}, {"task": "t", "delay": 60}])
            async with await psycopg.AsyncConnection.connect(dsn) as conn:
                own = await app.enqueue("t", conn=conn)
            dependent = await app.enqueue("t", depends_on=[copied[0]])
            flow = await app.enqueue_workflow(pgq.chain(pgq.Step("t"), pgq.Step("t", name="after")))
        plain = await app.enqueue_many([{"task": "t"}])
    trace_id = f"{parent.get_span_context().trace_id:032x}"
    for job in [*copied, *inserted, own, dependent, *flow.steps]:
        assert job.trace_context is not None and trace_id in job.trace_context["traceparent"]
        stored = await _stored_context(dsn, job.id)
        assert stored == job.trace_context
    assert plain[0].trace_context is None and await _stored_context(dsn, plain[0].id) is None


async def _stored_context(dsn: str, job_id: int) -> Any:
    async with await psycopg.AsyncConnection.connect(dsn) as conn:
        cur = await conn.execute("SELECT trace_context FROM pgq.jobs WHERE id = %s", (job_id,))
        row = await cur.fetchone()
    assert row is not None
    return row[0]


async def test_post_jobs_continues_the_callers_traceparent(
    dsn: str, api: httpx.AsyncClient, spans: InMemorySpanExporter
) -> None:
    trace_id, span_id = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
    response = await api.post(
        "/jobs",
        json={"task": "traced", "args": {"n": 3}},
        headers={"traceparent": f"00-{trace_id}-{span_id}-01", "tracestate": "vendor=1"},
    )
    assert response.status_code == 201, response.text
    job_id = response.json()["id"]
    assert response.json()["trace_context"] == {"traceparent": f"00-{trace_id}-{span_id}-01", "tracestate": "vendor=1"}
    bad = await api.post("/jobs", json={"task": "traced", "args": {"n": 4}}, headers={"traceparent": "00-zz-1-01"})
    assert bad.status_code == 201 and bad.json()["trace_context"] is None

    app = pgq.App(dsn)

    @app.task
    async def traced(n: int) -> int:
        return n

    async with app, running_worker(app):
        await wait_final(app, [job_id])
    run = _run_span(spans, job_id)
    assert f"{run.context.trace_id:032x}" == trace_id
    assert run.parent is not None and f"{run.parent.span_id:016x}" == span_id


async def test_link_mode_starts_a_new_trace_linked_to_the_enqueuer(
    dsn: str, spans: InMemorySpanExporter, monkeypatch: pytest.MonkeyPatch
) -> None:
    from opentelemetry import trace

    monkeypatch.setenv("PGQ_TRACE_PARENT", "link")
    app = pgq.App(dsn)
    assert app.settings.trace_parent == "link"

    @app.task
    async def traced(n: int) -> int:
        return n

    async with app:
        with trace.get_tracer("tests").start_as_current_span("request") as parent:
            job = await traced.enqueue(n=1)
        async with running_worker(app):
            await wait_final(app, [job.id])
    run = _run_span(spans, job.id)
    origin = parent.get_span_context()
    assert run.parent is None and run.context.trace_id != origin.trace_id
    assert [link.context.span_id for link in run.links] == [origin.span_id]


def test_without_opentelemetry_in_use_pgq_never_imports_it(dsn: str) -> None:
    """Enqueue, a worker running the job, and the HTTP API: no opentelemetry module loaded."""
    script = textwrap.dedent(
        f"""
        import asyncio, sys
        import pgq, pgq.worker, pgq.api.app
        from tests.helpers import running_worker, wait_final

        app = pgq.App({dsn!r})

        @app.task
        async def plain() -> int:
            return 1

        async def main() -> None:
            async with app, running_worker(app):
                job = await plain.enqueue()
                (done,) = await wait_final(app, [job.id])
                assert done.state == "succeeded" and done.trace_context is None, done
            pgq.api.app.create_app(app)

        asyncio.run(main())
        loaded = sorted(m for m in sys.modules if m.startswith("opentelemetry"))
        print("loaded:", loaded)
        sys.exit(1 if loaded else 0)
        """
    )
    root = Path(__file__).resolve().parent.parent
    env = {**os.environ, "PYTHONPATH": str(root)}
    result = subprocess.run(
        [sys.executable, "-c", script], env=env, cwd=root, capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


async def test_a_hand_edited_trace_context_never_fails_the_job(dsn: str, spans: InMemorySpanExporter) -> None:
    app = pgq.App(dsn)

    @app.task
    async def traced(n: int) -> int:
        return n

    async with app:
        jobs = [await traced.enqueue(n=i) for i in range(3)]
        async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
            for job, junk in zip(jobs, ('["junk"]', '{"traceparent": 5}', '{"traceparent": "nonsense"}'), strict=True):
                await conn.execute("UPDATE pgq.jobs SET trace_context = %s::jsonb WHERE id = %s", (junk, job.id))
        async with running_worker(app):
            done = await wait_final(app, [j.id for j in jobs])
    assert [j.state for j in done] == ["succeeded"] * 3
    assert all(_run_span(spans, j.id).parent is None for j in jobs)
