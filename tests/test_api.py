"""The HTTP API skeleton: the health check reads the real database."""

from __future__ import annotations

import httpx
import pytest

import pgq
from api import create_app
from pgq._db import SCHEMA_HEAD

pytestmark = pytest.mark.anyio


async def _get_health(dsn: str) -> httpx.Response:
    transport = httpx.ASGITransport(app=create_app(pgq.App(dsn)))
    async with httpx.AsyncClient(transport=transport, base_url="http://pgq") as client:
        return await client.get("/health")


async def test_health_is_ok_on_a_migrated_database(dsn: str) -> None:
    response = await _get_health(dsn)
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "schema_revision": SCHEMA_HEAD}


async def test_health_is_503_before_migration(empty_dsn: str) -> None:
    response = await _get_health(empty_dsn)
    assert response.status_code == 503
    assert "pgq migrate" in response.json()["schema"]


async def test_health_is_503_when_the_database_is_unreachable() -> None:
    response = await _get_health("postgresql://nobody@127.0.0.1:1/nothing")
    assert response.status_code == 503
    assert "cannot connect" in response.json()["database"]
