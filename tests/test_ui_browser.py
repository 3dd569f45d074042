"""The dashboard in real Chromium, against a real `pgq api` process and a real worker.

One browser, one API server and one worker serve the whole module (they start in a few
seconds); each test uses its own jobs. Chromium and chromedriver are Debian's
(apt-get install chromium chromium-driver): nothing here downloads a browser, and
without them the module is skipped with that reason.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from tests.conftest import READ_TOKEN, ROOT, WRITE, WRITE_TOKEN, Server

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
SCREENSHOTS = ROOT / "docs" / "screenshots"
XSS = "<script>window.pwned=1</script><img src=x onerror=window.pwned=1>"

if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
    pytest.skip(
        f"browser tests need Debian's Chromium: {CHROMIUM} and {CHROMEDRIVER} "
        "(apt-get install chromium chromium-driver)",
        allow_module_level=True,
    )

from selenium import webdriver  # noqa: E402 - only once Chromium is known to exist
from selenium.common.exceptions import StaleElementReferenceException  # noqa: E402
from selenium.webdriver import Chrome  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.remote.webelement import WebElement  # noqa: E402
from selenium.webdriver.support.wait import WebDriverWait  # noqa: E402


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _until(predicate: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out after {timeout}s waiting for {what}"
        time.sleep(0.05)


@pytest.fixture(scope="module")
def ui_dsn(pg_server: Server, template_db: str) -> Iterator[str]:
    name = f"pgq_ui_browser_{os.getpid()}"
    with pg_server.janitor(name, template=template_db):
        yield pg_server.dsn(name)


def _stop(*procs: subprocess.Popen[bytes]) -> None:
    for proc in procs:
        proc.send_signal(signal.SIGTERM)
    for proc in procs:
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def _spawn(args: list[str], dsn: str, log: Path, **env: str) -> subprocess.Popen[bytes]:
    full_env = {**os.environ, "DATABASE_URL": dsn, "PYTHONPATH": str(ROOT), **env}
    with open(log, "wb") as out:
        return subprocess.Popen([sys.executable, "-m", "pgq", *args], env=full_env, cwd=ROOT, stdout=out, stderr=out)


@pytest.fixture(scope="module")
def server(ui_dsn: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`pgq api` with a read and a write token, and one `pgq worker` for queue "ui"."""
    logs = tmp_path_factory.mktemp("ui")
    port = _free_port()
    tokens = {"PGQ_API_READ_TOKENS": READ_TOKEN, "PGQ_API_WRITE_TOKENS": WRITE_TOKEN}
    api = _spawn(["api", "--port", str(port)], ui_dsn, logs / "pgq.api.log", **tokens)
    worker = _spawn(
        ["worker", "--app", "tests.apps.ui:app", "--poll-interval", "1", "--concurrency", "4"],
        ui_dsn,
        logs / "worker.log",
    )
    url = f"http://127.0.0.1:{port}"

    def up() -> bool:
        assert api.poll() is None, (logs / "pgq.api.log").read_text()
        try:
            return httpx.get(f"{url}/health", timeout=2).status_code == 200
        except httpx.TransportError:
            return False

    _until(up, 30, "pgq api to answer")
    yield url
    _stop(api, worker)


@pytest.fixture(scope="module")
def driver() -> Iterator[Chrome]:
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,860"]:
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    os.environ.setdefault("SE_OFFLINE", "true")  # Selenium Manager must never download anything
    browser = webdriver.Chrome(options=options, service=Service(executable_path=str(CHROMEDRIVER)))
    browser.set_page_load_timeout(30)
    yield browser
    browser.quit()


def _sign_in(driver: Chrome, url: str, token: str) -> None:
    driver.delete_all_cookies()
    driver.get(f"{url}/ui/")
    assert "/ui/login" in driver.current_url
    driver.find_element(By.NAME, "token").send_keys(token)
    _click(driver, "form.login button")
    _until(lambda: driver.current_url == f"{url}/ui/", 10, "the overview after signing in")


def _enqueue(url: str, **job: Any) -> dict[str, Any]:
    """POST /jobs; queue "ui" (the worker's) unless told otherwise, one attempt for a failing task."""
    job.setdefault("queue", "ui")
    if job["task"] == "always_fails":
        job.setdefault("max_attempts", 1)
    response = httpx.post(f"{url}/jobs", json=job, headers=WRITE, timeout=10)
    assert response.status_code == 201, response.text
    return dict(response.json())


