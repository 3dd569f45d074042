"""``--log-format json`` / ``PGQ_LOG_FORMAT=json``: one JSON object per line, naming the job."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

import pgq
from tests.conftest import ROOT, pgq_cli
from tests.helpers import WorkerProcesses, count_rows, wait_until
from tests.test_worker_metrics import free_port


def parse_lines(text: str) -> list[dict[str, Any]]:
    """Every line is one JSON object (json.loads raises on any that is not)."""
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def test_a_json_worker_log_parses_line_by_line_and_every_job_line_names_the_job(
    dsn: str, start_worker: WorkerProcesses
) -> None:
    app = pgq.App(dsn)
    with app:
        good = app.enqueue_sync("ok", {"n": 7})
        bad = app.enqueue_sync("broken", max_attempts=1)
    worker = start_worker("--concurrency", "2", env={"PGQ_LOG_FORMAT": "json"}, app="tests.apps.observed:app")
    wait_until(lambda: count_rows(dsn, "state IN ('succeeded', 'failed')") == 2, 30, "both jobs final")
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(30) == 0

    lines = parse_lines(start_worker.all_logs())
    assert all({"time", "level", "logger", "message"} <= line.keys() for line in lines)
    worker_ids = {line.get("worker_id") for line in lines if line["logger"] == "pgq.worker"}
    assert len(worker_ids) == 1 and None not in worker_ids

    about_good = [line for line in lines if line.get("job_id") == good.id]
    assert [line["message"] for line in about_good] == [
        f"job {good.id} ok started (attempt 1/5)",
        "working on 7",  # the task's own line, named by the job it ran in
        f"job {good.id} ok attempt 1/5 succeeded",
    ]
    assert all(line["task"] == "ok" and line["queue"] == "default" and line["attempt"] == 1 for line in about_good)
    (failed,) = [line for line in lines if line.get("job_id") == bad.id and line["level"] == "ERROR"]
    assert failed["message"].startswith(f"job {bad.id} broken attempt 1/1 failed for good: ValueError")
    # Every line that names a job in its text carries it as a field too.
    for line in lines:
        for job in (good, bad):
            if f"job {job.id} " in line["message"]:
                assert line.get("job_id") == job.id, line


def test_the_cli_logs_json_with_the_option_or_the_variable(dsn: str) -> None:
    by_option = pgq_cli("--log-format", "json", "--log-level", "INFO", "migrate", dsn=dsn)
    assert by_option.returncode == 0, by_option.stderr
    assert any("schema revision" in line["message"] for line in parse_lines(by_option.stderr))
    by_env = pgq_cli("--log-level", "INFO", "migrate", dsn=dsn, env={"PGQ_LOG_FORMAT": "json"})
    assert parse_lines(by_env.stderr) and by_env.returncode == 0
    human = pgq_cli("--log-level", "INFO", "migrate", dsn=dsn)
    assert " INFO    pgq" in human.stderr and not human.stderr.lstrip().startswith("{")
    wrong = pgq_cli("migrate", dsn=dsn, env={"PGQ_LOG_FORMAT": "xml"})
    assert wrong.returncode == 2 and "PGQ_LOG_FORMAT must be human or json" in wrong.stderr


def test_the_api_logs_json(dsn: str, tmp_path: Path) -> None:
    port = free_port()
    env = {**os.environ, "DATABASE_URL": dsn, "PYTHONPATH": str(ROOT), "PGQ_LOG_FORMAT": "json"}
    log_path = tmp_path / "api.log"
    with open(log_path, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "pgq", "api", "--port", str(port)], env=env, cwd=ROOT, stdout=out, stderr=out
        )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert proc.poll() is None and time.monotonic() < deadline, log_path.read_text()
            time.sleep(0.1)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
    lines = parse_lines(log_path.read_text())
    assert any(line["logger"] == "pgq.api" and "pgq api on http://" in line["message"] for line in lines)
