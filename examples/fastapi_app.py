"""A FastAPI service that enqueues with its own data and waits for results.

    export DATABASE_URL=postgresql://postgres@127.0.0.1/postgres   # pgq migrate has run there
    pgq worker --app examples.fastapi_app:queue &                   # runs send_welcome
    uvicorn examples.fastapi_app:api --port 8000

- ``POST /signups {"email": ...}`` inserts the signup and enqueues its welcome email in
  one transaction: both rows or neither (a duplicate email is a 409 and enqueues nothing).
- ``GET /signups/{id}/welcome?timeout=5`` waits (``queue.wait``, woken by LISTEN) until
  the welcome job is final and returns it; 504 if it is not final within the timeout.
- pgq's HTTP API and dashboard are mounted under ``/jobs``: ``GET /jobs/jobs/{id}``,
  ``/jobs/ui/``. Its tokens come from PGQ_API_READ_TOKENS / PGQ_API_WRITE_TOKENS.

The lifespan opens pgq's pool, the service's own pool and the mounted API's listener,
and closes them at shutdown.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Annotated, Any

import psycopg
from fastapi import FastAPI, HTTPException, Query
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool
from pydantic import BaseModel, Field

import pgq
from pgq.api import create_app

queue = pgq.App()  # DATABASE_URL; the worker runs this module's tasks with --app examples.fastapi_app:queue


@queue.task(queue="emails", max_attempts=3)
async def send_welcome(signup_id: int, email: str) -> dict[str, Any]:
    # A real service would call its mail provider here.
    return {"signup_id": signup_id, "sent_to": email}


class Signup(BaseModel):
    email: str = Field(min_length=3, max_length=320, pattern=r"^[^@\s]+@[^@\s]+$")


WaitSeconds = Annotated[float, Query(alias="timeout", gt=0, le=60, description="seconds to wait at most")]

SCHEMA = """
CREATE TABLE IF NOT EXISTS signups (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    email text NOT NULL UNIQUE,
    welcome_job_id bigint,
    created_at timestamptz NOT NULL DEFAULT now()
)
"""


def create_api(jobs: pgq.App = queue) -> FastAPI:
    """The service around ``jobs``; ``api`` below is the one uvicorn serves."""
    jobs_api = create_app(jobs)  # pgq's HTTP API and dashboard
    pools: list[AsyncConnectionPool[psycopg.AsyncConnection[Any]]] = []  # the service's own pool, once started

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with AsyncConnectionPool(jobs.dsn, min_size=1, max_size=5, open=False) as pool:
            async with pool.connection() as conn:
                await conn.execute(SCHEMA)
            pools.append(pool)
            # A host does not run a mounted app's lifespan: run pgq's (its job listener; at
            # shutdown it closes the pgq.App, app.wait()'s listener included).
            async with jobs, jobs_api.router.lifespan_context(jobs_api):
                yield
            pools.clear()

    def connection() -> contextlib.AbstractAsyncContextManager[psycopg.AsyncConnection[Any]]:
        return pools[0].connection()

    api = FastAPI(title="signups", lifespan=lifespan)
    api.mount("/jobs", jobs_api)

    @api.post("/signups", status_code=201)
    async def create_signup(signup: Signup) -> dict[str, int]:
        async with connection() as conn, conn.transaction():
            try:
                cur = await conn.execute("INSERT INTO signups (email) VALUES (%s) RETURNING id", (signup.email,))
            except psycopg.errors.UniqueViolation:
                raise HTTPException(409, f"{signup.email} has already signed up") from None
            row = await cur.fetchone()
            assert row is not None
            signup_id = int(row[0])
            # conn=: the job is written in this transaction, and commits (and wakes a worker) with the signup.
            job = await jobs.enqueue("send_welcome", {"signup_id": signup_id, "email": signup.email}, conn=conn)
            await conn.execute("UPDATE signups SET welcome_job_id = %s WHERE id = %s", (job.id, signup_id))
        return {"signup_id": signup_id, "welcome_job_id": job.id}

    @api.get("/signups/{signup_id}/welcome")
    async def welcome(signup_id: int, seconds: WaitSeconds = 10) -> dict[str, Any]:
        async with connection() as conn:
            cur = await conn.cursor(row_factory=dict_row).execute(
                "SELECT welcome_job_id FROM signups WHERE id = %s", (signup_id,)
            )
            row = await cur.fetchone()
        if row is None:
            raise HTTPException(404, f"no signup {signup_id}")
        try:
            job = await jobs.wait(row["welcome_job_id"], timeout=seconds)
        except pgq.WaitTimeoutError as exc:
            raise HTTPException(504, str(exc)) from None
        return {"state": job.state.value, "result": job.result, "errors": [e["message"] for e in job.errors]}

    return api


api = create_api()