def _job(url: str, job_id: int) -> dict[str, Any]:
    return dict(httpx.get(f"{url}/jobs/{job_id}", headers=WRITE, timeout=10).json())


def _wait_state(url: str, job_id: int, *states: str) -> dict[str, Any]:
    return dict(_until(lambda: (j := _job(url, job_id))["state"] in states and j, 30, f"job {job_id} in {states}"))


def _on_element(driver: Chrome, css: str, act: Callable[[WebElement], Any]) -> Any:
    """Find and use an element: waits for it to appear (a click's page may still be
    loading), and finds it again if the page's live part was replaced meanwhile."""
    deadline = time.monotonic() + 10
    while True:
        try:
            found = driver.find_elements(By.CSS_SELECTOR, css)
            if found:
                return act(found[0])
        except StaleElementReferenceException:
            pass
        assert time.monotonic() < deadline, f"no {css} on {driver.current_url}"
        time.sleep(0.05)


def _text(driver: Chrome, css: str) -> str:
    return str(_on_element(driver, css, lambda e: e.text))


def _done_message(driver: Chrome, expected: str) -> str:
    """The confirmation a click's page shows, once it shows ``expected``: right after a
    click, the previous page (with the previous confirmation) may still be the one seen."""
    deadline = time.monotonic() + 10
    while expected not in (text := _text(driver, ".done")):
        assert time.monotonic() < deadline, f"{expected!r} never shown; last: {text!r}"
        time.sleep(0.05)
    return text


def _click(driver: Chrome, css: str) -> None:
    _on_element(driver, css, lambda e: e.click())


def _csp_violations(driver: Chrome) -> list[str]:
    return [e["message"] for e in driver.get_log("browser") if "Content Security Policy" in e["message"]]  # type: ignore[no-untyped-call]


def test_sign_in_with_a_write_token_shows_actions_and_a_read_token_shows_none(driver: Chrome, server: str) -> None:
    job = _enqueue(server, task="always_fails", queue="parked")  # no worker serves "parked"
    _sign_in(driver, server, WRITE_TOKEN)
    assert _text(driver, ".who") == "write"
    driver.get(f"{server}/ui/jobs/{job['id']}")
    assert driver.find_elements(By.CSS_SELECTOR, "[data-action=cancel]")
    _sign_in(driver, server, READ_TOKEN)
    assert _text(driver, ".who") == "read-only"
    for page in ["/ui/", f"/ui/jobs/{job['id']}", "/ui/jobs", "/ui/tasks", "/ui/workers", "/ui/schedules"]:
        driver.get(f"{server}{page}")
        assert driver.find_element(By.TAG_NAME, "h1").text
        assert driver.find_elements(By.CSS_SELECTOR, "[data-action]") == [], page
    # Forged from the page itself, with this browser's own CSRF token: the read token may not act.
    status = driver.execute_async_script(
        "var done = arguments[arguments.length - 1];"
        "var csrf = document.querySelector('input[name=csrf]').value;"
        "fetch(arguments[0], {method: 'POST', body: new URLSearchParams({csrf: csrf})})"
        ".then(function (r) { done(r.status); });",
        f"/ui/jobs/{job['id']}/cancel",
    )
    assert status == 403 and _job(server, job["id"])["state"] == "queued"
    assert _csp_violations(driver) == []


def test_a_cross_site_form_cannot_act_even_for_a_write_token(driver: Chrome, server: str) -> None:
    job = _enqueue(server, task="always_fails", queue="parked")
    _sign_in(driver, server, WRITE_TOKEN)
    # A page of another site that posts to the dashboard on load (classic CSRF).
    driver.get(
        "data:text/html,<form method=post action='"
        + f"{server}/ui/jobs/{job['id']}/cancel"
        + "'><input name=csrf value=guess></form><script>document.forms[0].submit()</script>"
    )
    _until(lambda: driver.current_url.startswith(server), 10, "the forged form to be posted")
    assert "Sign in" in driver.page_source or "Refused" in driver.page_source
    assert _job(server, job["id"])["state"] == "queued"


