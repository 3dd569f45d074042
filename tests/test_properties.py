"""Property-based tests (hypothesis): generated bodies, headers, query strings and path
values at every endpoint, and generated arguments at ``app.enqueue``.

The invariant is the product's promise: either a 2xx whose job reads back the same
through GET /jobs/{id}, ``app.get_job`` and ``pgq jobs ID``, or a 4xx / typed
exception with the row count unchanged; never a 500, never another exception.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import decimal
import json
import math
import string
from collections.abc import Iterator
from typing import Any

import httpx
import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.routing import Route

import pgq
from pgq.api import create_app
from tests.conftest import READ_TOKEN, WRITE, WRITE_TOKEN, api_settings, pgq_cli

SETTINGS = settings(
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)
LIBRARY_ERRORS = (ValueError, TypeError, pgq.PgqError)
"""What the library may raise for bad input: anything else is a bug."""


@dataclasses.dataclass
class Harness:
    """One event loop, the API (lifespan run) and a library App on one test database."""

    runner: asyncio.Runner
    client: httpx.AsyncClient
    app: pgq.App
    conn: psycopg.Connection[tuple[Any, ...]]
    dsn: str
    routes: list[Route]

    def rows(self) -> int:
        row = self.conn.execute("SELECT count(*) FROM pgq.jobs").fetchone()
        assert row is not None
        return int(row[0])

    def request(self, method: str, url: str, headers: dict[str, str] | None = None, **kwargs: Any) -> httpx.Response:
        """Headers go out as latin-1 bytes, as a raw client may send them."""
        raw = {k.encode("latin-1"): v.encode("latin-1") for k, v in (headers or {}).items()}

        async def send() -> httpx.Response:
            return await asyncio.wait_for(self.client.request(method, url, headers=raw, **kwargs), 20)

        return self.runner.run(send())


@pytest.fixture
def harness(dsn: str) -> Iterator[Harness]:
    runner = asyncio.Runner()
    api_app = create_app(pgq.App(dsn), settings=api_settings())
    lifespan = api_app.router.lifespan_context(api_app)
    runner.run(lifespan.__aenter__())
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=api_app), base_url="http://pgq")
    app = pgq.App(dsn)
    routes = [r for r in api_app.routes if isinstance(r, Route)]
    with psycopg.connect(dsn, autocommit=True) as conn:
        try:
            yield Harness(runner, client, app, conn, dsn, routes)
        finally:
            runner.run(client.aclose())
            runner.run(app.close())
            runner.run(lifespan.__aexit__(None, None, None))
            runner.close()


def _same_json(a: Any, b: Any) -> bool:
    """Equal as JSON data once stored in jsonb (numbers compare by value, 1.0 == 1)."""
    if isinstance(a, int | float) and isinstance(b, int | float) and not isinstance(a, bool):
        if a == b:
            return True
        try:
            return math.isclose(a, b, rel_tol=1e-15, abs_tol=0)
        except OverflowError:
            return False
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same_json(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same_json(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


# -- generated values ----------------------------------------------------------------------

_ANY_TEXT = st.text(st.characters(codec=None, exclude_categories=()), max_size=12)  # NUL and surrogates too
_NAMES = st.sampled_from(["t", "send_email", "a.b:c-d", "", " ", "1x", "x" * 256, "a\x00", "é", "a/b"])
_NUMBERS = (
    st.integers()
    | st.integers(min_value=10**3990, max_value=10**4010)
    | st.floats()
    | st.sampled_from([2**63, -(2**63) - 1, 10**400, 1e308, -0.0])
)
_JSON_LEAVES = st.none() | st.booleans() | _NUMBERS | _ANY_TEXT
_JSON = st.recursive(
    _JSON_LEAVES,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_ANY_TEXT, inner, max_size=3),
    max_leaves=8,
)
_PY_ODDITIES = st.sampled_from(
    [{1, 2}, b"bytes", dt.datetime(2030, 1, 1), decimal.Decimal("1.5"), object(), (1, 2), {1: "int key"}]
)
_ARGS = st.dictionaries(_ANY_TEXT, _JSON | _PY_ODDITIES, max_size=4) | _JSON | _PY_ODDITIES
_ZONES = st.timezones() | st.sampled_from([dt.UTC, dt.timezone(dt.timedelta(hours=-14)), dt.timezone.max])
_RUN_AT = st.none() | st.datetimes(timezones=_ZONES) | st.datetimes() | st.sampled_from(["2030-01-01", 5])
_DELAY = st.none() | st.floats() | st.integers() | st.timedeltas() | st.sampled_from(["5", True])
_SMALL_INTS = st.none() | st.integers() | st.sampled_from([0, 1, 5, -32768, 32767, 32768, 1_000_001, True, 1.5])


@dataclasses.dataclass(frozen=True)
class Enqueue:
    task: Any
    args: Any
    options: dict[str, Any]


_ENQUEUES = st.builds(
    Enqueue,
    task=_NAMES | _ANY_TEXT,
    args=_ARGS,
    options=st.fixed_dictionaries(
        {},
        optional={
            "queue": st.none() | _NAMES | _ANY_TEXT,
            "priority": _SMALL_INTS,
            "delay": _DELAY,
            "run_at": _RUN_AT,
            "max_attempts": _SMALL_INTS,
            "idempotency_key": st.none() | _ANY_TEXT | st.sampled_from(["k", "", "k" * 256]),
        },
    ),
)


def _cli_reads_back(dsn: str, jobs: list[pgq.Job]) -> None:
    """`pgq jobs ID --json` for a sample (a subprocess each: sampled, not every job)."""
    for job in jobs[:: max(1, len(jobs) // 3)][:3]:
        shown = pgq_cli("jobs", str(job.id), "--json", dsn=dsn)
        assert shown.returncode == 0, shown.stderr
        assert json.loads(shown.stdout) == job.to_dict()
    listed = pgq_cli("jobs", "--limit", "10000", dsn=dsn)
    assert listed.returncode == 0, listed.stderr


def test_generated_enqueues_are_written_and_read_back_or_refused_without_a_write(harness: Harness) -> None:
    written: list[pgq.Job] = []

    @settings(SETTINGS, max_examples=150)
    @given(spec=_ENQUEUES)
    def check(spec: Enqueue) -> None:
        before = harness.rows()
        try:
            job = harness.runner.run(harness.app.enqueue(spec.task, spec.args, **spec.options))
        except LIBRARY_ERRORS:
            assert harness.rows() == before
            return
        stored = harness.runner.run(harness.app.get_job(job.id))
        assert (stored.task, stored.queue, stored.state, stored.run_at) == (job.task, job.queue, job.state, job.run_at)
        assert _same_json(stored.args, job.args)
        got = harness.request("GET", f"/jobs/{job.id}", headers=WRITE)
        assert got.status_code == 200 and got.json() == stored.to_dict()
        written.append(stored)

    check()
    assert written, "no generated enqueue succeeded: the strategy is too hostile to test the read back"
    _cli_reads_back(harness.dsn, written)


_HEADER_TEXT = st.text(st.characters(min_codepoint=32, max_codepoint=255, exclude_characters="\x7f"), max_size=20)
_AUTH = st.sampled_from([f"Bearer {WRITE_TOKEN}", f"Bearer {READ_TOKEN}", "Bearer nope", "Basic x", ""]) | _HEADER_TEXT
_CONTENT_TYPES = st.sampled_from(["application/json", "application/problem+json", "text/plain", ""]) | _HEADER_TEXT
_FIELDS = [
    *("task", "args", "queue", "priority", "delay", "run_at", "max_attempts", "idempotency_key", "colour"),
    *("depends_on", "on_parent_failure"),
]


def _json_text(value: Any) -> str:
    return json.dumps(value, allow_nan=True, ensure_ascii=False, default=repr)


_BODY_FIELDS = st.dictionaries(
    st.sampled_from(_FIELDS),
    _JSON
    | _NAMES
    | st.datetimes(timezones=_ZONES).map(dt.datetime.isoformat)
    | st.sampled_from(["9999-12-31T23:59:59-14:00", "0001-01-01T00:00:00+14:00", "2030-01-01T00:00:00"])
    | st.lists(st.integers(min_value=0, max_value=3), max_size=3)  # depends_on: job ids, some of them real
    | st.sampled_from(["cancel", "run"]),
    max_size=6,
).map(lambda d: {"task": "t", **d} if "task" not in d else d)
_BODIES = (
    _BODY_FIELDS.map(_json_text)
    | _JSON.map(_json_text)
    | st.binary(max_size=40).map(lambda b: b.decode("latin-1"))
    | st.sampled_from(['{"task": "t", "args": {"a": NaN}}', '{"task": "t", "delay": Infinity}', '{"task": "t"'])
)


def test_generated_post_jobs_answers_2xx_and_reads_back_or_4xx_without_a_write(harness: Harness) -> None:
    created: list[int] = []

    @settings(SETTINGS, max_examples=300)
    @given(body=_BODIES, auth=_AUTH, content_type=_CONTENT_TYPES)
    def check(body: str, auth: str, content_type: str) -> None:
        before = harness.rows()
        headers = {"Authorization": auth, "Content-Type": content_type}
        response = harness.request("POST", "/jobs", content=body.encode("utf-8", "surrogatepass"), headers=headers)
        assert response.status_code < 500, response.text
        if response.status_code >= 300:
            assert harness.rows() == before, response.text
            assert set(response.json()["error"]) == {"code", "message", "details"}
            return
        job = response.json()
        got = harness.request("GET", f"/jobs/{job['id']}", headers=WRITE)
        stored = harness.runner.run(harness.app.get_job(job["id"]))
        assert got.status_code == 200 and got.json() == stored.to_dict()
        assert {k: v for k, v in got.json().items() if k != "args"} == {k: v for k, v in job.items() if k != "args"}
        assert _same_json(got.json()["args"], job["args"])
        created.append(job["id"])

    check()
    assert created, "no generated body was accepted: the strategy never reaches the read back"
    _cli_reads_back(harness.dsn, [harness.runner.run(harness.app.get_job(i)) for i in created])


_PATH_VALUES = (
    st.integers(min_value=-5, max_value=5).map(str)
    | st.sampled_from(["9" * 5000, str(2**63), str(2**63 - 1), "0" * 25 + "1", "1e3", "-1", "%00", "%2F", "1.0"])
    | st.text(string.ascii_letters + string.digits + "-._~%", min_size=1, max_size=30)
)
_QUERY = st.dictionaries(
    st.sampled_from(["queue", "state", "task", "limit", "cursor", "timeout", "x"]) | _HEADER_TEXT,
    st.sampled_from(["0", "1", "0.01", "-1", "nan", "inf", "9" * 5000, "queued", "a\x00", ""]) | _HEADER_TEXT,
    max_size=4,
)
_FRAMING = {"content-length", "transfer-encoding", "host", "authorization"}
_HEADER_NAMES = st.text(string.ascii_letters + string.digits + "-", min_size=1, max_size=20).filter(
    lambda k: k.lower() not in _FRAMING
) | st.sampled_from(["Content-Type", "Accept", "X-Forwarded-For", "Cookie", "Range", "If-None-Match"])
_METHODS = st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS", "JUNK", "get"])


def test_generated_requests_at_every_endpoint_never_answer_500(harness: Harness) -> None:
    # One finished job, so some generated ids hit a row while nothing waits forever
    # (a succeeded job can be neither cancelled nor retried, and its stream ends at once).
    job = harness.runner.run(harness.app.enqueue("t", delay=0))
    # And one finished workflow (its one step succeeded): nothing to cancel or retry.
    workflow = harness.runner.run(harness.app.enqueue_workflow([{"name": "a", "task": "t"}]))
    harness.conn.execute(
        "UPDATE pgq.jobs SET state = 'succeeded', attempt = 1, finished_at = now(), result = '1' WHERE id = ANY(%s)",
        [[job.id, workflow.steps[0].id]],
    )
    # GET /events streams until the client leaves, and ASGI transport reads a response whole:
    # its bad-input answers are tested in tests/test_api_live.py against a real server.
    templates = [*sorted({r.path for r in harness.routes} - {"/events"}), "/nowhere/{id}"]
    paths = st.sampled_from(templates).flatmap(
        lambda t: _PATH_VALUES.map(lambda v: t.replace("{id}", v)) if "{id}" in t else st.just(t)
    )

    @settings(SETTINGS, max_examples=400)
    @given(
        method=_METHODS,
        path=paths,
        query=_QUERY,
        auth=_AUTH,
        extra=st.dictionaries(_HEADER_NAMES, _HEADER_TEXT, max_size=2),
    )
    def check(method: str, path: str, query: dict[str, str], auth: str, extra: dict[str, str]) -> None:
        before = harness.rows()
        if query.get("timeout") not in {None, "nan", "inf", "-1", "", "a\x00"}:
            query = {**query, "timeout": "0.01"}  # a long-poll on the finished job answers at once anyway
        headers = {**extra, "Authorization": auth}
        try:
            response = harness.request(method, path, params=query, headers=headers)
        except httpx.InvalidURL:
            return  # httpx refuses to send it: not a request the server ever sees
        assert response.status_code < 500, (method, path, query, response.text)
        assert harness.rows() == before
        if method != "HEAD" and response.status_code >= 400:
            assert set(response.json()["error"]) == {"code", "message", "details"}

    check()
    assert harness.runner.run(harness.app.get_job(job.id)).state == pgq.JobState.SUCCEEDED
    assert harness.runner.run(harness.app.get_workflow(workflow.id)).state == "succeeded"


_STEP_NAMES = st.sampled_from(["a", "b", "c", "", "a\x00", "x" * 201]) | _ANY_TEXT
_STEPS = st.lists(
    st.fixed_dictionaries(
        {"name": _STEP_NAMES, "task": _NAMES},
        optional={
            "after": st.lists(_STEP_NAMES, max_size=3) | _JSON,
            "args": _JSON,
            "depends_on": st.lists(st.integers(min_value=-1, max_value=3) | _NUMBERS, max_size=3) | _JSON,
            "on_parent_failure": st.sampled_from(["cancel", "run", "maybe", None]),
            "priority": _SMALL_INTS,
            "delay": _DELAY.filter(lambda d: isinstance(d, int | float | str | None)),
            "idempotency_key": st.just("k"),
            "colour": st.just("red"),
        },
    ),
    max_size=4,
)
_WORKFLOW_BODIES = (
    st.fixed_dictionaries({"steps": _STEPS}, optional={"name": _STEP_NAMES | st.none()}).map(_json_text)
    | _JSON.map(_json_text)
    | st.sampled_from(['{"steps": [{"name": "a", "task": "t", "delay": NaN}]}', '{"steps": ['])
)


def test_generated_post_workflows_answers_201_and_reads_back_or_4xx_without_a_write(harness: Harness) -> None:
    parent = harness.runner.run(harness.app.enqueue("t", delay=3600))  # id 1: depends_on may name it
    created: list[int] = []

    @settings(SETTINGS, max_examples=300)
    @given(body=_WORKFLOW_BODIES, auth=_AUTH)
    def check(body: str, auth: str) -> None:
        before = harness.rows()
        headers = {"Authorization": auth, "Content-Type": "application/json"}
        response = harness.request("POST", "/workflows", content=body.encode("utf-8", "surrogatepass"), headers=headers)
        assert response.status_code < 500, response.text
        if response.status_code >= 300:
            assert harness.rows() == before, response.text
            assert set(response.json()["error"]) == {"code", "message", "details"}
            return
        workflow = response.json()
        assert harness.rows() == before + len(workflow["steps"])
        got = harness.request("GET", f"/workflows/{workflow['id']}", headers=WRITE)
        stored = harness.runner.run(harness.app.get_workflow(workflow["id"]))
        assert got.status_code == 200 and got.json() == stored.to_dict()
        assert [s["step"] for s in got.json()["steps"]] == [s["step"] for s in workflow["steps"]]
        created.append(workflow["id"])

    check()
    assert created, "no generated workflow was accepted: the strategy never reaches the read back"
    assert harness.runner.run(harness.app.get_job(parent.id)).state == pgq.JobState.SCHEDULED
