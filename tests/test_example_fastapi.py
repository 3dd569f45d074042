"""examples/fastapi_app.py through HTTP: real uvicorn, a real `pgq worker`, a real database."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
import pytest

from tests.conftest import READ, READ_TOKEN, ROOT, WRITE_TOKEN
from tests.helpers import count_rows

pytest.importorskip("fastapi")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _env(dsn: str) -> dict[str, str]:
    return {
        **os.environ,
        "DATABASE_URL": dsn,
        "PYTHONPATH": str(ROOT),
        "PGQ_API_READ_TOKENS": READ_TOKEN,
        "PGQ_API_WRITE_TOKENS": WRITE_TOKEN,
    }


class Served:
    def __init__(self, proc: subprocess.Popen[bytes], base: str, log: Path) -> None:
        self.proc, self.base, self.log = proc, base, log


@pytest.fixture
def service(dsn: str, tmp_path: Path) -> Iterator[Served]:
    """``uvicorn examples.fastapi_app:api`` on a free port, until the test ends."""
    port = _free_port()
    log = tmp_path / "uvicorn.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "examples.fastapi_app:api", "--port", str(port)],
            cwd=ROOT,
            env=_env(dsn),
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            if httpx.get(f"{base}/docs", timeout=2).status_code == 200:
                break
        except httpx.TransportError:
            pass
        assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
        time.sleep(0.1)
    served = Served(proc, base, log)
    try:
        yield served
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)


def start_worker(dsn: str, tmp_path: Path) -> subprocess.Popen[bytes]:
    with open(tmp_path / "worker.log", "wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "pgq", "worker", "--app", "examples.fastapi_app:queue"],
            cwd=ROOT,
            env=_env(dsn),
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def test_signup_enqueues_in_its_transaction_and_the_result_is_waited_for(
    dsn: str, service: Served, tmp_path: Path
) -> None:
    with httpx.Client(base_url=service.base, timeout=30) as http:
        check_the_service(dsn, service, tmp_path, http)


def check_the_service(dsn: str, service: Served, tmp_path: Path, http: httpx.Client) -> None:
    created = http.post("/signups", json={"email": "ada@example.com"})
    assert created.status_code == 201, created.text
    ids = created.json()
    with psycopg.connect(dsn) as conn:
        row = conn.execute("SELECT welcome_job_id FROM signups WHERE id = %s", (ids["signup_id"],)).fetchone()
    assert row == (ids["welcome_job_id"],)
    assert count_rows(dsn, "id = %s AND task = 'send_welcome' AND queue = 'emails'", [ids["welcome_job_id"]]) == 1

    # No worker yet: the wait gives up after its timeout, and says why.
    waited = http.get(f"/signups/{ids['signup_id']}/welcome", params={"timeout": 0.5})
    assert waited.status_code == 504
    assert waited.json() == {"detail": f"job {ids['welcome_job_id']} (send_welcome) is still queued after waiting 0.5s"}

    # The same email again: the insert fails, the transaction rolls back, no job is added.
    jobs_before = count_rows(dsn)
    again = http.post("/signups", json={"email": "ada@example.com"})
    assert again.status_code == 409
    assert again.json() == {"detail": "ada@example.com has already signed up"}
    assert count_rows(dsn) == jobs_before
    assert http.post("/signups", json={"email": "not an email"}).status_code == 422
    assert http.get("/signups/12345/welcome").status_code == 404
    assert http.get(f"/signups/{ids['signup_id']}/welcome", params={"timeout": 0}).status_code == 422

    worker = start_worker(dsn, tmp_path)
    try:
        started = time.monotonic()
        done = http.get(f"/signups/{ids['signup_id']}/welcome", params={"timeout": 30})
        assert done.status_code == 200, done.text
        assert done.json() == {
            "state": "succeeded",
            "result": {"signup_id": ids["signup_id"], "sent_to": "ada@example.com"},
            "errors": [],
        }
        assert time.monotonic() - started < 20
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(30)

    # pgq's own API, mounted under /jobs, with its tokens.
    job = http.get(f"/jobs/jobs/{ids['welcome_job_id']}", headers=READ)
    assert job.status_code == 200
    assert job.json()["state"] == "succeeded"
    assert http.get(f"/jobs/jobs/{ids['welcome_job_id']}").status_code == 401
    assert http.get("/jobs/ui/", headers=READ).status_code == 200

    # A clean shutdown: the lifespan closes both pools and the listeners (uvicorn then
    # re-raises the SIGTERM it handled, so the exit status is the signal's).
    service.proc.send_signal(signal.SIGTERM)
    assert service.proc.wait(30) in (0, -signal.SIGTERM), service.log.read_text()
    assert "Application shutdown complete" in service.log.read_text()