def test_the_overview_counts_equal_the_table(driver: Chrome, server: str, ui_dsn: str) -> None:
    for _ in range(3):
        _enqueue(server, task="echo", queue="counted")
    cancelled = _enqueue(server, task="echo", queue="counted")
    httpx.post(f"{server}/jobs/{cancelled['id']}/cancel", headers=WRITE, timeout=10)
    _enqueue(server, task="echo", queue="counted", delay=3600)
    _sign_in(driver, server, WRITE_TOKEN)
    with psycopg.connect(ui_dsn) as conn:
        table: dict[str, int] = dict(
            conn.execute("SELECT state, count(*) FROM pgq.jobs WHERE queue = 'counted' GROUP BY 1").fetchall()
        )
    row = driver.find_element(By.CSS_SELECTOR, "tr[data-queue=counted]")
    shown = {
        str(cell.get_attribute("data-state")): int(cell.text) for cell in row.find_elements(By.CSS_SELECTOR, "td.num")
    }
    assert shown == {s: table.get(s, 0) for s in shown}
    assert shown["queued"] == 3 and shown["cancelled"] == 1 and shown["scheduled"] == 1


def test_a_running_jobs_progress_bar_advances_and_it_turns_succeeded_without_reload(
    driver: Chrome, server: str
) -> None:
    _sign_in(driver, server, READ_TOKEN)
    job = _enqueue(server, task="stepper", args={"steps": 5, "pause": 0.5})
    driver.get(f"{server}/ui/jobs/{job['id']}")
    driver.execute_script("window.sameDocument = true;")
    seen: list[float] = []

    def finished() -> bool:
        # One script reads both: the live part is replaced while the page updates itself.
        bar, state = driver.execute_script(
            "var p = document.getElementById('job-progress');"
            "return [p ? p.value : null, document.getElementById('job-state').textContent];"
        )
        if bar is not None and (not seen or seen[-1] != bar):
            seen.append(float(bar))
        return bool(state == "succeeded")

    _until(finished, 30, "the job page to show succeeded")
    assert driver.execute_script("return window.sameDocument === true;"), "the page was reloaded"
    assert len(seen) >= 3 and seen == sorted(seen) and seen[-1] == 100.0, seen
    assert '"steps": 5' in _text(driver, "#job-result")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    driver.save_screenshot(str(SCREENSHOTS / "job.png"))


def test_retry_of_a_failed_job_and_bulk_retry_from_a_filtered_list(driver: Chrome, server: str) -> None:
    single = _enqueue(server, task="always_fails", args={"note": "single"})
    many = [_enqueue(server, task="always_fails", args={"note": f"bulk {i}"}, queue="ui") for i in range(3)]
    other = _enqueue(server, task="echo", args={"value": "stays"})
    for job in [single, *many]:
        _wait_state(server, job["id"], "failed")
    _sign_in(driver, server, WRITE_TOKEN)
    driver.get(f"{server}/ui/jobs/{single['id']}")
    assert "always fails: single" in _text(driver, ".error-entry")
    _click(driver, "[data-action=retry]")
    _done_message(driver, "Queued again.")
    assert _wait_state(server, single["id"], "failed")["attempt"] == 2
    driver.get(f"{server}/ui/jobs?queue=ui&task=always_fails&state=failed")
    _click(driver, "[data-action=bulk-retry]")
    count = int(_text(driver, "#confirm-count"))
    assert count >= 4  # these four, and any other test's failures of the same task
    _click(driver, "[data-action=confirm]")
    done = re.search(r"queued again: (\d+)\.", _done_message(driver, "queued again: "))
    assert done is not None and int(done.group(1)) >= 4
    for job in many:
        assert _wait_state(server, job["id"], "failed")["attempt"] == 2
    assert _job(server, other["id"])["attempt"] == 1


def test_job_data_with_html_renders_as_text_and_runs_nothing(driver: Chrome, server: str) -> None:
    failing = _enqueue(server, task="always_fails", args={"note": XSS}, idempotency_key=XSS)
    echoed = _enqueue(server, task="echo", args={"value": XSS})
    _wait_state(server, failing["id"], "failed")
    _wait_state(server, echoed["id"], "succeeded")
    _sign_in(driver, server, READ_TOKEN)
    for page in [f"/ui/jobs/{failing['id']}", f"/ui/jobs/{echoed['id']}", "/ui/tasks", "/ui/jobs?queue=ui"]:
        driver.get(f"{server}{page}")
        assert driver.execute_script("return window.pwned;") is None, page
        assert driver.find_elements(By.CSS_SELECTOR, "main img, main script") == [], page
    driver.get(f"{server}/ui/jobs/{failing['id']}")
    assert XSS in _text(driver, ".error-message") and XSS in _text(driver, "#job-args")
    driver.get(f"{server}/ui/jobs/{echoed['id']}")
    assert XSS in _text(driver, "#job-result")
    assert _csp_violations(driver) == []


