"""The real `pgq api` process with a real `pgq worker`, and the schemathesis run over
the OpenAPI document it serves."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis.checks import CHECKS, load_all_checks
from schemathesis.core.result import Ok
from websockets.exceptions import ConnectionClosedOK
from websockets.sync.client import connect

from tests.conftest import READ_TOKEN, ROOT, WRITE, WRITE_TOKEN, pgq_cli
from tests.helpers import count_rows, wait_until


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def served_api(dsn: str, tmp_path: Path) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """`pgq api` on a free loopback port with the suite's tokens; killed at the end."""
    port = _free_port()
    env = {
        **os.environ,
        "DATABASE_URL": dsn,
        "PYTHONPATH": str(ROOT),
        "PGQ_API_READ_TOKENS": READ_TOKEN,
        "PGQ_API_WRITE_TOKENS": WRITE_TOKEN,
    }
    with open(tmp_path / "pgq.api.log", "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "pgq", "api", "--port", str(port)], env=env, cwd=ROOT, stdout=out, stderr=out
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                break
        except httpx.TransportError:
            pass
        assert proc.poll() is None, (tmp_path / "pgq.api.log").read_text()
        assert time.monotonic() < deadline, "pgq api did not start"
        time.sleep(0.1)
    yield url, proc
    if proc.poll() is None:
        proc.kill()
    proc.wait(10)


def test_a_job_goes_from_post_to_wait_succeeded_with_real_api_and_worker_processes(
    served_api: tuple[str, subprocess.Popen[bytes]], dsn: str
) -> None:
    url, _ = served_api
    created = httpx.post(f"{url}/jobs", json={"task": "noop", "args": {"n": 42}}, headers=WRITE, timeout=10)
    assert created.status_code == 201, created.text
    env = {**os.environ, "DATABASE_URL": dsn, "PYTHONPATH": str(ROOT)}
    worker = subprocess.Popen(
        [sys.executable, "-m", "pgq", "worker", "--app", "tests.apps.basic:app", "--poll-interval", "30"],
        env=env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        done = httpx.get(f"{url}/jobs/{created.json()['id']}/wait", params={"timeout": 60}, headers=WRITE, timeout=90)
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(30)
    assert done.status_code == 200
    assert done.json()["state"] == "succeeded" and done.json()["result"] == 42


def test_sigterm_ends_long_polls_and_event_streams_and_the_server_exits(
    served_api: tuple[str, subprocess.Popen[bytes]],
) -> None:
    url, proc = served_api
    job = httpx.post(f"{url}/jobs", json={"task": "noop", "delay": 3600}, headers=WRITE, timeout=10).json()
    results: dict[str, Any] = {}

    def wait() -> None:
        results["wait"] = httpx.get(f"{url}/jobs/{job['id']}/wait", params={"timeout": 120}, headers=WRITE, timeout=60)

    def stream() -> None:
        with httpx.stream("GET", f"{url}/jobs/{job['id']}/events", headers=WRITE, timeout=60) as response:
            results["events"] = "".join(response.iter_text())

    threads = [threading.Thread(target=wait), threading.Thread(target=stream)]
    for thread in threads:
        thread.start()
    time.sleep(1.0)  # both requests are waiting
    started = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(30) in {0, -signal.SIGTERM}  # uvicorn re-raises the signal it handled
    assert time.monotonic() - started < 8  # not the 120 s of the long-poll
    for thread in threads:
        thread.join(10)
    assert results["wait"].status_code == 200 and results["wait"].json()["state"] == "scheduled"
    assert "event: state" in results["events"]


def test_api_refuses_a_public_address_without_tokens() -> None:
    result = pgq_cli("api", "--host", "0.0.0.0", "--port", "1", dsn="postgresql://nobody@127.0.0.1:1/x")
    assert result.returncode == 2
    assert "refusing to serve on 0.0.0.0 without tokens" in result.stderr


def _all_checks() -> list[Any]:
    load_all_checks()
    return list(CHECKS.get_all())


def _streams(operation: Any) -> bool:
    """An operation whose success is an event stream (it ends only when the job is final)."""
    ok = operation.definition.raw.get("responses", {}).get("200", {})
    return "text/event-stream" in ok.get("content", {})


SCHEMATHESIS_EXAMPLES = int(os.environ.get("PGQ_TEST_SCHEMATHESIS_EXAMPLES", "100"))


def _what_the_schema_cannot_say(body: Any, finished_id: int) -> Any:
    """Parents that exist, and workflow steps with unique names whose ``after`` names
    earlier steps (no cycle): JSON Schema cannot express these, so a generated body is
    given them, as stream ids are given a finished job. The refusals of the rest (422,
    nothing written) are tested in tests/test_api_workflows.py."""
    if not isinstance(body, dict):
        return body
    if body.get("depends_on"):
        body = {**body, "depends_on": [finished_id]}
    if isinstance(body.get("steps"), list):
        steps = []
        for i, step in enumerate(body["steps"]):
            step = {**step, "name": f"s{i}", "after": [f"s{j}" for j in range(min(i, len(step.get("after", []))))]}
            steps.append(_what_the_schema_cannot_say(step, finished_id))
        body = {**body, "steps": steps}
    return body


def _property(operation: Any, url: str, finished_id: int, checks: list[Any]) -> Any:
    """The hypothesis test of one operation, with every check."""
    streams = _streams(operation)
    waits = any(p.name == "timeout" for p in operation.query)

    @given(case=operation.as_strategy())
    @settings(
        max_examples=SCHEMATHESIS_EXAMPLES,
        deadline=None,
        derandomize=True,
        database=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    def check(case: Any) -> None:
        if streams and case.path_parameters and "id" in case.path_parameters:
            # A stream of a job that is not final never ends; a finished job's ends at once.
            case.path_parameters = {**case.path_parameters, "id": finished_id}
        if waits:
            case.query = {**(case.query or {}), "timeout": 0.05}  # long-polls answer at their timeout
        case.body = _what_the_schema_cannot_say(case.body, finished_id)
        # GET /events never ends: schemathesis reads it until the timeout and checks each event.
        timeout = 0.5 if case.path == "/events" else 30
        case.call_and_validate(base_url=url, headers=WRITE, checks=checks, timeout=timeout)

    return check


@pytest.mark.timeout(900)
def test_schemathesis_with_every_check_finds_the_server_doing_what_its_document_says(
    served_api: tuple[str, subprocess.Popen[bytes]], dsn: str
) -> None:
    """Every operation the document lists (new ones included without touching this test),
    every schemathesis check, positive examples: no 500, every answer documented, every
    request the schema allows accepted."""
    url, _ = served_api
    # A succeeded job: generated cancels and retries cannot bring it back to life.
    finished = httpx.post(f"{url}/jobs", json={"task": "t"}, headers=WRITE, timeout=10).json()
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(
            "UPDATE pgq.jobs SET state = 'succeeded', attempt = 1, finished_at = now() WHERE id = %s",
            [finished["id"]],
        )
    schema = schemathesis.openapi.from_url(f"{url}/openapi.json")
    checks = _all_checks()
    assert len(checks) >= 10
    tested = []
    for result in schema.get_all_operations():
        assert isinstance(result, Ok), result
        operation = result.ok()
        if "101" in operation.definition.raw.get("responses", {}):
            continue  # GET /ws is a WebSocket handshake (tests/test_api_live.py); plain HTTP gets 426
        started = time.monotonic()

        check = _property(operation, url, finished["id"], checks)
        check()
        tested.append(f"{operation.method.upper()} {operation.path} {time.monotonic() - started:.1f}s")
    print(tested)
    assert len(tested) >= 16, tested  # every operation (schemathesis skips the document's own path)
    assert count_rows(dsn, "state = 'running'") == 0  # no worker: nothing was run


def test_sigterm_ends_events_streams_cleanly_and_closes_websockets_with_1001(
    served_api: tuple[str, subprocess.Popen[bytes]],
) -> None:
    url, proc = served_api
    results: dict[str, Any] = {}

    def stream() -> None:
        with httpx.stream("GET", f"{url}/events", headers=WRITE, timeout=60) as response:
            results["sse"] = "".join(response.iter_text())  # raises if the stream is cut short

    def socket() -> None:
        address = url.removeprefix("http://")
        with connect(f"ws://{address}/ws", additional_headers=WRITE, open_timeout=30) as ws:
            results["ws_open"] = True
            with pytest.raises(ConnectionClosedOK) as closed:
                ws.recv(timeout=60)
            results["ws_close"] = (closed.value.rcvd.code, closed.value.rcvd.reason) if closed.value.rcvd else None

    threads = [threading.Thread(target=stream), threading.Thread(target=socket)]
    for thread in threads:
        thread.start()
    wait_until(lambda: results.get("ws_open"), 30, "the WebSocket to open")
    time.sleep(0.5)  # the SSE request is streaming too
    started = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(30) in {0, -signal.SIGTERM}
    assert time.monotonic() - started < 8
    for thread in threads:
        thread.join(10)
    assert results["sse"] == ""  # ended with the last chunk: no event, no error
    assert results["ws_close"] == (1001, "the server is shutting down")
