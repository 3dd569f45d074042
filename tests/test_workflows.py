"""Workflows through the Python API: chains pass results along, fan-in joins fire once,
failed parents cancel their dependents and retrying them revives them, bad graphs are
refused with nothing written, and a cancelled workflow stops."""

from __future__ import annotations

import asyncio
from typing import Any

import psycopg
import pytest
from psycopg_pool import AsyncConnectionPool

import pgq
from pgq import chain, group
from pgq.worker.pruner import Pruner
from tests.helpers import count_rows, running_worker

pytestmark = pytest.mark.anyio


def make_app(dsn: str) -> pgq.App:
    app = pgq.App(dsn)

    @app.task
    def fetch(url: str) -> dict[str, object]:
        return {"url": url, "size": len(url)}

    @app.task
    def scan(n: int) -> int:
        return n * n

    @app.task
    def merge() -> list[object]:
        ctx = pgq.current_job()
        return [p.result for p in ctx.parents]

    @app.task
    def report() -> str:
        merged = pgq.current_job().results["merge"]
        return f"{len(merged)} findings"

    @app.task(max_attempts=1)
    def boom(fail: bool = True) -> str:
        if fail:
            raise RuntimeError("boom")
        return "fixed"

    @app.task
    async def slow() -> None:
        await asyncio.sleep(60)

    return app


async def test_a_chain_of_three_passes_results_along(dsn: str) -> None:
    app = make_app(dsn)
    async with app, running_worker(app):
        wf = await app.enqueue_workflow(
            chain(
                app.tasks["fetch"].step(url="https://a.example"), app.tasks["merge"].step(), app.tasks["report"].step()
            )
        )
        assert [s.step for s in wf.steps] == ["fetch", "merge", "report"]
        assert [s.state for s in wf.steps][1:] == ["waiting", "waiting"]  # the first may have started
        # A job outside the workflow that waits for its last step does not change what
        # ends the workflow.
        follower = await app.enqueue("merge", depends_on=[wf.step("report")])
        done = await wf.wait(timeout=20)
        assert (await app.wait(follower.id, timeout=20)).result == ["1 findings"]
    assert done.state == "succeeded"
    assert done.step("merge").result == [{"url": "https://a.example", "size": 17}]
    assert done.step("report").has_dependents
    assert done.result == "1 findings"


async def test_a_group_of_1000_with_a_callback_runs_it_once_with_every_result(dsn: str) -> None:
    app = make_app(dsn)
    async with app:
        wf = await app.enqueue_workflow(
            chain(group(*(app.tasks["scan"].step(n=i) for i in range(1000))), app.tasks["merge"].step())
        )
        assert wf.status.steps == 1001 and wf.status.waiting == 1 and wf.status.queued == 1000
        async with running_worker(app, concurrency=20):
            done = await wf.wait(timeout=60)
    assert done.state == "succeeded"
    merge = done.step("merge")
    assert merge.attempt == 1
    assert merge.result == [i * i for i in range(1000)]
    assert done.steps[0].step == "scan[0]" and done.steps[999].step == "scan[999]"


async def test_a_failed_parent_cancels_its_dependents_and_retrying_it_revives_them(dsn: str) -> None:
    app = make_app(dsn)
    async with app:
        wf = await app.enqueue_workflow(
            chain(app.tasks["boom"].step(), app.tasks["merge"].step(), app.tasks["report"].step())
        )
        async with running_worker(app):
            failed = await wf.wait(timeout=20)
        assert failed.state == "failed"
        assert [s.state for s in failed.steps] == ["failed", "cancelled", "cancelled"]
        error = failed.step("merge").errors[-1]
        assert error["type"] == "ParentFailed" and str(failed.steps[0].id) in error["message"]
        # The report step was cancelled by merge's cancellation, in the same transaction.
        assert failed.step("report").errors[-1]["parent"] == failed.step("merge").id

        # Fix the input and retry the failed step: its dependents wait again, then run.
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("UPDATE pgq.jobs SET args = '{\"fail\": false}' WHERE id = %s", [failed.steps[0].id])
        retried = await app.retry(failed.steps[0].id)
        assert retried.state == "queued"
        again = await app.get_workflow(wf.id)
        assert [s.state for s in again.steps] == ["queued", "waiting", "waiting"]
        async with running_worker(app):
            done = await again.wait(timeout=20)
    assert done.state == "succeeded" and done.result == "1 findings"


async def test_run_anyway_runs_a_dependent_after_a_failed_parent(dsn: str) -> None:
    app = make_app(dsn)
    async with app:
        parent = await app.enqueue("boom")
        child = await app.enqueue("merge", depends_on=[parent], on_parent_failure="run")
        assert child.state == "waiting" and child.has_parents
        async with running_worker(app):
            done = await app.wait(child.id, timeout=20)
    assert done.state == "succeeded"
    assert done.result == [None]


