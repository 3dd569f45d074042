"""Workflows through the HTTP API: POST /jobs with depends_on, POST /workflows, the
reads, cancel and retry; refusals are 4xx JSON naming the problem, with nothing written."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import httpx
import pytest

import pgq
from pgq.api.workflow_schemas import WorkflowOut, WorkflowPage
from tests.conftest import READ
from tests.helpers import count_rows, running_worker
from tests.test_readme import README, _jq_compact, check_shown, shown_outputs

pytestmark = pytest.mark.anyio


def _steps(*specs: tuple[str, str, list[str]]) -> list[dict[str, Any]]:
    return [{"name": name, "task": task, "after": after} for name, task, after in specs]


async def test_a_job_posted_with_depends_on_waits_and_runs_after_its_parent(api: httpx.AsyncClient, dsn: str) -> None:
    parent = (await api.post("/jobs", json={"task": "scan", "args": {"n": 3}})).json()
    child = await api.post("/jobs", json={"task": "merge", "depends_on": [parent["id"]], "on_parent_failure": "run"})
    assert child.status_code == 201, child.text
    assert (child.json()["state"], child.json()["has_parents"]) == ("waiting", True)
    assert (await api.get(f"/jobs/{parent['id']}")).json()["has_dependents"] is True
    app = pgq.App(dsn)

    @app.task
    def scan(n: int) -> int:
        return n * n

    @app.task
    def merge() -> list[object]:
        return [p.result for p in pgq.current_job().parents]

    async with app, running_worker(app):
        done = await app.wait(child.json()["id"], timeout=30)
    assert (done.state, done.result) == (pgq.JobState.SUCCEEDED, [9])


async def test_unknown_parents_are_422_naming_them_and_nothing_is_written(api: httpx.AsyncClient, dsn: str) -> None:
    parent = (await api.post("/jobs", json={"task": "t"})).json()
    response = await api.post("/jobs", json={"task": "t", "depends_on": [parent["id"], 424242, 424243]})
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "unknown_parents" and error["details"]["missing"] == [424242, 424243]
    assert "424242" in error["message"] and error["details"]["fields"][0]["field"] == "depends_on"
    assert count_rows(dsn) == 1
    assert (await api.get(f"/jobs/{parent['id']}")).json()["has_dependents"] is False


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        ({"idempotency_key": "k"}, "idempotency_key"),
        ({"on_parent_failure": "maybe"}, "on_parent_failure"),
        ({"depends_on": [0]}, "depends_on.0"),
        ({"depends_on": ["1"]}, "depends_on.0"),
        ({"depends_on": 1}, "depends_on"),
    ],
)
async def test_bad_dependencies_are_422_and_nothing_is_written(
    api: httpx.AsyncClient, dsn: str, extra: dict[str, Any], field: str
) -> None:
    parent = (await api.post("/jobs", json={"task": "t"})).json()
    response = await api.post("/jobs", json={"task": "t", "depends_on": [parent["id"]], **extra})
    assert response.status_code == 422, response.text
    assert response.json()["error"]["details"]["fields"][0]["field"] == field
    assert count_rows(dsn) == 1


async def test_post_workflows_writes_every_step_and_edge_and_reads_back(api: httpx.AsyncClient, dsn: str) -> None:
    body = {
        "name": "nightly",
        "steps": [
            {"name": "report", "task": "report", "after": ["merge"], "queue": "reports", "priority": 5},
            {"name": "scan-a", "task": "scan", "args": {"n": 1}},
            {"name": "scan-b", "task": "scan", "args": {"n": 2}, "delay": 60},
            {"name": "merge", "task": "merge", "after": ["scan-a", "scan-b"], "on_parent_failure": "run"},
        ],
    }
    response = await api.post("/workflows", json=body)
    assert response.status_code == 201, response.text
    workflow = response.json()
    WorkflowOut.model_validate(workflow)
    assert (workflow["name"], workflow["state"], workflow["waiting"]) == ("nightly", "running", 2)
    steps = {s["step"]: s for s in workflow["steps"]}
    assert [s["step"] for s in workflow["steps"]] == ["scan-a", "scan-b", "merge", "report"]  # parents first
    assert (steps["scan-a"]["state"], steps["scan-b"]["state"]) == ("queued", "scheduled")
    assert (steps["merge"]["state"], steps["merge"]["parents_left"]) == ("waiting", 2)
    assert (steps["report"]["queue"], steps["report"]["priority"]) == ("reports", 5)
    assert all(s["workflow_id"] == workflow["id"] for s in workflow["steps"])
    got = await api.get(f"/workflows/{workflow['id']}", headers=READ)
    assert got.status_code == 200 and got.json() == workflow
    async with pgq.App(dsn) as app:
        assert (await app.get_workflow(workflow["id"])).to_dict() == workflow


@pytest.mark.parametrize(
    ("steps", "mentions"),
    [
        (_steps(("a", "t", ["c"]), ("b", "t", ["a"]), ("c", "t", ["b"])), "the steps form a cycle"),
        (_steps(("a", "t", ["nope"])), "waits for unknown steps ['nope']"),
        (_steps(("a", "t", []), ("a", "t", [])), "two steps are named 'a'"),
        ([{"name": "a", "task": "t", "args": {"x\u0000": 1}}], "NUL"),
        ([{"name": "a", "task": "t", "delay": 5, "run_at": "2030-01-01T00:00:00+00:00"}], "delay"),
    ],
)
async def test_a_bad_graph_is_422_naming_the_problem_and_nothing_is_written(
    api: httpx.AsyncClient, dsn: str, steps: list[dict[str, Any]], mentions: str
) -> None:
    response = await api.post("/workflows", json={"steps": steps})
    assert response.status_code == 422, response.text
    assert mentions in response.json()["error"]["message"]
    assert count_rows(dsn) == 0
    assert (await api.get("/workflows")).json()["workflows"] == []


@pytest.mark.parametrize(
    "body",
    [
        {"steps": []},
        {"steps": [{"name": "a", "task": "t", "idempotency_key": "k"}]},
        {"steps": [{"name": "a", "task": "t", "colour": "red"}]},
        {"steps": [{"task": "t"}]},
        {"steps": [{"name": "a\u0000", "task": "t"}]},
        {"name": "", "steps": [{"name": "a", "task": "t"}]},
        {"name": "x\u0000", "steps": [{"name": "a", "task": "t"}]},
        {"steps": [{"name": "a", "task": "t", "after": "b"}]},
        {"steps": [{"name": "a", "task": "t"}], "extra": 1},
    ],
)
async def test_a_body_outside_the_schema_is_422_and_nothing_is_written(
    api: httpx.AsyncClient, dsn: str, body: dict[str, Any]
) -> None:
    response = await api.post("/workflows", json=body)
    assert response.status_code == 422, response.text
    assert response.json()["error"]["code"] == "invalid_fields"
    assert count_rows(dsn) == 0


async def test_a_step_depending_on_an_unknown_job_is_422_with_the_missing_ids(api: httpx.AsyncClient, dsn: str) -> None:
    response = await api.post("/workflows", json={"steps": [{"name": "a", "task": "t", "depends_on": [77777]}]})
    assert response.status_code == 422, response.text
    assert response.json()["error"]["details"]["missing"] == [77777]
    assert count_rows(dsn) == 0


async def test_get_workflows_lists_newest_first_in_keyset_pages_without_steps(api: httpx.AsyncClient) -> None:
    ids = []
    for i in range(5):
        created = await api.post("/workflows", json={"name": f"w{i}", "steps": [{"name": "a", "task": "t"}]})
        ids.append(created.json()["id"])
    first = (await api.get("/workflows", params={"limit": 3}, headers=READ)).json()
    WorkflowPage.model_validate(first)
    assert [w["id"] for w in first["workflows"]] == ids[::-1][:3]
    assert first["workflows"][0]["name"] == "w4" and first["workflows"][0]["steps"] == 1
    second = (await api.get("/workflows", params={"limit": 3, "cursor": first["next_cursor"]})).json()
    assert [w["id"] for w in second["workflows"]] == ids[::-1][3:] and second["next_cursor"] is None
    for params in ({"limit": "0"}, {"cursor": "x"}, {"state": "running"}):
        assert (await api.get("/workflows", params=params)).status_code == 422, params


async def test_unknown_and_huge_workflow_ids_are_404_json(api: httpx.AsyncClient, dsn: str) -> None:
    for raw in ("424242", "9" * 5000, str(2**63), "abc", "0"):
        got = await api.get(f"/workflows/{raw}")
        assert got.status_code == 404 and got.json()["error"]["code"] == "not_found", (raw[:20], got.text)
        assert "workflow" in got.json()["error"]["message"]
        for action in ("cancel", "retry"):
            assert (await api.post(f"/workflows/{raw}/{action}")).status_code == 404
    assert count_rows(dsn) == 0


async def test_cancel_and_retry_act_on_the_whole_workflow(api: httpx.AsyncClient, dsn: str) -> None:
    steps = _steps(("a", "t", []), ("b", "t", ["a"]), ("c", "t", ["b"]))
    workflow = (await api.post("/workflows", json={"steps": steps})).json()
    read_only = await api.post(f"/workflows/{workflow['id']}/cancel", headers=READ)
    assert read_only.status_code == 403 and count_rows(dsn, "state = 'cancelled'") == 0
    cancelled = await api.post(f"/workflows/{workflow['id']}/cancel")
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["state"] == "cancelled" and cancelled.json()["cancelled"] == 3
    assert {s["state"] for s in cancelled.json()["steps"]} == {"cancelled"}
    retried = await api.post(f"/workflows/{workflow['id']}/retry")
    assert retried.status_code == 200, retried.text
    states = [s["state"] for s in retried.json()["steps"]]
    assert states == ["queued", "waiting", "waiting"] and retried.json()["state"] == "running"


@pytest.mark.parametrize("where", ["step", "workflow", "canvas"])
async def test_the_library_refuses_nul_in_step_and_workflow_names_before_the_write(dsn: str, where: str) -> None:
    """Postgres text cannot hold NUL: a ValueError (the API's 422), not a DataError (500)."""
    async with pgq.App(dsn) as app:
        with pytest.raises(ValueError, match="name") as info:
            if where == "step":
                await app.enqueue_workflow([{"name": "a\x00", "task": "t"}])
            elif where == "workflow":
                await app.enqueue_workflow([{"name": "a", "task": "t"}], name="w\x00")
            else:
                await app.enqueue_workflow(pgq.Step("t", name="a\x00"))
        assert "without NUL" in str(info.value)
    assert count_rows(dsn) == 0


async def test_a_run_at_with_an_offset_postgres_cannot_parse_is_stored_as_the_same_instant(
    api: httpx.AsyncClient, dsn: str
) -> None:
    """Python allows UTC offsets up to 24 h, PostgreSQL's text input only up to 15:59: a step's
    run_at reaches the database as UTC (it was a DataError, an HTTP 500, before)."""
    far = dt.timezone(dt.timedelta(hours=23, minutes=37))
    run_at = dt.datetime(2584, 8, 10, 21, 49, 43, tzinfo=far)
    async with pgq.App(dsn) as app:
        parent = await app.enqueue("t")
        job = await app.enqueue("t", depends_on=[parent], run_at=run_at)
        assert (await app.get_job(job.id)).run_at == run_at
    body = {"steps": [{"name": "a", "task": "t", "run_at": run_at.isoformat()}]}
    response = await api.post("/workflows", json=body)
    assert response.status_code == 201, response.text
    step = response.json()["steps"][0]
    assert dt.datetime.fromisoformat(step["run_at"]) == run_at and step["state"] == "scheduled"


async def test_readme_workflow_example_output_is_what_the_api_answers(api: httpx.AsyncClient) -> None:
    shown = shown_outputs(README.read_text(encoding="utf-8"))["workflow-post"]
    body = json.loads(shown.example.split("<<'EOF'\n", 1)[1].split("\nEOF\n", 1)[0])  # the README's file
    response = await api.post("/workflows", json=body)
    assert response.status_code == 201, response.text
    w = response.json()
    projected = {  # the README's jq filter
        **{k: w[k] for k in ("id", "state", "waiting", "queued")},
        "steps": [{k: s[k] for k in ("id", "step", "state", "parents_left")} for s in w["steps"]],
    }
    check_shown("workflow-post", _jq_compact(projected))