def test_pause_stops_claims_on_two_real_workers_and_resume_restarts_them(
    driver: Chrome, server: str, ui_dsn: str, tmp_path: Path
) -> None:
    args = ["worker", "--app", "tests.apps.ui:app", "--queues", "pausable", "--poll-interval", "0.5"]
    workers = [_spawn(args, ui_dsn, tmp_path / f"worker{i}.log") for i in range(2)]
    try:
        first = _enqueue(server, task="echo", queue="pausable")
        _wait_state(server, first["id"], "succeeded")
        _sign_in(driver, server, WRITE_TOKEN)
        _click(driver, "tr[data-queue=pausable] [data-action=pause]")
        _done_message(driver, "Paused")
        assert _text(driver, "tr[data-queue=pausable] .badge") == "paused"
        waiting = [_enqueue(server, task="echo", queue="pausable") for _ in range(3)]
        time.sleep(2)  # four poll intervals of both workers
        assert all(w.poll() is None for w in workers)
        assert [_job(server, j["id"])["state"] for j in waiting] == ["queued"] * 3
        _click(driver, "tr[data-queue=pausable] [data-action=resume]")
        _done_message(driver, "Resumed.")
        for job in waiting:
            _wait_state(server, job["id"], "succeeded")
        with psycopg.connect(ui_dsn) as conn:
            ran_on = conn.execute("SELECT DISTINCT worker_id FROM pgq.jobs WHERE queue = 'pausable'").fetchall()
        assert 1 <= len(ran_on) <= 2
    finally:
        _stop(*workers)


def test_a_job_enqueued_through_the_api_appears_without_reload(driver: Chrome, server: str) -> None:
    with httpx.stream("GET", f"{server}/events", headers=WRITE, timeout=10, params={"queue": "none"}) as probe:
        if probe.status_code == 404:
            pytest.skip("GET /events (queue-wide live events) is not in this build yet")
    _sign_in(driver, server, READ_TOKEN)
    driver.get(f"{server}/ui/jobs?queue=parked")
    driver.execute_script("window.sameDocument = true;")
    live = driver.find_element(By.ID, "live")
    _until(lambda: live.get_attribute("data-live-state") == "open", 10, "the event stream to open")
    job = _enqueue(server, task="echo", queue="parked")

    def shown() -> list[WebElement]:
        return list(driver.find_elements(By.CSS_SELECTOR, f"tr[data-job='{job['id']}']"))

    _until(shown, 10, "the new job to appear in the list")
    assert driver.execute_script("return window.sameDocument === true;"), "the page was reloaded"


def test_a_workflow_is_cancelled_from_its_page_after_the_confirmation(driver: Chrome, server: str) -> None:
    steps = [
        {"name": "first", "task": "echo", "queue": "parked"},
        {"name": "second", "task": "echo", "after": ["first"]},
    ]
    response = httpx.post(f"{server}/workflows", json={"name": "browser", "steps": steps}, headers=WRITE, timeout=10)
    assert response.status_code == 201, response.text
    workflow = response.json()
    _sign_in(driver, server, WRITE_TOKEN)
    driver.get(f"{server}/ui/workflows")
    _click(driver, f"[data-workflow='{workflow['id']}'] a")
    assert _text(driver, "#workflow-state") == "running"
    second = workflow["steps"][1]["id"]
    assert _text(driver, f"tr[data-job='{second}'] .parents") == "first"
    _click(driver, "[data-action=workflow-cancel]")
    assert _text(driver, "#confirm-count") == "2"
    _click(driver, "[data-action=confirm]")
    _done_message(driver, "Steps not started are cancelled")
    assert _text(driver, "#workflow-state") == "cancelled"
    assert {_job(server, s["id"])["state"] for s in workflow["steps"]} == {"cancelled"}
    assert not _csp_violations(driver)


def test_the_overview_charts_the_last_hour_and_counts_its_failures(driver: Chrome, server: str) -> None:
    """Runs last in this module, so the screenshot shows every queue the tests used."""
    _sign_in(driver, server, WRITE_TOKEN)
    WebDriverWait(driver, 5).until(lambda d: d.find_elements(By.CSS_SELECTOR, "tr[data-queue=ui]"))
    assert driver.find_elements(By.CSS_SELECTOR, "tr[data-queue=ui] svg.spark rect")
    assert int(_text(driver, "#failed-hour")) >= 1 and int(_text(driver, "#workers-alive")) >= 1
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    driver.save_screenshot(str(SCREENSHOTS / "overview.png"))