async def test_depends_on_an_already_finished_parent_is_ready_at_once(dsn: str) -> None:
    app = make_app(dsn)
    async with app:
        parent = await app.enqueue("scan", {"n": 3})
        async with running_worker(app):
            await app.wait(parent.id, timeout=20)
            child = await app.enqueue("merge", depends_on=[parent.id])
            assert child.state == "queued" and child.has_parents
            done = await app.wait(child.id, timeout=20)
        assert done.result == [9]
        failed = await app.enqueue("boom")
        async with running_worker(app):
            await app.wait(failed.id, timeout=20)
        late = await app.enqueue("merge", depends_on=[failed.id])
    assert late.state == "cancelled" and late.errors[-1]["type"] == "ParentFailed"


async def test_unknown_parents_are_refused_and_nothing_is_written(dsn: str) -> None:
    app = make_app(dsn)
    async with app:
        real = await app.enqueue("scan", {"n": 1})
        before = count_rows(dsn)
        with pytest.raises(pgq.UnknownParentError) as raised:
            await app.enqueue("merge", depends_on=[real.id, 10**9, 10**9 + 1])
        assert raised.value.missing == [10**9, 10**9 + 1]
        assert "unknown parent jobs: 1000000000, 1000000001" in str(raised.value)
        with pytest.raises(pgq.UnknownParentError):
            await app.enqueue_workflow(app.tasks["merge"].step().with_options(depends_on=[10**9]))
        assert count_rows(dsn) == before
        assert count_rows(dsn, "has_dependents") == 0
        assert await app.list_workflows() == []


@pytest.mark.parametrize("step", ["", "s" * 201])
def test_enqueue_dependent_in_sql_refuses_a_bad_step_name_and_writes_nothing(dsn: str, step: str) -> None:
    # Python checks names first; the function checks them again for callers in SQL.
    steps = [
        {
            "n": 0,
            "queue": "default",
            "task": "scan",
            "args": {"n": 1},
            "priority": 0,
            "max_attempts": 3,
            "step": step,
            "has_dependents": False,
        }
    ]
    with psycopg.connect(dsn) as conn:
        with pytest.raises(psycopg.errors.CheckViolation) as raised:
            conn.execute(
                "SELECT * FROM pgq.enqueue_dependent('wf', %s, '{}', '{}', '{}', '{}')",
                [psycopg.types.json.Jsonb(steps)],
            )
        assert raised.value.diag.column_name == "step"
        assert "1 to 200 characters" in str(raised.value)
    assert count_rows(dsn) == 0


async def test_a_cycle_is_refused_naming_it_and_nothing_is_written(dsn: str) -> None:
    app = make_app(dsn)
    steps: list[dict[str, Any]] = [
        {"name": "a", "task": "scan", "args": {"n": 1}, "after": ["c"]},
        {"name": "b", "task": "scan", "args": {"n": 2}, "after": ["a"]},
        {"name": "c", "task": "merge", "after": ["b"]},
    ]
    async with app:
        with pytest.raises(ValueError, match=r"the steps form a cycle: (\w) -> \w -> \w -> \1"):
            await app.enqueue_workflow(steps)
        with pytest.raises(ValueError, match="waits for unknown steps"):
            await app.enqueue_workflow([{"name": "a", "task": "scan", "args": {"n": 1}, "after": ["zz"]}])
    assert count_rows(dsn) == 0


async def test_cancelling_a_running_workflow_stops_running_steps_and_cancels_the_rest(dsn: str) -> None:
    app = make_app(dsn)
    async with app, running_worker(app, heartbeat_interval=0.2):
        wf = await app.enqueue_workflow(
            chain(group(app.tasks["slow"].step(), app.tasks["slow"].step()), app.tasks["merge"].step())
        )
        for _ in range(200):
            if (await wf.refresh()).status.running == 2:
                break
            await asyncio.sleep(0.05)
        cancelled = await wf.cancel()
        assert cancelled.step("merge").state == "cancelled"
        done = await wf.wait(timeout=20)
    assert done.state == "cancelled"
    assert [s.state for s in done.steps] == ["cancelled", "cancelled", "cancelled"]


async def test_retrying_a_cancelled_workflow_runs_it_in_order(dsn: str) -> None:
    app = make_app(dsn)
    async with app:
        wf = await app.enqueue_workflow(chain(app.tasks["scan"].step(n=2), app.tasks["merge"].step()))
        cancelled = await wf.cancel()
        assert cancelled.state == "cancelled"
        retried = await cancelled.retry()
        assert [s.state for s in retried.steps] == ["queued", "waiting"]
        async with running_worker(app):
            done = await retried.wait(timeout=20)
    assert done.result == [4]


