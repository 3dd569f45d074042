"""The API's reads from a real streaming replica: served there while it keeps up, never
stale for a client's own write, and left (for the primary, or a clear 503) when it
lags or goes away, until it is back."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

import pgq
from pgq.api import create_app
from pgq.api.config import ApiSettings
from pgq.api.positions import COOKIE, HEADER, SOURCE_HEADER, parse_lsn
from pgq.errors import ConfigError
from tests.conftest import READ, WRITE, api_settings
from tests.replica.conftest import Replica

pytestmark = pytest.mark.anyio


@contextlib.asynccontextmanager
async def serving(primary_dsn: str, replica_dsn: str, **settings: Any) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(pgq.App(primary_dsn), settings=api_settings(read_url=replica_dsn, **settings))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://pgq", headers=WRITE) as client:
            yield client


async def until(condition: Any, timeout: float = 20.0) -> float:
    """Poll an async condition every 50 ms; the seconds it took to hold."""
    started = time.monotonic()
    while not await condition():
        if time.monotonic() - started > timeout:
            raise TimeoutError("the condition did not hold in time")
        await asyncio.sleep(0.05)
    return time.monotonic() - started


async def test_reads_come_from_the_replica_and_writes_carry_their_wal_position(
    replicated_dsns: tuple[str, str],
) -> None:
    async with serving(*replicated_dsns) as api:
        created = await api.post("/jobs", json={"task": "t", "args": {"n": 1}})
        assert created.status_code == 201
        assert SOURCE_HEADER not in created.headers  # writes go to the primary, unlabelled
        position = created.headers[HEADER]
        assert parse_lsn(position) == int(created.cookies[COOKIE])
        job_id = created.json()["id"]
        read = await api.get(f"/jobs/{job_id}", headers={**READ, HEADER: position})
        assert read.status_code == 200
        assert read.json()["id"] == job_id

        async def listed_on_replica() -> bool:
            api.cookies.clear()
            listed = await api.get("/jobs", headers=READ)
            return listed.headers[SOURCE_HEADER] == "replica" and [j["id"] for j in listed.json()["jobs"]] == [job_id]

        await until(listed_on_replica)
        metrics = await api.get("/metrics", headers=READ)
        assert metrics.headers[SOURCE_HEADER] == "replica"
        assert 'pgq_queue_jobs{queue="default",state="queued"} 1.0' in metrics.text


async def test_a_client_reads_its_own_write_while_the_replica_replays_nothing(
    replicated_dsns: tuple[str, str], replica: Replica
) -> None:
    async with serving(*replicated_dsns, read_max_lag=600.0) as api:
        await api.get("/jobs", headers=READ)  # the replica is known to be fine
        replica.pause_replay()
        try:
            created = await api.post("/jobs", json={"task": "t"})
            job_id = created.json()["id"]
            # With the position (the cookie this client got back), its write is read, from the primary.
            own = await api.get(f"/jobs/{job_id}", headers=READ)
            assert (own.status_code, own.headers[SOURCE_HEADER]) == (200, "primary")
            by_header = await api.get(f"/jobs/{job_id}", headers={**READ, HEADER: created.headers[HEADER]})
            assert (by_header.status_code, by_header.headers[SOURCE_HEADER]) == (200, "primary")
            # Another client, without it, reads the replica as of its last replay: documented staleness.
            api.cookies.clear()
            other = await api.get(f"/jobs/{job_id}", headers=READ)
            assert (other.status_code, other.headers[SOURCE_HEADER]) == (404, "replica")
        finally:
            replica.resume_replay()

        async def replayed() -> bool:
            api.cookies.clear()
            return (await api.get(f"/jobs/{job_id}", headers=READ)).status_code == 200

        await until(replayed)


async def test_a_lagging_replica_is_left_for_the_primary_until_it_catches_up(
    replicated_dsns: tuple[str, str], replica: Replica
) -> None:
    async with serving(*replicated_dsns, read_max_lag=0.5) as api:

        async def source() -> str:
            api.cookies.clear()
            answer = await api.get("/jobs?limit=1", headers=READ)
            assert answer.status_code == 200
            return answer.headers[SOURCE_HEADER]

        assert await source() == "replica"
        replica.pause_replay()
        try:

            async def left() -> bool:
                await api.post("/jobs", json={"task": "t"})  # writes go on while replay stands still
                return await source() == "primary"

            fell_back = await until(left)
            assert 0.5 <= fell_back < 5.0
        finally:
            replica.resume_replay()

        async def back() -> bool:
            return await source() == "replica"

        returned = await until(back)
        assert returned < 5.0
        print(f"\nreplica replay paused: reads left it after {fell_back:.2f} s; back {returned:.2f} s after resuming")


async def test_a_replica_that_goes_away_sends_reads_to_the_primary_or_fails_clearly(
    replicated_dsns: tuple[str, str], replica: Replica
) -> None:
    async with (
        serving(*replicated_dsns) as api,
        serving(*replicated_dsns, read_fallback="fail") as strict,
    ):
        assert (await api.get("/jobs", headers=READ)).headers[SOURCE_HEADER] == "replica"
        assert (await strict.get("/jobs", headers=READ)).headers[SOURCE_HEADER] == "replica"
        replica.stop()
        try:
            await asyncio.sleep(0.3)  # past the last check
            fallen = await api.get("/jobs", headers=READ)
            assert (fallen.status_code, fallen.headers[SOURCE_HEADER]) == (200, "primary")
            refused = await strict.get("/jobs", headers=READ)
            assert refused.status_code == 503
            assert refused.json()["error"]["code"] == "replica_unavailable"
            assert refused.headers["Retry-After"] == "1"
            # Writes never needed the replica.
            assert (await strict.post("/jobs", json={"task": "t"})).status_code == 201
        finally:
            replica.start()

        async def back() -> bool:
            strict.cookies.clear()
            answer = await strict.get("/jobs", headers=READ)
            return answer.status_code == 200 and answer.headers[SOURCE_HEADER] == "replica"

        returned = await until(back)
        assert returned < 10.0
        print(f"\nreplica stopped: reads came back {returned:.2f} s after it was restarted")


async def test_a_malformed_wal_position_header_is_refused_with_a_400(replicated_dsns: tuple[str, str]) -> None:
    async with serving(*replicated_dsns) as api:
        answer = await api.get("/jobs/1", headers={**READ, HEADER: "not-a-position"})
        assert answer.status_code == 400
        assert answer.json()["error"]["code"] == "invalid_header"
        assert answer.json()["error"]["details"] == {"header": HEADER}


@pytest.mark.parametrize(
    ("environ", "named"),
    [
        ({"PGQ_READ_MAX_LAG": "soon"}, "PGQ_READ_MAX_LAG"),
        ({"PGQ_READ_MAX_LAG": "0"}, "PGQ_READ_MAX_LAG"),
        ({"PGQ_READ_FALLBACK": "replica"}, "PGQ_READ_FALLBACK"),
        ({"PGQ_READ_DATABASE_URL": "host='unterminated"}, "PGQ_READ_DATABASE_URL"),
    ],
)
def test_bad_read_replica_settings_are_refused_naming_the_variable(environ: dict[str, str], named: str) -> None:
    with pytest.raises(ConfigError, match=named):
        ApiSettings.from_env(environ)
