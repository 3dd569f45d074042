"""The dashboard through ASGI: pages, sign-in, CSRF, read-only tokens, escaping, actions.

The browser tests (test_ui_browser.py) prove the same in Chromium; these are the fast,
exhaustive ones.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import httpx
import psycopg
import pytest
from psycopg.types.json import Jsonb
from starlette.applications import Starlette
from starlette.routing import Mount

import pgq
from pgq.api import create_app
from pgq.db import dashboard as data
from tests.conftest import READ_TOKEN, WRITE_TOKEN, api_settings

pytestmark = pytest.mark.anyio

ORIGIN = {"Origin": "http://pgq"}
XSS = '<script>window.pwned=1</script><img src=x onerror="window.pwned=1">'


async def _client(app: Starlette, token: str | None, base: str = "http://pgq") -> httpx.AsyncClient:
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=base)
    if token is not None:
        client.cookies.set("pgq_token", token)
    return client


@pytest.fixture
async def browser(api_app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    """A signed-in browser with the write token, holding its CSRF cookie."""
    async with await _client(api_app, WRITE_TOKEN) as client:
        assert (await client.get("/ui/")).status_code == 200
        yield client


@pytest.fixture
async def reader(api_app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    async with await _client(api_app, READ_TOKEN) as client:
        assert (await client.get("/ui/")).status_code == 200
        yield client


def _csrf(client: httpx.AsyncClient) -> str:
    return client.cookies["pgq_csrf"]


async def _post(client: httpx.AsyncClient, url: str, **fields: str) -> httpx.Response:
    return await client.post(url, data={"csrf": _csrf(client), **fields}, headers=ORIGIN)


def _state(dsn: str, job_id: int) -> str:
    with psycopg.connect(dsn) as conn:
        row = conn.execute("SELECT state FROM pgq.jobs WHERE id = %s", [job_id]).fetchone()
    assert row is not None
    return str(row[0])


def _fail(dsn: str, job_id: int, message: str = "boom", traceback: str = "Traceback: boom") -> None:
    """Make a job failed with one error entry, as a worker would leave it."""
    error = {"attempt": 1, "at": "2026-12-02T10:00:00+00:00", "type": "ValueError", "message": message}
    with psycopg.connect(dsn) as conn:
        conn.execute(
            "UPDATE pgq.jobs SET state = 'failed', attempt = 1, started_at = now(), finished_at = now(), "
            "errors = jsonb_build_array(%s::jsonb) WHERE id = %s",
            [Jsonb({**error, "traceback": traceback}), job_id],
        )


PAGES = ["/ui/", "/ui/jobs", "/ui/jobs?state=failed", "/ui/tasks", "/ui/workers", "/ui/schedules"]


async def test_every_page_renders_under_a_strict_csp_without_inline_script_or_style(
    browser: httpx.AsyncClient, dsn: str
) -> None:
    job = await pgq.App(dsn).enqueue("noop", {"n": 1})
    for url in [*PAGES, f"/ui/jobs/{job.id}", "/ui/jobs/bulk?action=retry"]:
        response = await browser.get(url)
        assert response.status_code == 200, (url, response.text)
        csp = response.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "default-src 'none'" in csp and "unsafe" not in csp
        assert response.headers["x-frame-options"] == "DENY"
        html = response.text
        assert all(' src="' in tag for tag in re.findall(r"<script[^>]*>", html)), url
        assert not re.search(r"\sstyle=|\son[a-z]+=", html), url
        assert '<meta name="viewport"' in html
    assert (await browser.get("/ui/static/ui.js")).headers["content-type"].startswith("text/javascript")


async def test_without_a_cookie_pages_redirect_to_sign_in_and_a_wrong_token_is_refused(api_app: Starlette) -> None:
    async with await _client(api_app, None) as client:
        first = await client.get("/ui/jobs")
        assert first.status_code == 303 and first.headers["location"] == "/ui/login?next=%2Fui%2Fjobs"
        page = await client.get(first.headers["location"])
        assert page.status_code == 200 and 'name="next" value="/ui/jobs"' in page.text
        wrong = await _post(client, "/ui/login", token="not-a-token", next="/ui/jobs")
        assert wrong.status_code == 401 and "not valid" in wrong.text and "pgq_token" not in wrong.cookies
        assert (await client.get("/ui/jobs?fragment=1")).status_code == 401


@pytest.mark.parametrize("scheme", ["http", "https"])
async def test_sign_in_keeps_the_token_in_an_httponly_samesite_strict_cookie(api_app: Starlette, scheme: str) -> None:
    async with await _client(api_app, None, base=f"{scheme}://pgq") as client:
        await client.get("/ui/login")
        response = await client.post(
            "/ui/login",
            data={"csrf": _csrf(client), "token": READ_TOKEN, "next": "/ui/jobs"},
            headers={"Origin": f"{scheme}://pgq"},
        )
        assert response.status_code == 303 and response.headers["location"] == "/ui/jobs"
        cookie = next(c for c in response.headers.get_list("set-cookie") if c.startswith("pgq_token="))
        assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/;" in cookie
        assert ("Secure" in cookie) == (scheme == "https")
        # A next= that leaves the dashboard is ignored (no open redirect).
        evil = await client.post(
            "/ui/login",
            data={"csrf": _csrf(client), "token": READ_TOKEN, "next": "//evil.example/ui/"},
            headers={"Origin": f"{scheme}://pgq"},
        )
        assert evil.headers["location"] == "/ui/"


async def test_the_cookie_reads_the_json_api_and_streams_but_never_writes_through_it(
    browser: httpx.AsyncClient, dsn: str
) -> None:
    job = await pgq.App(dsn).enqueue("noop")
    assert (await browser.get(f"/jobs/{job.id}")).status_code == 200
    assert (await browser.get("/queues")).status_code == 200
    refused = await browser.post(f"/jobs/{job.id}/cancel", headers=ORIGIN)
    assert refused.status_code == 401 and _state(dsn, job.id) == "queued"


async def test_a_read_token_sees_every_page_without_action_buttons_and_its_posts_are_refused(
    reader: httpx.AsyncClient, dsn: str
) -> None:
    app = pgq.App(dsn)
    failed, waiting = await app.enqueue("noop"), await app.enqueue("noop")
    _fail(dsn, failed.id)
    for url in [*PAGES, f"/ui/jobs/{failed.id}", f"/ui/jobs/{waiting.id}"]:
        response = await reader.get(url)
        assert response.status_code == 200 and "data-action" not in response.text, url
        assert "read-only" in response.text
    for url in [f"/ui/jobs/{failed.id}/retry", f"/ui/jobs/{waiting.id}/cancel", "/ui/queues/default/pause"]:
        assert (await _post(reader, url)).status_code == 403, url
    assert (await _post(reader, "/ui/jobs/bulk", action="retry")).status_code == 403
    assert (await reader.get("/ui/jobs/bulk?action=retry")).status_code == 403
    assert (_state(dsn, failed.id), _state(dsn, waiting.id)) == ("failed", "queued")


async def test_forged_posts_without_the_csrf_token_or_from_another_origin_change_nothing(
    browser: httpx.AsyncClient, dsn: str
) -> None:
    job = await pgq.App(dsn).enqueue("noop")
    url = f"/ui/jobs/{job.id}/cancel"
    forged = [
        await browser.post(url, data={"other": "1"}, headers=ORIGIN),
        await browser.post(url, data={"csrf": "x" * 43}, headers=ORIGIN),
        await browser.post(url, data={"csrf": _csrf(browser)}, headers={"Origin": "http://evil.example"}),
        await browser.post(url, data={"csrf": _csrf(browser)}, headers={"Referer": "http://evil.example/x"}),
        await browser.post(url, data={"csrf": _csrf(browser)}),  # neither Origin nor Referer
        await browser.post(url, content=b'{"csrf": "' + _csrf(browser).encode() + b'"}', headers=ORIGIN),
    ]
    assert [r.status_code for r in forged] == [403, 403, 403, 403, 403, 415]
    assert all("Refused" in r.text for r in forged)
    assert _state(dsn, job.id) == "queued"
    # The same form with the token and this origin works (Referer alone is enough too).
    done = await browser.post(url, data={"csrf": _csrf(browser)}, headers={"Referer": "http://pgq/ui/"})
    assert done.status_code == 303 and _state(dsn, job.id) == "cancelled"


async def test_job_data_with_html_renders_as_text(browser: httpx.AsyncClient, dsn: str) -> None:
    app = pgq.App(dsn)
    job = await app.enqueue("noop", {"note": XSS}, idempotency_key=XSS)
    done = await app.enqueue("noop")
    _fail(dsn, job.id, message=XSS, traceback=XSS)
    with psycopg.connect(dsn) as conn:
        conn.execute(
            "UPDATE pgq.jobs SET state = 'succeeded', attempt = 1, started_at = now(), finished_at = now(), "
            "result = %s WHERE id = %s",
            [Jsonb({"html": XSS}), done.id],
        )
    pages = [f"/ui/jobs/{job.id}", f"/ui/jobs/{done.id}", "/ui/tasks", f"/ui/jobs?q={XSS}"]
    for url in pages:
        html = (await browser.get(url)).text
        assert "<script>window" not in html and "<img src=x" not in html, url
    assert "&lt;script&gt;window.pwned=1&lt;/script&gt;" in (await browser.get(f"/ui/jobs/{job.id}")).text
    # Task names cannot carry HTML at all: the table refuses them.
    with pytest.raises(ValueError, match="task"):
        await app.enqueue("<script>")


async def test_overview_counts_equal_the_table(browser: httpx.AsyncClient, dsn: str) -> None:
    app = pgq.App(dsn)
    jobs = await app.enqueue_many([{"task": "noop", "queue": q} for q in ["mail"] * 3 + ["images"] * 2])
    await app.enqueue("noop", queue="mail", delay=3600)
    await app.cancel(jobs[0].id)
    _fail(dsn, jobs[3].id)
    html = (await browser.get("/ui/")).text
    with psycopg.connect(dsn) as conn:
        counts = conn.execute("SELECT queue, state, count(*) FROM pgq.jobs GROUP BY 1, 2").fetchall()
    for queue, state, count in counts:
        row = html.split(f'<tr data-queue="{queue}">', 1)[1].split("</tr>", 1)[0]
        cell = row.split(f'data-state="{state}">', 1)[1].split("</td>", 1)[0]
        assert re.sub(r"<[^>]+>", "", cell).strip() == str(count), (queue, state)
    assert '<b id="failed-hour">1</b>' in html and '<b id="finished-hour">2</b>' in html
    assert html.count("<rect ") == 2  # one bar per queue: this minute's finishes


async def test_jobs_filter_find_by_id_or_key_and_keyset_pages(browser: httpx.AsyncClient, dsn: str) -> None:
    app = pgq.App(dsn)
    jobs = await app.enqueue_many([{"task": "noop", "queue": "bulk"} for _ in range(55)])
    keyed = await app.enqueue("sync_noop", queue="other", idempotency_key="order:7")
    first = (await browser.get("/ui/jobs?queue=bulk")).text
    ids = [int(i) for i in re.findall(r'data-job="(\d+)"', first)]
    assert ids == [j.id for j in reversed(jobs)][:50]
    next_url = re.search(r'rel="next" href="([^"]+)"', first)
    assert next_url is not None
    second = (await browser.get(next_url.group(1).replace("&amp;", "&"))).text
    assert [int(i) for i in re.findall(r'data-job="(\d+)"', second)] == [j.id for j in reversed(jobs)][50:]
    assert re.findall(r'data-job="(\d+)"', (await browser.get("/ui/jobs?task=sync_noop")).text) == [str(keyed.id)]
    assert re.findall(r'data-job="(\d+)"', (await browser.get("/ui/jobs?q=order:7")).text) == [str(keyed.id)]
    assert re.findall(r'data-job="(\d+)"', (await browser.get(f"/ui/jobs?q={jobs[3].id}")).text) == [str(jobs[3].id)]
    await app.cancel(keyed.id)  # a finished job is found by its key too
    assert re.findall(r'data-job="(\d+)"', (await browser.get("/ui/jobs?q=order:7")).text) == [str(keyed.id)]
    for bad in ["state=nope", "before=abc", "before=0", f"queue={'q' * 256}"]:
        response = await browser.get(f"/ui/jobs?{bad}")
        assert response.status_code == 400 and "Bad filter" in response.text, bad
    assert (await browser.get("/ui/jobs/999999")).status_code == 404


async def test_cancel_and_retry_buttons_change_the_job_and_a_refused_change_says_why(
    browser: httpx.AsyncClient, dsn: str
) -> None:
    app = pgq.App(dsn)
    job = await app.enqueue("noop")
    page = (await browser.get(f"/ui/jobs/{job.id}")).text
    assert 'data-action="cancel"' in page and 'data-action="retry"' not in page
    response = await _post(browser, f"/ui/jobs/{job.id}/cancel")
    assert response.status_code == 303 and response.headers["location"] == f"/ui/jobs/{job.id}?done=cancelled"
    assert "Cancelled." in (await browser.get(response.headers["location"])).text
    response = await _post(browser, f"/ui/jobs/{job.id}/retry")
    assert response.status_code == 303 and _state(dsn, job.id) == "queued"
    refused = await _post(browser, f"/ui/jobs/{job.id}/retry")
    assert refused.status_code == 409 and "only failed or cancelled jobs can be retried" in refused.text
    assert (await _post(browser, "/ui/jobs/424242/cancel")).status_code == 404


async def test_bulk_retry_confirms_the_count_and_retries_only_failed_jobs_matching_the_filter(
    browser: httpx.AsyncClient, dsn: str
) -> None:
    app = pgq.App(dsn)
    jobs = await app.enqueue_many([{"task": t, "queue": q} for t, q in [("noop", "a")] * 3 + [("sync_noop", "a")]])
    other = await app.enqueue("noop", queue="b")
    for job in [*jobs, other]:
        _fail(dsn, job.id)
    page = (await browser.get("/ui/jobs?queue=a&task=noop&state=failed")).text
    link = re.search(r'data-action="bulk-retry" href="([^"]+)"', page)
    assert link is not None
    confirm = (await browser.get(link.group(1).replace("&amp;", "&"))).text
    assert '<b id="confirm-count">3</b>' in confirm
    response = await _post(browser, "/ui/jobs/bulk", action="retry", queue="a", task="noop")
    assert response.status_code == 303 and "done=bulk_retried" in response.headers["location"]
    assert "n=3" in response.headers["location"]
    assert [_state(dsn, j.id) for j in [*jobs, other]] == ["queued"] * 3 + ["failed", "failed"]


async def test_bulk_retry_keeps_idempotency_keys_unique_among_live_jobs(browser: httpx.AsyncClient, dsn: str) -> None:
    app = pgq.App(dsn)
    old = await app.enqueue("noop", idempotency_key="k")
    _fail(dsn, old.id)
    newer = await app.enqueue("noop", idempotency_key="k")
    _fail(dsn, newer.id)
    live = await app.enqueue("noop", idempotency_key="held")
    held = await app.enqueue("noop")
    _fail(dsn, held.id)
    with psycopg.connect(dsn) as conn:  # a failed job whose key a live job holds
        conn.execute("UPDATE pgq.jobs SET idempotency_key = 'held' WHERE id = %s", [held.id])
    response = await _post(browser, "/ui/jobs/bulk", action="retry")
    assert response.status_code == 303 and "n=1" in response.headers["location"]
    assert [_state(dsn, j.id) for j in (old, newer, live, held)] == ["failed", "queued", "queued", "failed"]


async def test_bulk_cancel_cancels_only_waiting_jobs_matching_the_filter(browser: httpx.AsyncClient, dsn: str) -> None:
    app = pgq.App(dsn)
    waiting = [await app.enqueue("noop", queue="a"), await app.enqueue("noop", queue="a", delay=3600)]
    other = await app.enqueue("noop", queue="b")
    confirm = (await browser.get("/ui/jobs/bulk?action=cancel&queue=a")).text
    assert '<b id="confirm-count">2</b>' in confirm
    response = await _post(browser, "/ui/jobs/bulk", action="cancel", queue="a")
    assert "n=2" in response.headers["location"]
    assert [_state(dsn, j.id) for j in [*waiting, other]] == ["cancelled", "cancelled", "queued"]
    assert (await browser.get("/ui/jobs/bulk?action=drop")).status_code == 400


async def test_tasks_workers_and_schedules_pages_show_their_rows(browser: httpx.AsyncClient, dsn: str) -> None:
    app = pgq.App(dsn)
    ok, bad = await app.enqueue("noop"), await app.enqueue("noop")
    _fail(dsn, bad.id, message="disk full")
    with psycopg.connect(dsn) as conn:
        conn.execute(
            "UPDATE pgq.jobs SET state = 'succeeded', attempt = 1, started_at = now() - interval '2 s', "
            "finished_at = now() WHERE id = %s",
            [ok.id],
        )
        conn.execute(
            "INSERT INTO pgq.workers (id, host, pid, queues, concurrency) VALUES ('w1', 'box-1', 4242, '{mail}', 8)"
        )
        conn.execute(
            "INSERT INTO pgq.schedules (name, task, cron, timezone, next_run_at, last_job_id) "
            "VALUES ('nightly', 'noop', '0 3 * * *', 'Europe/Berlin', now() + interval '1 h', %s)",
            [ok.id],
        )
    tasks = (await browser.get("/ui/tasks")).text
    assert "50.0 %" in tasks and "disk full" in tasks
    workers = (await browser.get("/ui/workers")).text
    assert "box-1" in workers and "4242" in workers and "mail" in workers
    schedules = (await browser.get("/ui/schedules")).text
    assert "0 3 * * *" in schedules and "Europe/Berlin" in schedules and f"/ui/jobs/{ok.id}" in schedules


async def test_the_dashboard_works_under_a_prefix(dsn: str) -> None:
    served = pgq.App(dsn)
    host = Starlette(routes=[Mount("/pgq", app=create_app(served, settings=api_settings()))])
    job = await served.enqueue("noop")
    async with served, await _client(host, None) as client:
        first = await client.get("/pgq/ui/")
        assert first.status_code == 303 and first.headers["location"].startswith("/pgq/ui/login")
        login = await client.get(first.headers["location"])
        assert 'href="/pgq/ui/static/ui.css"' in login.text and 'action="/pgq/ui/login"' in login.text
        signed = await _post(client, "/pgq/ui/login", token=WRITE_TOKEN)
        assert signed.headers["location"] == "/pgq/ui/"
        assert "Path=/pgq/;" in next(c for c in signed.headers.get_list("set-cookie") if c.startswith("pgq_token="))
        client.cookies.set("pgq_token", WRITE_TOKEN)  # httpx keeps path-scoped cookies per domain only
        page = await client.get(f"/pgq/ui/jobs/{job.id}")
        assert f'data-events="/pgq/jobs/{job.id}/events"' in page.text
        assert f'action="/pgq/ui/jobs/{job.id}/cancel"' in page.text
        assert (await client.get("/pgq/ui/static/ui.js")).status_code == 200


async def test_pause_and_resume_buttons_pause_the_queue_for_every_worker(browser: httpx.AsyncClient, dsn: str) -> None:
    app = pgq.App(dsn)
    await app.enqueue("noop", queue="mail")
    assert 'data-action="pause"' in (await browser.get("/ui/")).text
    response = await _post(browser, "/ui/queues/mail/pause")
    assert response.status_code == 303 and response.headers["location"] == "/ui/?done=paused"
    assert [q.queue for q in await app.paused_queues()] == ["mail"]
    page = (await browser.get("/ui/")).text
    row = page.split('<tr data-queue="mail">', 1)[1].split("</tr>", 1)[0]
    assert ">paused</span>" in row and 'data-action="resume"' in row
    assert (await _post(browser, "/ui/queues/mail/resume")).headers["location"] == "/ui/?done=resumed"
    assert await app.paused_queues() == []
    bad = await _post(browser, "/ui/queues/no%20spaces/pause")
    assert bad.status_code == 400 and "Bad queue name" in bad.text


async def test_task_statistics_read_at_most_the_latest_runs_and_say_how_far_back_they_reach(dsn: str) -> None:
    app = pgq.App(dsn)
    jobs = await app.enqueue_many([{"task": "noop"} for _ in range(3)])
    with psycopg.connect(dsn) as conn:
        conn.execute(
            "UPDATE pgq.jobs SET state = 'succeeded', attempt = 1, started_at = now() - interval '90 min', "
            "finished_at = now() - make_interval(mins => id::int * 10) WHERE id = ANY(%s)",
            [[j.id for j in jobs]],
        )
    async with app:
        capped = await app.run(data.task_stats(cap=2))
    assert [(r.task, r.runs, r.read) for r in capped.day] == [("noop", 2, 2)]
    assert capped.day[0].covered_seconds is not None and 19 * 60 < capped.day[0].covered_seconds < 21 * 60
    assert [r.runs for r in capped.hour] == [2]
