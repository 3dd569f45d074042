"""examples/celery_to_pgq: the pgq version runs end to end; it keeps the Celery module's tasks."""

from __future__ import annotations

import ast
import os
import signal
import subprocess
import sys
from pathlib import Path

import psycopg

from tests.conftest import ROOT

EXAMPLE = ROOT / "examples" / "celery_to_pgq"


def test_the_pgq_version_runs_the_checkout_end_to_end(dsn: str, tmp_path: Path) -> None:
    env = {**os.environ, "DATABASE_URL": dsn, "PYTHONPATH": str(ROOT)}
    with open(tmp_path / "worker.log", "wb") as out:
        worker = subprocess.Popen(
            [sys.executable, "-m", "pgq", "worker", "--app", "examples.celery_to_pgq.pgq_tasks:app"],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        run = subprocess.run(
            [sys.executable, "-m", "examples.celery_to_pgq.pgq_tasks", "42", "1999", "ada@example.com"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=90,
        )
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(30)
    assert run.returncode == 0, run.stderr + (tmp_path / "worker.log").read_text()
    assert run.stdout.splitlines() == [
        'charge_card: {"charge_id": "ch_42_1999", "order_id": 42} (attempts: 2)',
        'send_receipt: {"order_id": 42, "sent_to": "ada@example.com"} (attempts: 1)',
    ]
    with psycopg.connect(dsn) as conn:
        charge = conn.execute(
            "SELECT queue, priority, errors->0->>'message' FROM pgq.jobs WHERE task = 'charge_card'"
        ).fetchone()
        schedule = conn.execute("SELECT task, cron, timezone FROM pgq.schedules").fetchall()
    assert charge == ("payments", -9, "payment gateway timed out")  # the retry is in the row
    assert schedule == [("nightly_report", "30 2 * * *", "Europe/Paris")]  # beat's entry, kept by the worker


def _task_names(tree: ast.Module) -> set[str]:
    return {
        node.name
        for node in tree.body
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        and any("task" in ast.unparse(d) for d in node.decorator_list)
    }


def test_the_pgq_version_keeps_every_task_of_the_celery_module() -> None:
    celery = ast.parse((EXAMPLE / "celery_tasks.py").read_text())
    moved = ast.parse((EXAMPLE / "pgq_tasks.py").read_text())
    assert _task_names(celery) == _task_names(moved) == {"charge_card", "send_receipt", "nightly_report"}
    # The Celery original imports celery only if it is installed; pgq never depends on it.
    assert "celery" not in (ROOT / "pyproject.toml").read_text().lower()