async def test_pruning_keeps_parents_of_unfinished_jobs_and_removes_edges_and_empty_workflows(dsn: str) -> None:
    app = make_app(dsn)
    settings = pgq.Settings(retention_succeeded=60, retention_cancelled=60, retention_failed=60)
    async with app:
        parent = await app.enqueue("scan", {"n": 1})
        child = await app.enqueue("merge", depends_on=[parent], on_parent_failure="run")
        wf = await app.enqueue_workflow(chain(app.tasks["scan"].step(n=2), app.tasks["merge"].step()))
    with psycopg.connect(dsn, autocommit=True) as conn:
        # Every job but the lone child finished an hour ago.
        conn.execute(
            "UPDATE pgq.jobs SET state = 'cancelled', finished_at = now() - interval '1 hour', "
            "created_at = now() - interval '2 hours' WHERE id <> %s",
            [child.id],
        )
        conn.execute("UPDATE pgq.workflows SET created_at = now() - interval '2 hours'")
    async with AsyncConnectionPool(dsn, min_size=1, max_size=1, kwargs={"autocommit": True}) as pool:
        report = await Pruner(pool, settings).run_once()
        assert report.deleted["cancelled"] == 2  # the workflow's two steps; the parent stays
        assert count_rows(dsn, f"id = {parent.id}") == 1
        with psycopg.connect(dsn) as conn:
            assert conn.execute("SELECT count(*) FROM pgq.workflows").fetchone() == (0,)
            assert conn.execute("SELECT job_id FROM pgq.job_parents").fetchall() == [(child.id,)]
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(
                "UPDATE pgq.jobs SET state = 'cancelled', finished_at = now() - interval '1 hour' WHERE id = %s",
                [child.id],
            )
        report = await Pruner(pool, settings).run_once()
    assert report.deleted["cancelled"] == 2
    assert count_rows(dsn) == 0
    with psycopg.connect(dsn) as conn:
        assert conn.execute("SELECT count(*) FROM pgq.job_parents").fetchone() == (0,)
    assert wf.id > 0


async def test_a_workflow_enqueued_in_a_rolled_back_transaction_leaves_nothing(dsn: str) -> None:
    app = make_app(dsn)
    async with app, await psycopg.AsyncConnection.connect(dsn) as conn:
        async with conn.transaction(force_rollback=True):
            wf = await app.enqueue_workflow(chain(app.tasks["scan"].step(n=1), app.tasks["merge"].step()), conn=conn)
            assert [s.state for s in wf.steps] == ["queued", "waiting"]  # read in the same transaction
        async with conn.transaction():
            kept = await app.enqueue_workflow(app.tasks["scan"].step(n=2), conn=conn, name="kept")
        assert [w.name for w in await app.list_workflows()] == ["kept"]
    assert count_rows(dsn) == 1 and kept.result is None


async def test_a_job_a_failed_parent_cancelled_is_retried_through_its_parent(dsn: str) -> None:
    app = make_app(dsn)
    async with app:
        parent = await app.enqueue("boom")
        child = await app.enqueue("merge", depends_on=[parent])
        async with running_worker(app):
            await app.wait(parent.id, timeout=20)
        with pytest.raises(pgq.JobStateError, match=rf"retry job {parent.id}, and this one waits for it again"):
            await app.retry(child.id)
        # Cancelled by hand after a revival, it is the user's to retry: no parent revives it.
        await app.retry(parent.id)
        assert (await app.get_job(child.id)).state == "waiting"
        await app.cancel(child.id)
        async with running_worker(app):
            await app.wait(parent.id, timeout=20)
        await app.retry(parent.id)
        assert (await app.get_job(child.id)).state == "cancelled"
        assert (await app.retry(child.id)).state == "waiting"  # its parent runs again


async def test_a_job_cancelled_by_hand_is_not_retried_while_its_parent_is_failed(dsn: str) -> None:
    """Found by the property test: cancelled while waiting, then its parent failed."""
    app = make_app(dsn)
    async with app:
        parent = await app.enqueue("boom")
        child = await app.enqueue("merge", depends_on=[parent])
        await app.cancel(child.id)
        async with running_worker(app):
            await app.wait(parent.id, timeout=20)
        with pytest.raises(pgq.JobStateError, match=rf"parent job {parent.id} is failed or cancelled"):
            await app.retry(child.id)
        assert (await app.get_job(child.id)).state == "cancelled"
