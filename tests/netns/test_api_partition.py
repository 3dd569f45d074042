"""The HTTP API (`pgq api`, uvicorn) in a namespace of its own, cut off from the database
by nftables (only its database traffic is dropped, so clients still reach it): requests
answer 503 with a JSON body within bounded time, a long-poll and event streams end
cleanly, and once the network is back the API serves again by itself, without a restart.
Times are measured and printed (pytest -s)."""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from pgq._db import DOWN_POOL_TIMEOUT
from tests.netns.hosts import Cluster, Host, times_until, wait_for

pytestmark = pytest.mark.slow

TOKEN = "netns-writer"
HEADERS = {"Authorization": f"Bearer {TOKEN}"}
BOUND = 12.0  # seconds: the documented worst case, a request on a connection gone silent (tcp_user_timeout)


class Stream:
    """Reads one Server-Sent Events response in a thread: the events, and when it ended."""

    def __init__(self, client: httpx.Client, url: str) -> None:
        self.events: list[str] = []
        self.ended: float | None = None
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._read, args=(client, url), daemon=True)
        self._thread.start()

    def _read(self, client: httpx.Client, url: str) -> None:
        try:
            with client.stream("GET", url, headers=HEADERS, timeout=httpx.Timeout(5, read=90)) as response:
                for line in response.iter_lines():
                    if line.startswith("event: "):
                        self.events.append(line.removeprefix("event: "))
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            self.error = exc
        self.ended = time.monotonic()


def test_an_api_cut_off_from_the_database_fails_fast_and_recovers(
    net_dsn: str, cluster: Cluster, hosts: Callable[[int], list[Host]], tmp_path: Path
) -> None:
    [host] = hosts(1)
    host.popen(
        [sys.executable, "-m", "pgq", "api", "--host", host.address, "--port", "8000"],
        env={"DATABASE_URL": net_dsn, "PGQ_API_WRITE_TOKENS": TOKEN},
        log=tmp_path / "api.log",
    )
    base = f"http://{host.address}:8000"
    client = httpx.Client(base_url=base, headers=HEADERS, timeout=30)

    def status(path: str) -> int:
        try:
            return client.get(path).status_code
        except httpx.HTTPError:
            return 0

    wait_for(lambda: status("/health") == 200, 30, "the API to start")
    job = client.post("/jobs", json={"task": "hold", "args": {"seconds": 1}}).json()  # no worker: stays queued
    assert client.get(f"/jobs/{job['id']}").status_code == 200
    waited: dict[str, Any] = {}

    def long_poll() -> None:
        response = client.get(f"/jobs/{job['id']}/wait", params={"timeout": 60}, timeout=90)
        waited.update(status=response.status_code, body=response.json(), at=time.monotonic())

    poller = threading.Thread(target=long_poll, daemon=True)
    poller.start()
    job_stream = Stream(client, f"/jobs/{job['id']}/events")
    all_stream = Stream(client, "/events")
    wait_for(lambda: job_stream.events == ["state"], 10, "the job's event stream to start")
    time.sleep(0.5)  # the long-poll and /events are subscribed by now

    host.partition(port=cluster.port)
    t0 = time.monotonic()
    answers: list[tuple[int, float, dict[str, Any]]] = []
    late: list[float] = []
    while time.monotonic() - t0 < 24 or "at" not in waited or job_stream.ended is None or all_stream.ended is None:
        assert time.monotonic() - t0 < 45, f"waits/streams did not end: {waited}, {job_stream.events}"
        began = time.monotonic()
        response = client.get(f"/jobs/{job['id']}")
        answers.append((response.status_code, time.monotonic() - began, response.json()))
        if began - t0 > 15:  # by now keepalives closed every idle pooled connection: the pool is known down
            late.append(answers[-1][1])
            assert late[-1] < 2 * DOWN_POOL_TIMEOUT, "a request waited longer than DOWN_POOL_TIMEOUT"
    assert answers and all(code == 503 for code, _, _ in answers), [a[:2] for a in answers]
    assert all(body["error"]["code"] == "unavailable" for _, _, body in answers)
    slowest = max(seconds for _, seconds, _ in answers)
    assert len(late) >= 3, "no requests were made once the pool was known to be down"
    assert slowest < BOUND, [round(s, 1) for _, s, _ in answers]
    assert waited["status"] == 503 and waited["body"]["error"]["code"] == "unavailable"
    assert job_stream.events == ["state", "unavailable"] and job_stream.error is None
    assert all_stream.events == ["unavailable"] and all_stream.error is None
    wait_ended = waited["at"] - t0
    streams_ended = max(job_stream.ended, all_stream.ended) - t0

    host.heal()
    back = times_until(
        {
            "reads": lambda: status(f"/jobs/{job['id']}") == 200,
            "health": lambda: status("/health") == 200,
            "wait": lambda: status(f"/jobs/{job['id']}/wait?timeout=0") == 200,
        },
        40,
    )
    again = Stream(client, f"/jobs/{job['id']}/events")
    wait_for(lambda: again.events == ["state"], 10, "a new event stream after healing")
    print(
        f"\nAPI cut off from the database: {len(answers)} requests all 503 (JSON), slowest {slowest:.1f} s, "
        f"once the pool was known down (after 15 s) at most {max(late):.2f} s; long-poll ended (503) after "
        f"{wait_ended:.1f} s, event streams ended ('unavailable') after {streams_ended:.1f} s; after healing: "
        f"reads {back['reads']:.1f} s, /health {back['health']:.1f} s, wait {back['wait']:.1f} s (no restart)"
    )
