"""pgq.integrations.sqlalchemy: a job enqueued in a real SQLAlchemy session commits or
rolls back with it — sync psycopg, async psycopg and async asyncpg engines."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator, Iterator

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict
from sqlalchemy import URL, Engine, String, create_engine
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, create_async_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

import pgq
from pgq.integrations.sqlalchemy import enqueue, enqueue_async, enqueue_many, enqueue_many_async
from tests.helpers import count_rows, running_worker, wait_final

pytestmark = pytest.mark.anyio


class Base(DeclarativeBase):
    pass


class Order(Base):
    __tablename__ = "orders"
    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(200))


def _url(dsn: str, driver: str) -> URL:
    info = conninfo_to_dict(dsn)
    return URL.create(
        f"postgresql+{driver}",
        username=str(info["user"]),
        host=str(info["host"]),
        port=int(str(info["port"])),
        database=str(info["dbname"]),
    )


def _orders(dsn: str) -> int:
    with psycopg.connect(dsn) as conn:
        row = conn.execute("SELECT count(*) FROM orders").fetchone()
    assert row is not None
    return int(row[0])


@pytest.fixture
def engine(dsn: str) -> Iterator[Engine]:
    engine = create_engine(_url(dsn, "psycopg"))
    Base.metadata.create_all(engine)
    yield engine
    engine.dispose()


@pytest.fixture(params=["psycopg", "asyncpg"])
async def async_engine(request: pytest.FixtureRequest, dsn: str) -> AsyncIterator[AsyncEngine]:
    engine = create_async_engine(_url(dsn, request.param))
    async with engine.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)
    yield engine
    await engine.dispose()


@pytest.fixture
def app(dsn: str) -> Iterator[pgq.App]:
    app = pgq.App(dsn)
    yield app
    app.close_sync()


# -- sync Session, psycopg -------------------------------------------------------------------


def test_session_commit_keeps_the_row_and_the_job(engine: Engine, app: pgq.App, dsn: str) -> None:
    with Session(engine) as session, session.begin():
        session.add(Order(id=1, email="a@b.c"))
        session.flush()
        job = enqueue(session, app, "send_receipt", {"order_id": 1}, queue="emails", priority=-1)
        assert count_rows(dsn) == 0  # not visible to others before the session commits
    assert _orders(dsn) == 1
    stored = app.get_job_sync(job.id)
    assert stored.to_dict() == job.to_dict()
    assert (stored.task, stored.queue, stored.priority, stored.args) == ("send_receipt", "emails", -1, {"order_id": 1})


def test_session_rollback_leaves_neither(engine: Engine, app: pgq.App, dsn: str) -> None:
    with Session(engine) as session:
        session.add(Order(id=1, email="a@b.c"))
        enqueue(session, app, "send_receipt", {"order_id": 1})
        session.rollback()
    with pytest.raises(RuntimeError), Session(engine) as session, session.begin():
        enqueue(session, app, "send_receipt", {"order_id": 2})
        raise RuntimeError("the handler failed")
    assert _orders(dsn) == 0 and count_rows(dsn) == 0


def test_a_core_connection_and_a_refusal_before_any_write(engine: Engine, app: pgq.App, dsn: str) -> None:
    with engine.begin() as conn:
        enqueue(conn, app, "t", delay=dt.timedelta(minutes=5))
        with pytest.raises(ValueError, match="priority must be an integer between -32768 and 32767"):
            enqueue(conn, app, "t", priority=40000)
        enqueue(conn, app, "t")  # the transaction is still usable: nothing was sent
    assert count_rows(dsn, "state = 'scheduled'") == 1 and count_rows(dsn) == 2
    with pytest.raises(TypeError, match="use enqueue_async"):
        enqueue(AsyncSession(), app, "t")  # type: ignore[arg-type]


def test_enqueue_many_commits_and_rolls_back_with_the_session(engine: Engine, app: pgq.App, dsn: str) -> None:
    with Session(engine) as session, session.begin():
        jobs = enqueue_many(session, app, [{"task": "t", "args": {"n": n}} for n in range(3)])
        session.add(Order(id=1, email="a@b.c"))
        assert count_rows(dsn) == 0
    assert _orders(dsn) == 1 and count_rows(dsn) == 3
    assert [j.args["n"] for j in jobs] == [0, 1, 2] and jobs == [app.get_job_sync(j.id) for j in jobs]
    with Session(engine) as session:
        enqueue_many(session, app, [pgq.JobSpec("t")] * 5)
        session.rollback()
    assert count_rows(dsn) == 3
    with pytest.raises(TypeError, match="use enqueue_many_async"):
        enqueue_many(AsyncSession(), app, [])  # type: ignore[arg-type]


# -- AsyncSession, psycopg and asyncpg ---------------------------------------------------------


async def test_async_session_commit_keeps_the_row_and_the_job(
    async_engine: AsyncEngine, app: pgq.App, dsn: str
) -> None:
    run_at = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)
    async with AsyncSession(async_engine) as session, session.begin():
        session.add(Order(id=1, email="a@b.c"))
        await session.flush()
        job = await enqueue_async(
            session, app, "send_receipt", {"order_id": 1}, run_at=run_at, max_attempts=2, idempotency_key="r:1"
        )
        again = await enqueue_async(session, app, "send_receipt", {"order_id": 1}, idempotency_key="r:1")
        assert again.id == job.id
        assert count_rows(dsn) == 0
    assert _orders(dsn) == 1
    stored = await app.get_job(job.id)
    assert stored.to_dict() == job.to_dict()
    assert (stored.state, stored.run_at, stored.max_attempts) == (pgq.JobState.SCHEDULED, run_at, 2)
    await app.close()


async def test_async_enqueue_many_in_input_order_and_all_checked_before_any_write(
    async_engine: AsyncEngine, app: pgq.App, dsn: str
) -> None:
    specs = [
        pgq.JobSpec("t", {"n": 0}, idempotency_key="k"),
        pgq.JobSpec("t", {"n": 1}, delay=60),
        pgq.JobSpec("t", {"n": 0}, idempotency_key="k"),  # the same job again
        pgq.JobSpec("t", {"n": 3}, queue="other"),
    ]
    async with AsyncSession(async_engine) as session, session.begin():
        jobs = await enqueue_many_async(session, app, specs)
        with pytest.raises(ValueError, match="priority"):
            await enqueue_many_async(session, app, [pgq.JobSpec("t"), pgq.JobSpec("t", priority=99999)])
    assert [j.args["n"] for j in jobs] == [0, 1, 0, 3]
    assert jobs[0].id == jobs[2].id and jobs[1].state is pgq.JobState.SCHEDULED and jobs[3].queue == "other"
    assert count_rows(dsn) == 3  # the refused batch wrote nothing, not even its valid first job
    await app.close()


async def test_async_session_rollback_leaves_neither(async_engine: AsyncEngine, app: pgq.App, dsn: str) -> None:
    async with AsyncSession(async_engine) as session:
        session.add(Order(id=1, email="a@b.c"))
        await enqueue_async(session, app, "send_receipt", {"order_id": 1})
        await session.rollback()
    with pytest.raises(RuntimeError):
        async with AsyncSession(async_engine) as session, session.begin():
            await enqueue_async(session, app, "send_receipt", {"order_id": 2})
            raise RuntimeError("the handler failed")
    assert _orders(dsn) == 0 and count_rows(dsn) == 0


async def test_async_refusals_and_task_defaults_are_the_apps(async_engine: AsyncEngine, dsn: str) -> None:
    app = pgq.App(dsn, json_default=lambda v: v.isoformat())

    @app.task(queue="emails", priority=3, max_attempts=7)
    def send_receipt(order_id: int, when: str) -> int:
        return order_id

    async with AsyncSession(async_engine) as session, session.begin():
        job = await enqueue_async(session, app, "send_receipt", {"order_id": 1, "when": dt.date(2030, 1, 1)})
        with pytest.raises(pgq.UnknownTaskError):
            await enqueue_async(session, app, "send_reciept", {"order_id": 1})
        with pytest.raises(ValueError, match="give either run_at or delay"):
            await enqueue_async(session, app, "send_receipt", {"order_id": 1}, run_at=dt.datetime.now(dt.UTC), delay=1)
    assert (job.queue, job.priority, job.max_attempts, job.args) == (
        "emails",
        3,
        7,
        {"order_id": 1, "when": "2030-01-01"},
    )
    assert count_rows(dsn) == 1
    async with app, running_worker(app):
        (done,) = await wait_final(app, [job.id])
    assert done.state == pgq.JobState.SUCCEEDED and done.result == 1
