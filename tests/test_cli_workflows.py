"""Workflows on the `pgq` command line, run as a user would: enqueue with --depends-on,
enqueue-workflow, `pgq workflows`, `pgq workflow ID` and its --cancel / --retry."""

from __future__ import annotations

import json
from pathlib import Path

import psycopg

from tests.conftest import pgq_cli
from tests.helpers import count_rows

STEPS = [
    {"name": "fetch", "task": "fetch"},
    {"name": "scan", "task": "scan", "after": ["fetch"]},
    {"name": "report", "task": "report", "after": ["scan"]},
]


def test_enqueue_with_depends_on_waits_for_its_parents(dsn: str) -> None:
    assert pgq_cli("enqueue", "a", dsn=dsn).returncode == 0
    assert pgq_cli("enqueue", "b", dsn=dsn).returncode == 0
    child = pgq_cli("enqueue", "c", "--depends-on", "1", "--depends-on", "2", "--on-parent-failure", "run", dsn=dsn)
    assert child.returncode == 0, child.stderr
    assert child.stdout.startswith("enqueued job 3 (c) on queue default: waiting")
    shown = json.loads(pgq_cli("jobs", "3", "--json", dsn=dsn).stdout)
    assert shown["has_parents"] is True
    with psycopg.connect(dsn) as conn:
        assert conn.execute("SELECT parents_left FROM pgq.job_waits WHERE job_id = 3").fetchone() == (2,)
    with psycopg.connect(dsn) as conn:
        edges = conn.execute("SELECT parent_id, cancel_on_failure FROM pgq.job_parents ORDER BY position").fetchall()
    assert edges == [(1, False), (2, False)]


def test_enqueue_refuses_unknown_parents_and_a_key_with_parents_writing_nothing(dsn: str) -> None:
    unknown = pgq_cli("enqueue", "c", "--depends-on", "4242", dsn=dsn)
    assert unknown.returncode == 1 and unknown.stderr.strip().splitlines()[-1] == (
        "pgq: error: unknown parent jobs: 4242"
    )
    assert pgq_cli("enqueue", "a", dsn=dsn).returncode == 0
    keyed = pgq_cli("enqueue", "c", "--depends-on", "1", "--idempotency-key", "k", dsn=dsn)
    assert keyed.returncode == 2 and "idempotency_key cannot be combined with depends_on" in keyed.stderr
    bad = pgq_cli("enqueue", "c", "--depends-on", "x", dsn=dsn)
    assert bad.returncode == 2 and "invalid int value" in bad.stderr
    assert count_rows(dsn) == 1


def test_enqueue_workflow_then_list_show_cancel_and_retry(dsn: str, tmp_path: Path) -> None:
    path = tmp_path / "pipeline.json"
    path.write_text(json.dumps({"name": "nightly", "steps": STEPS}))
    created = pgq_cli("enqueue-workflow", str(path), dsn=dsn)
    assert created.returncode == 0, created.stderr
    assert created.stdout.strip() == "enqueued workflow 1 (nightly) with 3 steps"

    listed = pgq_cli("workflows", dsn=dsn)
    assert listed.returncode == 0, listed.stderr
    header, row = listed.stdout.splitlines()
    assert header.split()[:4] == ["ID", "NAME", "STATE", "STEPS"]
    assert row.split()[:7] == ["1", "nightly", "running", "3", "steps:", "2", "waiting,"]

    shown = pgq_cli("workflow", "1", dsn=dsn)
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert lines[0] == "workflow 1 (nightly): running, 3 steps: 2 waiting, 1 queued"
    table = [line.split() for line in lines[3:]]
    assert table[0][:4] == ["ID", "STEP", "TASK", "STATE"]
    assert [r[:6] for r in table[1:]] == [
        ["1", "fetch", "fetch", "queued", "-", "0/5"],
        ["2", "scan", "scan", "waiting", "1", "0/5"],
        ["3", "report", "report", "waiting", "1", "0/5"],
    ]

    cancelled = pgq_cli("workflow", "1", "--cancel", dsn=dsn)
    assert cancelled.returncode == 0, cancelled.stderr
    assert cancelled.stdout.splitlines()[0] == "workflow 1 (nightly): cancelled, 3 steps: 3 cancelled"
    retried = pgq_cli("workflow", "1", "--retry", "--json", dsn=dsn)
    assert retried.returncode == 0, retried.stderr
    assert [s["state"] for s in json.loads(retried.stdout)["steps"]] == ["queued", "waiting", "waiting"]
    assert json.loads(pgq_cli("workflows", "--json", dsn=dsn).stdout)[0]["state"] == "running"


def test_workflow_commands_refuse_bad_input_with_one_line_and_write_nothing(dsn: str, tmp_path: Path) -> None:
    cycle = tmp_path / "cycle.json"
    cycle.write_text(json.dumps([{"name": n, "task": "t", "after": [m]} for n, m in (("a", "b"), ("b", "a"))]))
    broken = tmp_path / "broken.json"
    broken.write_text("{oops")
    for args, code, message in [
        (["workflow", "77"], 1, "pgq: error: no workflow with id 77"),
        (["workflow", "77", "--cancel"], 1, "pgq: error: no workflow with id 77"),
        (["workflow", "77", "--retry"], 1, "pgq: error: no workflow with id 77"),
        (["enqueue-workflow", str(cycle)], 2, "pgq: error: the steps form a cycle: "),
        (["enqueue-workflow", str(broken)], 2, f"pgq: error: {broken} is not valid JSON"),
        (["enqueue-workflow", str(tmp_path / "none.json")], 2, "pgq: error: cannot read"),
        (["workflow", "1", "--cancel", "--retry"], 2, "not allowed with argument"),
    ]:
        result = pgq_cli(*args, dsn=dsn)
        assert result.returncode == code, (args, result.stderr)
        assert message in result.stderr.strip().splitlines()[-1], (args, result.stderr)
        assert "Traceback" not in result.stderr
    assert pgq_cli("workflows", dsn=dsn).stdout.strip() == "no workflows"
    assert count_rows(dsn) == 0


def test_a_limit_or_page_out_of_range_is_a_one_line_error_not_a_database_error(dsn: str) -> None:
    for limit in ("0", "-1", "10001"):
        result = pgq_cli("workflows", "--limit", limit, dsn=dsn)
        assert result.returncode == 2, result.stderr
        assert result.stderr.strip() == f"pgq: error: limit must be an integer between 1 and 10000, got {limit}"
