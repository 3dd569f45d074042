"""Bearer tokens: no/wrong/read/write token against read and write endpoints."""

from __future__ import annotations

import httpx
import pytest
from starlette.applications import Starlette

from tests.conftest import READ_TOKEN, WRITE_TOKEN

pytestmark = pytest.mark.anyio

_TOKENS = {"none": None, "wrong": "not-a-token", "read": READ_TOKEN, "write": WRITE_TOKEN}
_ENDPOINTS = {
    "read GET /jobs": ("GET", "/jobs", None),
    "read GET /queues": ("GET", "/queues", None),
    "read GET /metrics": ("GET", "/metrics", None),
    "write POST /jobs": ("POST", "/jobs", {"task": "x"}),
    "write POST /jobs/1/cancel": ("POST", "/jobs/1/cancel", None),
}
_EXPECTED = {
    ("none", "read"): 401,
    ("wrong", "read"): 401,
    ("read", "read"): 200,
    ("write", "read"): 200,
    ("none", "write"): 401,
    ("wrong", "write"): 401,
    ("read", "write"): 403,
    ("write", "write"): None,  # allowed: 201 for a new job, 404 for a missing one
}


@pytest.mark.parametrize("token", _TOKENS)
@pytest.mark.parametrize("endpoint", _ENDPOINTS)
async def test_auth_matrix(api_app: Starlette, token: str, endpoint: str) -> None:
    method, path, body = _ENDPOINTS[endpoint]
    secret = _TOKENS[token]
    headers = {"Authorization": f"Bearer {secret}"} if secret else {}
    transport = httpx.ASGITransport(app=api_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://pgq") as client:
        response = await client.request(method, path, json=body, headers=headers)
    expected = _EXPECTED[(token, endpoint.split()[0])]
    if expected is None:
        assert response.status_code in {201, 404}, response.text
        assert response.status_code != 404 or response.json()["error"]["code"] == "not_found"
    else:
        assert response.status_code == expected, response.text
    if expected == 401:
        assert response.headers["www-authenticate"].startswith("Bearer")
        assert response.json()["error"]["code"] == "unauthorized"
    if expected == 403:
        assert response.json()["error"]["code"] == "forbidden"


@pytest.mark.parametrize("header", ["Basic cmVhZA==", "Bearer", "bearer  ", f"Token {WRITE_TOKEN}"])
async def test_malformed_authorization_headers_are_401(api_app: Starlette, header: str) -> None:
    transport = httpx.ASGITransport(app=api_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://pgq") as client:
        assert (await client.get("/jobs", headers={"Authorization": header})).status_code == 401


async def test_health_and_openapi_need_no_token(api_app: Starlette) -> None:
    transport = httpx.ASGITransport(app=api_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://pgq") as client:
        assert (await client.get("/health")).status_code == 200
        assert (await client.get("/openapi.json")).status_code == 200
