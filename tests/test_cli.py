"""The `pgq` command line, run as a user would: real processes, real output."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from typing import Any

import psycopg
import pytest

from tests.conftest import ROOT, pgq_cli


def test_enqueue_then_list_and_show_jobs(dsn: str) -> None:
    result = pgq_cli(
        "enqueue",
        "make_thumbnail",
        "--args",
        '{"width": 8, "height": 4}',
        "--priority",
        "2",
        "--app",
        "pgq.example_app:app",
        dsn=dsn,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("enqueued job 1 (make_thumbnail) on queue default: queued")

    listed = pgq_cli("jobs", dsn=dsn)
    assert listed.returncode == 0, listed.stderr
    header, row = listed.stdout.splitlines()
    assert header.split()[:5] == ["ID", "QUEUE", "TASK", "STATE", "ATTEMPT"]
    assert row.split()[:5] == ["1", "default", "make_thumbnail", "queued", "0/5"]

    shown = pgq_cli("jobs", "1", "--json", dsn=dsn)
    assert json.loads(shown.stdout)["args"] == {"width": 8, "height": 4}
    assert json.loads(pgq_cli("jobs", "--state", "queued", "--json", dsn=dsn).stdout)[0]["priority"] == 2


def test_worker_runs_enqueued_jobs_and_jobs_shows_the_result(dsn: str, conn: psycopg.Connection[Any]) -> None:
    pgq_cli("enqueue", "make_thumbnail", "--args", '{"width": 800, "height": 600}', dsn=dsn)
    pgq_cli("enqueue", "no_such_task", dsn=dsn)
    env = {**os.environ, "DATABASE_URL": dsn, "PYTHONPATH": str(ROOT)}
    worker = subprocess.Popen(
        [sys.executable, "-m", "pgq", "worker", "--app", "pgq.example_app:app", "--concurrency", "2"],
        env=env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 20
        while conn.execute("SELECT count(*) FROM pgq.jobs WHERE finished_at IS NOT NULL").fetchone() != (2,):
            assert time.monotonic() < deadline, "jobs did not finish"
            time.sleep(0.05)
    finally:
        worker.terminate()
        _, err = worker.communicate(timeout=30)
    assert worker.returncode == 0, err
    assert "queues=default,emails" in err and "wake-up=LISTEN/NOTIFY" in err
    shown = pgq_cli("jobs", "1", dsn=dsn).stdout
    assert "state: succeeded" in shown and '"width": 200' in shown
    failed = pgq_cli("jobs", "2", dsn=dsn).stdout
    assert "state: failed" in failed and "unknown task 'no_such_task'" in failed
    assert "succeeded" in pgq_cli("queues", dsn=dsn).stdout


def test_jobs_cuts_long_results_with_an_ellipsis_and_aligns_every_column(dsn: str) -> None:
    pgq_cli("enqueue", "anything", dsn=dsn)
    long_result = {"text": "x" * 200}
    with psycopg.connect(dsn) as conn:
        conn.execute(
            "UPDATE pgq.jobs SET state = 'succeeded', attempt = 1, started_at = now(), finished_at = now(), "
            "result = %s, cancel_requested_at = now()",
            [json.dumps(long_result)],
        )
    header, row = pgq_cli("jobs", dsn=dsn).stdout.splitlines()
    summary = row[header.index("RESULT / LAST ERROR") :]
    assert summary.startswith('{"text": "xxx') and summary.endswith("…") and len(summary) == 60
    shown = pgq_cli("jobs", "1", dsn=dsn).stdout.splitlines()
    fields = [line for line in shown if line.strip()]
    assert len({line.index(": ") for line in fields}) == 1  # cancel_requested_at lines up with the rest
    assert any(line.strip().startswith("cancel_requested_at: ") for line in fields)


def test_cancel_help_says_a_running_job_gets_a_cancel_request() -> None:
    for args in (["--help"], ["cancel", "--help"]):
        text = " ".join(pgq_cli(*args, dsn=None).stdout.split())
        assert "a running one gets a cancel request its worker acts on" in text
        assert "has not started" not in text


def test_cancel_and_retry_commands(dsn: str) -> None:
    pgq_cli("enqueue", "anything", dsn=dsn)
    assert pgq_cli("cancel", "1", dsn=dsn).stdout.strip() == "job 1 is cancelled"
    assert pgq_cli("retry", "1", dsn=dsn).stdout.startswith("job 1 is queued again")
    again = pgq_cli("retry", "1", dsn=dsn)
    assert again.returncode == 1 and "only failed or cancelled jobs can be retried" in again.stderr
    missing = pgq_cli("cancel", "999", dsn=dsn)
    assert missing.returncode == 1 and missing.stderr.strip() == "pgq: error: no job with id 999"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["enqueue", "nope", "--app", "pgq.example_app:app"], "pgq: error: unknown task 'nope' (registered: "),
        (
            ["enqueue", "make_thumbnail", "--args", '{"width": 640}', "--app", "pgq.example_app:app"],
            "pgq: error: task make_thumbnail(width, height): missing argument 'height'",
        ),
        (
            ["enqueue", "make_thumbnail", "--app", "pgq.example_app:nope"],
            "pgq: error: module 'pgq.example_app' has no attribute 'nope' (--app pgq.example_app:nope)",
        ),
        (["worker"], "pgq: error: which app? give --app MODULE:ATTR (e.g. myproject.tasks:app) or set PGQ_APP"),
        (["enqueue", "t", "--args", "[1]"], "pgq: error: --args must be a JSON object"),
        (["enqueue", "t", "--args", "{oops"], "pgq: error: --args is not valid JSON"),
        (["enqueue", "t", "--run-at", "2030-01-01T00:00:00"], "pgq: error: --run-at needs a time zone"),
        (["worker", "--app", "nowhere:app"], "pgq: error: cannot import 'nowhere' for --app"),
        (["worker", "--app", "pgq"], "pgq: error: --app must look like MODULE:ATTR"),
        (["worker", "--app", "pgq.example_app:app", "--concurrency", "0"], "PGQ_CONCURRENCY must be between"),
    ],
)
def test_bad_input_gets_a_one_line_error_and_writes_nothing(dsn: str, args: list[str], message: str) -> None:
    result = pgq_cli(*args, dsn=dsn)
    assert result.returncode != 0
    assert message in result.stderr.strip().splitlines()[-1]
    assert "Traceback" not in result.stderr
    with psycopg.connect(dsn) as conn:
        assert conn.execute("SELECT count(*) FROM pgq.jobs").fetchone() == (0,)


def test_pgq_app_names_the_app_for_enqueue_and_worker(dsn: str) -> None:
    env = {"PGQ_APP": "pgq.example_app:app"}
    typo = pgq_cli("enqueue", "make_thumbnial", dsn=dsn, env=env)
    assert typo.returncode == 1 and "unknown task 'make_thumbnial' (registered: " in typo.stderr
    wrong = pgq_cli("enqueue", "make_thumbnail", "--args", '{"width": 1, "heigth": 2}', dsn=dsn, env=env)
    assert wrong.returncode == 2 and "unexpected argument 'heigth'; missing argument 'height'" in wrong.stderr
    ok = pgq_cli("enqueue", "make_thumbnail", "--args", '{"width": 8, "height": 4}', dsn=dsn, env=env)
    assert ok.returncode == 0 and ok.stderr == "" and ok.stdout.startswith("enqueued job 1 (make_thumbnail)")
    bad = pgq_cli("worker", dsn=dsn, env={"PGQ_APP": "pgq.example_app:nope"})
    assert bad.returncode == 2 and "has no attribute 'nope'" in bad.stderr
    with psycopg.connect(dsn) as conn:
        assert conn.execute("SELECT task FROM pgq.jobs").fetchall() == [("make_thumbnail",)]


def test_enqueue_without_an_app_says_the_name_is_not_checked(dsn: str) -> None:
    result = pgq_cli("enqueue", "make_thumbnial", dsn=dsn)
    assert result.returncode == 0 and result.stdout.startswith("enqueued job 1 (make_thumbnial)")
    assert result.stderr.strip() == (
        "pgq: note: task name 'make_thumbnial' and its arguments are not checked (no --app or PGQ_APP): "
        "a typo fails the job on the worker"
    )


def test_commands_on_an_unmigrated_database_say_to_migrate(empty_dsn: str) -> None:
    for args in (["jobs"], ["enqueue", "t"], ["worker", "--app", "pgq.example_app:app"], ["queues"]):
        result = pgq_cli(*args, dsn=empty_dsn)
        assert result.returncode == 1
        assert result.stderr.strip() == "pgq: error: the database has no pgq schema: run `pgq migrate` first"


def test_malformed_dsn_is_a_one_line_error() -> None:
    result = pgq_cli("jobs", dsn="host=localhost port")
    assert result.returncode == 2
    assert result.stderr.strip().startswith("pgq: error: DATABASE_URL is not a valid PostgreSQL DSN")
    assert len(result.stderr.strip().splitlines()) == 1


def test_bad_dsn_is_reported_without_the_password() -> None:
    result = pgq_cli("jobs", dsn="postgresql://me:s3cret@127.0.0.1:1/db")
    assert result.returncode == 1
    assert "s3cret" not in result.stderr and "me:***@" in result.stderr


def test_every_command_has_help() -> None:
    for command in (
        *("migrate", "roles", "limits", "worker", "enqueue", "jobs", "queues", "cancel", "retry", "demo"),
        *("workflows", "workflow", "enqueue-workflow"),
    ):
        result = pgq_cli(command, "--help", dsn=None)
        assert result.returncode == 0 and "usage: pgq" in result.stdout


def test_limits_command_sets_shows_and_clears_queue_limits(dsn: str) -> None:
    assert pgq_cli("limits", dsn=dsn).stdout.strip() == "no queue limits"
    shown = pgq_cli("limits", "emails", "--max-running", "2", "--rate", "10", "--per", "60", dsn=dsn)
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.split("\n")[1].split() == ["emails", "2", "10", "per", "60s"]
    cleared = pgq_cli("limits", "emails", dsn=dsn)
    assert cleared.stdout.split("\n")[1].split() == ["emails", "-", "-"]
    bad = pgq_cli("limits", "emails", "--max-running", "0", dsn=dsn)
    assert bad.returncode == 2 and "max_running must be an integer between 1" in bad.stderr


def test_demo_serves_the_api_beside_the_worker_and_both_stop_on_sigterm(dsn: str) -> None:
    with socket.socket() as probe:  # a free port for the API
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "DATABASE_URL": dsn}
    command = [sys.executable, "-m", "pgq", "demo", "--port", str(port)]
    with subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env, cwd=ROOT
    ) as demo:
        try:
            assert demo.stdout is not None
            printed = []
            for line in demo.stdout:
                printed.append(line)
                if line.startswith("all example jobs are final"):
                    break
            assert f"dashboard on http://127.0.0.1:{port}/ui\n" in printed
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/ui/", timeout=10) as response:
                assert "<h1>Overview</h1>" in response.read().decode()
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/jobs?state=succeeded", timeout=10) as response:
                tasks = sorted(j["task"] for j in json.load(response)["jobs"])
            assert tasks == ["fetch_exchange_rate", "make_thumbnail", "send_welcome_email", "send_welcome_email"]
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=10) as response:
                assert json.load(response)["status"] == "ok"
            demo.send_signal(signal.SIGTERM)
            assert demo.wait(30) == 0
        finally:
            if demo.poll() is None:
                demo.kill()
