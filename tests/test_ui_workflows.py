"""The dashboard's workflow pages through ASGI: the list, a workflow with its steps and
their parents, a step's job page, and cancel / retry behind a confirmation, CSRF and a
write token."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any

import httpx
import psycopg
import pytest
from starlette.applications import Starlette

import pgq
from tests.conftest import READ_TOKEN, WRITE_TOKEN
from tests.test_ui import ORIGIN, XSS, _client, _csrf, _fail, _post, _state

pytestmark = pytest.mark.anyio

STEPS: list[dict[str, Any]] = [
    {"name": "fetch", "task": "noop"},
    {"name": "scan-a", "task": "noop", "after": ["fetch"]},
    {"name": "scan-b", "task": "noop", "after": ["fetch"]},
    {"name": "merge", "task": "noop", "after": ["scan-a", "scan-b"]},
]


@pytest.fixture
async def browser(api_app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    async with await _client(api_app, WRITE_TOKEN) as client:
        assert (await client.get("/ui/")).status_code == 200
        yield client


@pytest.fixture
async def reader(api_app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    async with await _client(api_app, READ_TOKEN) as client:
        assert (await client.get("/ui/")).status_code == 200
        yield client


async def test_workflow_pages_render_under_the_strict_csp_and_are_in_the_nav(
    browser: httpx.AsyncClient, dsn: str
) -> None:
    async with pgq.App(dsn) as app:
        wf = await app.enqueue_workflow(STEPS, name="nightly")
    for url in [
        "/ui/workflows",
        f"/ui/workflows/{wf.id}",
        f"/ui/workflows/{wf.id}/cancel",
        f"/ui/jobs/{wf.steps[3].id}",
    ]:
        response = await browser.get(url)
        assert response.status_code == 200, (url, response.text)
        assert "unsafe" not in response.headers["content-security-policy"]
        html = response.text
        assert all(' src="' in tag for tag in re.findall(r"<script[^>]*>", html)), url
        assert not re.search(r"\sstyle=|\son[a-z]+=", html), url
        assert 'href="/ui/workflows">Workflows</a>' in html
    assert (
        (await browser.get(f"/ui/workflows/{wf.id}?fragment=1")).text.lstrip().startswith('<section class="job-head">')
    )


async def test_the_list_shows_each_workflow_with_its_state_and_counts_newest_first(
    browser: httpx.AsyncClient, dsn: str
) -> None:
    async with pgq.App(dsn) as app:
        first = await app.enqueue_workflow(STEPS, name="first")
        second = await app.enqueue_workflow(STEPS[:1], name=XSS)
        await app.cancel_workflow(second.id)
    html = (await browser.get("/ui/workflows")).text
    assert re.findall(r'data-workflow="(\d+)"', html) == [str(second.id), str(first.id)]
    row = html.split(f'data-workflow="{first.id}"', 1)[1].split("</tr>", 1)[0]
    assert ">first<" in row and 'class="badge running"' in row
    cells = dict(re.findall(r'data-state="(\w+)">(\d+)<', row))
    assert cells == {"waiting": "3", "queued": "1", "running": "0", "succeeded": "0", "failed": "0", "cancelled": "0"}
    assert "<script>window" not in html and "&lt;script&gt;" in html
    assert (await browser.get("/ui/workflows?before=abc")).status_code == 400
    assert (await browser.get("/ui/workflows?before=" + "9" * 5000)).status_code == 400


async def test_a_workflow_page_lists_steps_with_parents_linking_each_job(browser: httpx.AsyncClient, dsn: str) -> None:
    async with pgq.App(dsn) as app:
        wf = await app.enqueue_workflow(STEPS, name="nightly")
    _, scan_a, scan_b, merge = wf.steps
    html = (await browser.get(f"/ui/workflows/{wf.id}")).text
    assert re.findall(r'<tr data-job="(\d+)"', html) == [str(j.id) for j in wf.steps]
    row = html.split(f'<tr data-job="{merge.id}"', 1)[1].split("</tr>", 1)[0]
    assert f'href="/ui/jobs/{merge.id}"' in row and "2 left" in row
    assert re.findall(r'data-parent="(\d+)">([\w-]+)<', row) == [(str(scan_a.id), "scan-a"), (str(scan_b.id), "scan-b")]
    assert 'data-action="workflow-cancel"' in html and 'data-action="workflow-retry"' not in html
    job_page = (await browser.get(f"/ui/jobs/{merge.id}")).text
    assert f'of <a href="/ui/workflows/{wf.id}">workflow {wf.id}</a>' in job_page and "<b>merge</b>" in job_page
    assert re.findall(r'data-parent="(\d+)"', job_page) == [str(scan_a.id), str(scan_b.id)]
    assert '<b id="parents-left">2</b>' in job_page
    plain = await pgq.App(dsn).enqueue("noop")
    assert "Parents" not in (await browser.get(f"/ui/jobs/{plain.id}")).text
    for missing in ("424242", "9" * 30):
        assert (await browser.get(f"/ui/workflows/{missing}")).status_code == 404


async def test_cancel_then_retry_a_workflow_through_the_confirmation_pages(
    browser: httpx.AsyncClient, dsn: str
) -> None:
    async with pgq.App(dsn) as app:
        wf = await app.enqueue_workflow(STEPS, name="nightly")
    confirm = (await browser.get(f"/ui/workflows/{wf.id}/cancel")).text
    assert '<b id="confirm-count">4</b>' in confirm and f'action="/ui/workflows/{wf.id}/cancel"' in confirm
    done = await _post(browser, f"/ui/workflows/{wf.id}/cancel")
    assert done.status_code == 303 and done.headers["location"] == f"/ui/workflows/{wf.id}?done=workflow_cancelled"
    assert {_state(dsn, j.id) for j in wf.steps} == {"cancelled"}
    page = (await browser.get(done.headers["location"])).text
    assert "Steps not started are cancelled" in page and 'data-action="workflow-retry"' in page
    assert '<b id="confirm-count">4</b>' in (await browser.get(f"/ui/workflows/{wf.id}/retry")).text
    retried = await _post(browser, f"/ui/workflows/{wf.id}/retry")
    assert retried.status_code == 303
    assert [_state(dsn, j.id) for j in wf.steps] == ["queued", "waiting", "waiting", "waiting"]
    assert (await _post(browser, "/ui/workflows/424242/cancel")).status_code == 404


async def test_a_read_token_sees_no_workflow_buttons_and_forged_posts_change_nothing(
    reader: httpx.AsyncClient, browser: httpx.AsyncClient, dsn: str
) -> None:
    async with pgq.App(dsn) as app:
        wf = await app.enqueue_workflow(STEPS, name="nightly")
    _fail(dsn, wf.steps[0].id)  # its dependents are cancelled: both buttons would show for a writer
    before = [_state(dsn, j.id) for j in wf.steps]
    assert before == ["failed", "cancelled", "cancelled", "cancelled"]
    page = await reader.get(f"/ui/workflows/{wf.id}")
    assert page.status_code == 200 and "data-action" not in page.text
    assert (await reader.get(f"/ui/workflows/{wf.id}/cancel")).status_code == 403
    assert (await _post(reader, f"/ui/workflows/{wf.id}/cancel")).status_code == 403
    url = f"/ui/workflows/{wf.id}/cancel"
    forged = [
        await browser.post(url, data={"csrf": "x" * 43}, headers=ORIGIN),
        await browser.post(url, data={"csrf": _csrf(browser)}, headers={"Origin": "http://evil.example"}),
        await browser.post(url, data={"csrf": _csrf(browser)}),
    ]
    assert [r.status_code for r in forged] == [403, 403, 403]
    assert (await _post(reader, f"/ui/workflows/{wf.id}/retry")).status_code == 403
    assert [_state(dsn, j.id) for j in wf.steps] == before


async def test_bulk_cancel_counts_and_cancels_jobs_waiting_for_parents(browser: httpx.AsyncClient, dsn: str) -> None:
    async with pgq.App(dsn) as app:
        parent = await app.enqueue("noop", delay=3600)
        child = await app.enqueue("noop", depends_on=[parent])
    assert '<b id="confirm-count">2</b>' in (await browser.get("/ui/jobs/bulk?action=cancel")).text
    assert 'data-action="bulk-cancel"' in (await browser.get("/ui/jobs?state=waiting")).text
    await _post(browser, "/ui/jobs/bulk", action="cancel")
    assert (_state(dsn, parent.id), _state(dsn, child.id)) == ("cancelled", "cancelled")
    with psycopg.connect(dsn) as conn:
        assert conn.execute("SELECT count(*) FROM pgq.jobs WHERE state <> 'cancelled'").fetchone() == (0,)
