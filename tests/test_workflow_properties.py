"""The dependency bookkeeping under any sequence of outcomes, retries and cancels.

Hypothesis draws a random graph (each step waits for a random set of earlier ones, and
runs anyway after a failed parent or not), then a random sequence of operations through
the real statements: a ready step starts and succeeds or fails (``job_record_outcomes``,
as a worker records it), a failed or cancelled step is retried, a step is cancelled.
After every operation, for every step:

- ``parents_left`` is the number of its parents that are not final;
- a step that waits has a parent to wait for;
- a step that cancels on a parent's failure has only started if every parent succeeded;
- a step a parent cancelled has a parent that is still failed or cancelled (a retry of
  that step is refused: retrying the parent revives it).

At the end every remaining step is run to success; then every step is final, and one
that cancels on a parent's failure succeeded only if all its parents did.
"""

from __future__ import annotations

from typing import Any

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from psycopg.rows import dict_row

import pgq
from pgq._queries import QUERIES
from pgq.canvas import Step

STARTED = ("queued", "scheduled", "running", "retrying", "succeeded", "failed")
FINAL = ("succeeded", "failed", "cancelled")


@st.composite
def graphs(draw: st.DrawFn) -> list[tuple[list[int], bool]]:
    size = draw(st.integers(1, 7))
    return [
        (sorted(draw(st.sets(st.integers(0, i - 1), max_size=3))) if i else [], draw(st.booleans()))
        for i in range(size)
    ]


actions = st.sampled_from(["succeed", "fail", "retry", "cancel"])
operations = st.lists(st.tuples(actions, st.integers(0, 6)), max_size=14)


def _steps(conn: psycopg.Connection[dict[str, Any]], workflow_id: int) -> list[dict[str, Any]]:
    """The steps in the graph's order (step si is graph[i]; the database has them parents first)."""
    rows = conn.execute(
        "SELECT j.*, w.parents_left, w.cancelled_by FROM pgq.jobs AS j "
        "LEFT JOIN pgq.job_waits AS w ON w.job_id = j.id WHERE j.workflow_id = %s",
        [workflow_id],
    ).fetchall()
    return sorted(rows, key=lambda row: int(row["step"][1:]))


def _run(conn: psycopg.Connection[dict[str, Any]], job: dict[str, Any], succeed: bool) -> None:
    """Start a ready job and record its outcome, as a worker would."""
    conn.execute(
        "UPDATE pgq.jobs SET state = 'running', attempt = attempt + 1, started_at = now(), "
        "heartbeat_at = now(), worker_id = 'w' WHERE id = %s AND state = 'queued'",
        [job["id"]],
    )
    error = None if succeed else '{"type": "RuntimeError", "message": "no", "traceback": null}'
    conn.execute(
        QUERIES["job_record_outcomes"],
        {
            "worker_id": "w",
            "ids": [job["id"]],
            "attempts": [job["attempt"] + 1],
            "kinds": ["succeeded" if succeed else "failed"],
            "results": ["1" if succeed else None],
            "errors": [error],
            "retry_in": [None],
            "percents": [None],
            "messages": [None],
        },
    )


def step_blocked(conn: psycopg.Connection[dict[str, Any]], job_id: int) -> bool:
    row = conn.execute(QUERIES["job_blocking_parent"], {"id": job_id}).fetchone()
    return row is not None


def _check(steps: list[dict[str, Any]], graph: list[tuple[list[int], bool]]) -> None:
    for step, (parents, run_anyway) in zip(steps, graph, strict=True):
        states = [steps[p]["state"] for p in parents]
        if parents:
            assert step["parents_left"] == sum(s not in FINAL for s in states), (step["step"], states)
        else:
            assert step["parents_left"] is None
        if step["state"] == "waiting":
            assert step["parents_left"] > 0
        if step["cancelled_by"] is not None:  # cancelled by a parent that is still failed or cancelled
            assert step["state"] == "cancelled" and not run_anyway
            assert any(s in ("failed", "cancelled") for s in states)
        if step["state"] in STARTED and not run_anyway:
            assert all(s == "succeeded" for s in states), (step["step"], step["state"], states)


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(graph=graphs(), ops=operations)
def test_dependency_counts_and_states_hold_under_any_outcomes(
    dsn: str, graph: list[tuple[list[int], bool]], ops: list[tuple[str, int]]
) -> None:
    app = pgq.App(dsn)
    steps = [
        Step("t", {}, name=f"s{i}", options={"on_parent_failure": "run" if run_anyway else "cancel"})
        for i, (_, run_anyway) in enumerate(graph)
    ]
    description = [
        {"name": s.name, "task": "t", "after": [f"s{p}" for p in parents], **s.options}
        for s, (parents, _) in zip(steps, graph, strict=True)
    ]
    with app:
        workflow = app.enqueue_workflow_sync(description)
    with psycopg.connect(dsn, autocommit=True, row_factory=dict_row) as conn:
        _check(_steps(conn, workflow.id), graph)
        for op, index in ops:
            rows = _steps(conn, workflow.id)
            job = rows[index % len(rows)]
            if op in ("succeed", "fail") and job["state"] == "queued":
                _run(conn, job, op == "succeed")
            elif op == "retry" and job["state"] in ("failed", "cancelled"):
                with app:
                    try:
                        app.retry_sync(job["id"])
                    except pgq.JobStateError:  # a parent is failed or cancelled: retry that parent instead
                        assert step_blocked(conn, job["id"])
            elif op == "cancel" and job["state"] in ("waiting", "queued"):
                with app:
                    app.cancel_sync(job["id"])
            _check(_steps(conn, workflow.id), graph)
        # Drain: run every ready step to success until nothing is ready.
        while ready := [r for r in _steps(conn, workflow.id) if r["state"] == "queued"]:
            for job in ready:
                _run(conn, job, True)
            _check(_steps(conn, workflow.id), graph)
        final = _steps(conn, workflow.id)
    for step, (parents, run_anyway) in zip(final, graph, strict=True):
        states = [final[p]["state"] for p in parents]
        assert step["state"] in FINAL, (step["step"], step["state"], states)
        if step["state"] == "succeeded" and not run_anyway:
            assert all(s == "succeeded" for s in states)
