"""When the database cannot be reached: connection errors are 503s, an App stops queueing
for a pool that cannot connect, and the API's waits end once its LISTEN stays down.
(The same with a real network partition, half-open links and all, is in tests/netns.)"""

from __future__ import annotations

import asyncio
import time

import httpx
import psycopg
import pytest
from psycopg.conninfo import make_conninfo
from psycopg_pool import PoolTimeout
from starlette.applications import Starlette

from pgq import _db
from pgq.api.events import LOST_GRACE
from tests.live_clients import job_events, until_subscribed

pytestmark = pytest.mark.anyio


def _terminate_others(dsn: str, *, listening_only: bool = False) -> int:
    with psycopg.connect(dsn, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid() "
            "AND (NOT %s OR query LIKE '%%LISTEN pgq_job_events%%')",
            (listening_only,),
        ).fetchall()
    return len(rows)


def test_network_timeouts_apply_unless_the_dsn_sets_its_own() -> None:
    assert _db.network_options("host=db dbname=app") == _db.NETWORK_TIMEOUTS
    own = _db.network_options("postgresql://app@db/app?keepalives_idle=30&connect_timeout=3")
    assert "keepalives_idle" not in own and "connect_timeout" not in own
    assert own["tcp_user_timeout"] == 10_000
    assert _db.pool_kwargs(True, dsn="host=db")["keepalives"] == 1


def test_reach_shortens_the_pool_wait_after_a_lost_connection_until_a_success() -> None:
    reach = _db.Reach()
    assert reach.timeout == _db.POOL_TIMEOUT
    with pytest.raises(PoolTimeout), reach:
        raise PoolTimeout("busy")  # a busy pool says nothing about the network
    assert not reach.down
    with pytest.raises(psycopg.errors.QueryCanceled), reach:
        raise psycopg.errors.QueryCanceled("statement timeout")  # the server answered
    assert not reach.down
    with pytest.raises(psycopg.OperationalError), reach:
        raise psycopg.OperationalError("consuming input failed: Connection timed out")
    assert reach.down and reach.timeout == _db.DOWN_POOL_TIMEOUT
    with reach:
        pass
    assert not reach.down


async def test_a_connection_lost_under_a_request_is_503_and_the_next_request_reconnects(
    api: httpx.AsyncClient, dsn: str
) -> None:
    job = (await api.post("/jobs", json={"task": "t"})).json()
    assert _terminate_others(dsn) >= 1
    response = await api.get(f"/jobs/{job['id']}")
    assert response.status_code == 503, response.text
    assert response.json()["error"]["code"] == "unavailable"
    assert response.json()["error"]["message"].startswith("the database is unavailable: ")
    for _ in range(5):  # the pool drops each dead connection and opens a fresh one
        response = await api.get(f"/jobs/{job['id']}")
        if response.status_code == 200:
            break
    assert response.status_code == 200


async def test_listen_down_past_the_grace_ends_a_wait_with_503_and_refuses_new_ones(
    api: httpx.AsyncClient, api_app: Starlette, dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    events = job_events(api_app)
    job = (await api.post("/jobs", json={"task": "t"})).json()
    wait = asyncio.create_task(api.get(f"/jobs/{job['id']}/wait", params={"timeout": 60}))
    await until_subscribed(api_app, 1)
    unreachable = make_conninfo(dsn, host="127.0.0.1", port=1, connect_timeout=1)
    monkeypatch.setattr(events._client, "_dsn", lambda: unreachable)  # every reconnect fails
    began = time.monotonic()
    assert _terminate_others(dsn, listening_only=True) == 1
    response = await asyncio.wait_for(wait, LOST_GRACE + 10)
    assert response.status_code == 503 and response.json()["error"]["code"] == "unavailable"
    assert time.monotonic() - began >= LOST_GRACE
    began = time.monotonic()
    refused = await api.get(f"/jobs/{job['id']}/wait", params={"timeout": 30})
    assert refused.status_code == 503 and time.monotonic() - began < 1.0  # at once, not after a wait
    monkeypatch.setattr(events._client, "_dsn", lambda: dsn)
    for _ in range(300):  # back by itself (reconnect backoff)
        if not events.lost.is_set():
            break
        await asyncio.sleep(0.1)
    assert not events.lost.is_set()
    response = await api.get(f"/jobs/{job['id']}/wait", params={"timeout": 0})
    assert response.status_code == 200
