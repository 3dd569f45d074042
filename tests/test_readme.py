"""What the README shows is what a user sees: every output it shows is produced here.

A fenced block that shows an output follows a marker line ``<!-- output: NAME -->``.
For each NAME a test below makes the request, or runs the command, of the README's
example just above the block (request bodies are read from that example) and compares
what comes back with the block, character for character. Only what truly differs from
run to run is normalised, and only in blocks whose marker says "ids and times vary":
there, job ids (``"id": 12``) and ISO 8601 times are replaced by ``<id>`` and ``<time>``
on both sides before comparing.

After a deliberate change of an output, regenerate the blocks with
``PGQ_README_UPDATE=1 .venv/bin/python -m pytest tests/test_readme.py`` and read the diff.

tests/test_docs.py checks the rest of what the docs claim.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
import re
from typing import Any

import httpx
import psycopg
import pytest
from psycopg_pool import AsyncConnectionPool

import pgq
import pgq.example_app
from pgq.task import Task
from pgq.worker.scheduler import Scheduler
from tests.conftest import ROOT, pgq_cli
from tests.helpers import count_rows, running_worker

README = ROOT / "README.md"
_MARKER = re.compile(r"^<!-- output: (?P<name>[a-z0-9-]+)(?P<note>[^>]*)-->$")
_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:\d\d)")
_ID = re.compile(r'"id": ?\d+')
_JOB_NUMBER = re.compile(r"\bjob \d+\b")


@dataclasses.dataclass(frozen=True)
class Shown:
    """One output block of the README: its lines span ``start:end`` of the file's lines."""

    name: str
    varies: bool
    start: int
    end: int
    text: str
    example: str  # the fenced block just above the marker: the command that prints it


def fenced_blocks(lines: list[str]) -> list[tuple[int, int]]:
    """(first content line, closing fence line) of every fenced block."""
    blocks, opened = [], None
    for i, line in enumerate(lines):
        if line.startswith("```"):
            if opened is None:
                opened = i + 1
            else:
                blocks.append((opened, i))
                opened = None
    return blocks


def shown_outputs(text: str) -> dict[str, Shown]:
    lines = text.split("\n")
    blocks = fenced_blocks(lines)
    shown: dict[str, Shown] = {}
    for i, line in enumerate(lines):
        match = _MARKER.match(line.strip())
        if not match:
            continue
        assert lines[i + 1].startswith("```"), f"README line {i + 1}: an output marker must precede a fenced block"
        start, end = next(b for b in blocks if b[0] == i + 2)
        before = [b for b in blocks if b[1] < i]
        example = "\n".join(lines[before[-1][0] : before[-1][1]]) if before else ""
        name = match["name"]
        assert name not in shown, f"output {name!r} is marked twice in the README"
        shown[name] = Shown(name, "vary" in match["note"], start, end, "\n".join(lines[start:end]), example)
    return shown


def _normalise(text: str) -> str:
    return _JOB_NUMBER.sub("job <id>", _ID.sub('"id": <id>', _TIME.sub("<time>", text)))


def check_shown(name: str, actual: str) -> None:
    """Compare an output with the README's block NAME (or rewrite the block in update mode)."""
    text = README.read_text(encoding="utf-8")
    block = shown_outputs(text)[name]
    actual = actual.rstrip("\n")
    expected, got = (_normalise(block.text), _normalise(actual)) if block.varies else (block.text, actual)
    if expected == got:
        return
    if os.environ.get("PGQ_README_UPDATE") == "1":
        lines = text.split("\n")
        README.write_text("\n".join([*lines[: block.start], actual, *lines[block.end :]]), encoding="utf-8")
        return
    raise AssertionError(
        f"README output {name!r} differs from what pgq prints (regenerate with PGQ_README_UPDATE=1):\n"
        f"--- README\n{block.text}\n--- pgq\n{actual}"
    )


def _body_of(example: str) -> dict[str, Any]:
    """The JSON body the README's curl example sends (its ``-d '...'``)."""
    match = re.search(r"-d '(\{.*?\})'", example, re.DOTALL)
    assert match, f"no -d '{{...}}' body in the README example:\n{example}"
    body: dict[str, Any] = json.loads(match[1])
    return body


def _jq(value: object) -> str:
    """What ``jq .`` prints: two-space indents, UTF-8 as is."""
    return json.dumps(value, indent=2, ensure_ascii=False)


def _jq_compact(value: object) -> str:
    """What ``jq -c`` prints."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _utc(year: int, month: int, day: int, hour: int, minute: int, second: int = 0) -> dt.datetime:
    return dt.datetime(year, month, day, hour, minute, second, tzinfo=dt.UTC)


def example_worker_app(dsn: str) -> pgq.App:
    """The example app's tasks (what `pgq demo` runs) registered on an app for this database."""
    app = pgq.App(dsn)
    for task in pgq.example_app.app.tasks.values():
        app.tasks[task.name] = Task(app, task.fn, task.name, task.options)
    return app


# -- the outputs the README shows -----------------------------------------------------

pytestmark = pytest.mark.anyio

CHECKED = {"enqueue", "thumbnail-result", "cancel-finished", "invalid-fields", "health", "schedules"}
CHECKED |= {"sql-enqueue-refused"}  # tests/test_sql_enqueue.py
CHECKED |= {"pipeline"}  # tests/test_example_pipeline.py
CHECKED |= {"workflow-post"}  # tests/test_api_workflows.py


def test_every_output_the_readme_shows_is_checked_here() -> None:
    assert set(shown_outputs(README.read_text(encoding="utf-8"))) == CHECKED


async def test_readme_enqueue_wait_and_cancel_outputs_are_what_the_api_says(api: httpx.AsyncClient, dsn: str) -> None:
    shown = shown_outputs(README.read_text(encoding="utf-8"))
    created = await api.post("/jobs", json=_body_of(shown["enqueue"].example))
    assert created.status_code == 201, created.text
    check_shown("enqueue", _jq(created.json()))

    job_id = created.json()["id"]
    worker_app = example_worker_app(dsn)
    async with worker_app, running_worker(worker_app):
        job: dict[str, Any] = {"state": "queued"}
        while job["state"] not in ("succeeded", "failed", "cancelled"):  # the README's loop
            job = (await api.get(f"/jobs/{job_id}/wait", params={"timeout": 30})).json()
    check_shown("thumbnail-result", _jq_compact(job["result"]))

    refused = await api.post(f"/jobs/{job_id}/cancel")
    assert refused.status_code == 409
    check_shown("cancel-finished", refused.text)


async def test_readme_error_output_is_what_the_api_answers(api: httpx.AsyncClient, dsn: str) -> None:
    example = shown_outputs(README.read_text(encoding="utf-8"))["invalid-fields"].example
    response = await api.post("/jobs", json=_body_of(example))
    assert response.status_code == 422
    assert count_rows(dsn) == 0
    check_shown("invalid-fields", _jq(response.json()))


async def test_readme_health_output_is_what_the_api_answers(api: httpx.AsyncClient) -> None:
    request = api.build_request("GET", "/health")
    del request.headers["Authorization"]  # the README's curl sends no token
    response = await api.send(request)
    assert response.status_code == 200
    check_shown("health", response.text)


async def test_readme_schedules_listing_is_what_pgq_schedules_prints(dsn: str) -> None:
    """The README's periodic-jobs example, registered as a worker does, at the times the listing shows."""
    app = pgq.App(dsn)
    exec(shown_outputs(README.read_text(encoding="utf-8"))["schedules"].example, {"app": app})
    async with AsyncConnectionPool(dsn, min_size=1, kwargs={"autocommit": True}) as pool:
        await Scheduler(pool).register(app.schedules.values(), app.tasks)
    runs = {  # name: (next run, last run, last job), as the leader would have left them
        "refresh_dashboard": (_utc(2030, 3, 30, 12, 5), _utc(2030, 3, 30, 12, 0), 4712),
        "poll_inbox": (_utc(2030, 3, 30, 12, 0, 30), _utc(2030, 3, 30, 12, 0), 4711),
        "nightly_report": (_utc(2030, 3, 31, 1, 0), _utc(2030, 3, 30, 1, 30), 4690),
        "weekly_report": (_utc(2030, 3, 31, 0, 0), None, None),
    }
    assert set(runs) == set(app.schedules)
    declared = ["poll_inbox", "refresh_dashboard", "nightly_report"]  # weekly_report's code is gone
    with psycopg.connect(dsn, autocommit=True) as conn:
        for name, (next_run, last_run, last_job) in runs.items():
            conn.execute(
                "UPDATE pgq.schedules SET next_run_at = %s, last_run_at = %s, last_job_id = %s, declared_at = %s"
                " WHERE name = %s",
                (next_run, last_run, last_job, _utc(2030, 3, 29, 17, 2, 11), name),
            )
        for worker in ("w-1", "w-2"):  # two live workers whose app declares the rest, as heartbeats write it
            conn.execute(
                "INSERT INTO pgq.workers (id, host, pid, queues, concurrency, schedules)"
                " VALUES (%s, 'h', 1, '{default}', 1, %s)",
                (worker, declared),
            )
    listing = pgq_cli("schedules", dsn=dsn)
    assert listing.returncode == 0, listing.stderr
    check_shown("schedules", listing.stdout)
