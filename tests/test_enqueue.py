"""Producing jobs: transactions, validation, idempotency, bulk, cancel and retry."""

from __future__ import annotations

import asyncio
import datetime as dt
import gc
import math
import weakref

import psycopg
import pytest

import pgq
from pgq import waiting
from tests.helpers import count_rows

pytestmark = pytest.mark.anyio


def make_app(dsn: str) -> pgq.App:
    app = pgq.App(dsn)

    @app.task(queue="emails", priority=3, max_attempts=7)
    async def send_email(to: str) -> None:
        return None

    @app.task
    def add(a: int, b: int) -> int:
        return a + b

    return app


async def test_enqueued_job_is_a_queued_row_with_task_defaults(dsn: str) -> None:
    app = make_app(dsn)
    async with app:
        job = await app.tasks["send_email"].enqueue(to="a@b.c")
        stored = await app.get_job(job.id)
    assert stored == job
    assert (job.state, job.queue, job.priority, job.max_attempts, job.attempt) == ("queued", "emails", 3, 7, 0)
    assert job.args == {"to": "a@b.c"} and job.errors == [] and job.finished_at is None


def test_enqueue_sync_from_plain_code(dsn: str) -> None:
    app = make_app(dsn)
    with app:
        job = app.tasks["add"].enqueue_sync(a=1, b=2)
        assert app.get_job_sync(job.id).args == {"a": 1, "b": 2}


def test_job_in_committed_transaction_is_kept_and_in_rolled_back_one_is_not(dsn: str) -> None:
    app = make_app(dsn)
    with psycopg.connect(dsn) as conn:
        kept = app.enqueue_sync("add", {"a": 1, "b": 1}, conn=conn)
        conn.execute("CREATE TABLE orders (id int)")
        conn.commit()
        dropped = app.enqueue_sync("add", {"a": 2, "b": 2}, conn=conn)
        conn.execute("INSERT INTO orders VALUES (1)")
        # Not visible to anyone else before commit.
        assert count_rows(dsn, "id = %s", [dropped.id]) == 0
        conn.rollback()
    assert count_rows(dsn, "id = %s", [kept.id]) == 1
    assert count_rows(dsn, "id = %s", [dropped.id]) == 0
    assert count_rows(dsn) == 1


async def test_async_enqueue_joins_the_callers_transaction(dsn: str) -> None:
    app = make_app(dsn)
    async with await psycopg.AsyncConnection.connect(dsn) as conn:
        async with conn.transaction():
            committed = await app.enqueue("add", {"a": 1, "b": 1}, conn=conn)
        with pytest.raises(ZeroDivisionError):
            async with conn.transaction():
                await app.enqueue("add", {"a": 2, "b": 2}, conn=conn)
                raise ZeroDivisionError
    assert count_rows(dsn) == 1
    assert count_rows(dsn, "id = %s", [committed.id]) == 1


def test_sync_method_refuses_an_async_connection(dsn: str) -> None:
    app = make_app(dsn)
    with pytest.raises(TypeError, match=r"psycopg\.Connection"):
        app.enqueue_sync("add", {"a": 1, "b": 1}, conn=object())  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("args", "error", "names"),
    [
        ({"to": {1, 2}}, TypeError, "argument 'to' is a set"),
        ({"when": dt.datetime(2030, 1, 1, tzinfo=dt.UTC)}, TypeError, "argument 'when' is a datetime"),
        ({"x": math.nan}, ValueError, "argument 'x' is nan"),
        ({"x": [1, {"y": math.inf}]}, ValueError, "argument 'x'[1]['y'] is inf"),
        ({"s": "a\x00b"}, ValueError, "argument 's' contains a NUL"),
        ({"s": "a\ud800b"}, ValueError, "argument 's' contains a lone surrogate"),
        ({"d": {"k\udc00": 1}}, ValueError, "argument 'd' has a key containing a NUL character or a lone surrogate"),
        ({"d": {1: "a"}}, TypeError, "argument 'd' has a key 1"),
        ({"o": object()}, TypeError, "argument 'o' is a object"),
    ],
)
async def test_arguments_that_are_not_json_raise_and_write_nothing(
    dsn: str, args: dict[str, object], error: type[Exception], names: str
) -> None:
    app = make_app(dsn)
    async with app:
        with pytest.raises(error, match=names.replace("[", r"\[").replace("]", r"\]")):
            await app.enqueue("add", args)
        with pytest.raises(error):
            await app.enqueue_many([{"task": "add", "args": {"a": 1, "b": 1}}, {"task": "add", "args": args}])
    assert count_rows(dsn) == 0


async def test_json_default_declares_an_encoding_for_other_types(dsn: str) -> None:
    app = pgq.App(dsn, json_default=lambda v: v.isoformat() if isinstance(v, dt.datetime) else v)
    when = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)
    async with app:
        job = await app.enqueue("report", {"when": when})
    assert job.args == {"when": "2030-01-01T00:00:00+00:00"}


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"queue": "bad queue"}, "queue name"),
        ({"priority": 40000}, "priority"),
        ({"max_attempts": 0}, "max_attempts"),
        ({"delay": -1}, "delay"),
        ({"run_at": dt.datetime(2030, 1, 1)}, "timezone-aware"),
        ({"delay": 1, "run_at": dt.datetime(2030, 1, 1, tzinfo=dt.UTC)}, "either run_at or delay"),
        ({"idempotency_key": ""}, "idempotency_key"),
        ({"idempotency_key": "k\udc00"}, "without NUL or lone surrogates"),
    ],
)
async def test_invalid_options_raise_and_write_nothing(dsn: str, options: dict[str, object], message: str) -> None:
    app = make_app(dsn)
    async with app:
        with pytest.raises(ValueError, match=message):
            await app.enqueue("add", {"a": 1, "b": 2}, **options)  # type: ignore[arg-type]
    assert count_rows(dsn) == 0


async def test_unknown_task_name_is_refused_by_an_app_that_registers_tasks(dsn: str) -> None:
    app = make_app(dsn)
    async with app:
        with pytest.raises(pgq.UnknownTaskError, match=r"unknown task 'sned_email'.*send_email"):
            await app.enqueue("sned_email", {"to": "x"})
        with pytest.raises(ValueError, match="task name"):
            await pgq.App(dsn).enqueue("not a name!")
    assert count_rows(dsn) == 0


async def test_arguments_that_do_not_fit_the_task_raise_type_error_naming_them_and_write_nothing(dsn: str) -> None:
    app = make_app(dsn)
    async with app:
        with pytest.raises(
            TypeError, match=r"^task send_email\(to\): unexpected argument 'wrong'; missing argument 'to'$"
        ):
            await app.tasks["send_email"].enqueue(wrong=1)
        with pytest.raises(TypeError, match=r"^task add\(a, b\): missing argument 'b'$"):
            app.tasks["add"].enqueue_sync(a=1)
        with pytest.raises(TypeError, match="unexpected argument 'c'"):
            await app.enqueue("add", {"a": 1, "b": 2, "c": 3})
        with pytest.raises(TypeError, match="missing argument 'b'"):
            await app.enqueue_many([{"task": "add", "args": {"a": 1, "b": 2}}, {"task": "add", "args": {"a": 1}}])
    assert count_rows(dsn) == 0


async def test_arguments_that_fitted_once_do_not_let_other_names_through(dsn: str) -> None:
    """Enqueue remembers which sets of argument names fit a task; only those."""
    app = make_app(dsn)
    async with app:
        await app.enqueue("add", {"a": 1, "b": 2})
        await app.enqueue("add", {"b": 2, "a": 1})
        for wrong in ({"a": 1}, {"a": 1, "b": 2, "c": 3}, {"b": 2, "a": 1, "a2": 0}, {}):
            with pytest.raises(TypeError, match=r"^task add\(a, b\): "):
                await app.enqueue("add", wrong)
    assert count_rows(dsn) == 2


async def test_enqueue_without_options_stores_what_explicit_defaults_store(dsn: str) -> None:
    app = make_app(dsn)
    async with app:
        plain = await app.enqueue("send_email", {"to": "a@example.com"})
        spelled = await app.enqueue(
            "send_email", {"to": "a@example.com"}, queue=None, priority=None, max_attempts=None, delay=None
        )
        stored = [await app.get_job(plain.id), await app.get_job(spelled.id)]
    keep = ("queue", "task", "args", "state", "priority", "max_attempts", "attempt", "idempotency_key")
    assert [[getattr(j, k) for k in keep] for j in stored] == [
        ["emails", "send_email", {"to": "a@example.com"}, "queued", 3, 7, 0, None]
    ] * 2
    assert stored[0] == plain and stored[1] == spelled


async def test_jobs_returned_by_enqueue_are_not_kept_alive_by_pgq(dsn: str) -> None:
    """job.wait() needs to know the App of each returned job; that record must go with the job."""
    app = make_app(dsn)
    async with app:
        job = await app.enqueue("add", {"a": 1, "b": 2})
        watcher = weakref.ref(job)
        assert waiting.owner(job) is app  # what job.wait() looks up
        del job
        gc.collect()
        assert watcher() is None
        before = len(waiting._OWNERS)
        for _ in range(200):
            await app.enqueue("add", {"a": 1, "b": 2})
        assert len(waiting._OWNERS) <= before + 1


async def test_delay_and_run_at_make_a_scheduled_job(dsn: str) -> None:
    app = make_app(dsn)
    async with app:
        delayed = await app.enqueue("add", {"a": 1, "b": 2}, delay=60)
        at = await app.enqueue("add", {"a": 1, "b": 2}, run_at=dt.datetime.now(dt.UTC) + dt.timedelta(hours=1))
        past = await app.enqueue("add", {"a": 1, "b": 2}, run_at=dt.datetime.now(dt.UTC) - dt.timedelta(hours=1))
    assert delayed.state == at.state == pgq.JobState.SCHEDULED
    assert past.state == pgq.JobState.QUEUED
    assert dt.timedelta(seconds=59) < delayed.run_at - delayed.created_at <= dt.timedelta(seconds=61)


async def test_hundred_concurrent_enqueues_with_one_idempotency_key_make_one_job(dsn: str) -> None:
    apps = [make_app(dsn) for _ in range(4)]  # four pools, so the inserts really race
    try:
        jobs = await asyncio.gather(
            *(apps[i % 4].enqueue("add", {"a": i, "b": 0}, idempotency_key="order-42") for i in range(100))
        )
    finally:
        for app in apps:
            await app.close()
    assert len({j.id for j in jobs}) == 1
    assert count_rows(dsn) == 1


async def test_idempotency_key_is_free_again_once_the_job_is_final(dsn: str) -> None:
    app = make_app(dsn)
    async with app:
        first = await app.enqueue("add", {"a": 1, "b": 1}, idempotency_key="k")
        assert (await app.enqueue("add", {"a": 1, "b": 1}, idempotency_key="k")).id == first.id
        await app.cancel(first.id)
        second = await app.enqueue("add", {"a": 1, "b": 1}, idempotency_key="k")
    assert second.id != first.id


async def test_enqueue_many_returns_jobs_in_input_order_in_one_statement(dsn: str) -> None:
    app = make_app(dsn)
    async with app:
        existing = await app.enqueue("add", {"a": 0, "b": 0}, idempotency_key="dup")
        specs: list[pgq.JobSpec | dict[str, object]] = [{"task": "add", "args": {"a": i, "b": i}} for i in range(3000)]
        specs[10] = pgq.JobSpec("send_email", {"to": "x@y.z"}, idempotency_key="dup")
        specs[20] = {"task": "send_email", "args": {"to": "later"}, "delay": 30}
        jobs = await app.enqueue_many(specs)
    assert len(jobs) == 3000
    assert jobs[10].id == existing.id
    assert jobs[20].state == pgq.JobState.SCHEDULED and jobs[20].queue == "emails"
    assert [j.args["a"] for i, j in enumerate(jobs) if i not in (10, 20)] == [
        i for i in range(3000) if i not in (10, 20)
    ]
    assert count_rows(dsn) == 3000


async def test_enqueue_many_rejects_unknown_fields(dsn: str) -> None:
    app = make_app(dsn)
    async with app:
        with pytest.raises(TypeError, match="unknown job fields \\['queu'\\]"):
            await app.enqueue_many([{"task": "add", "queu": "x"}])
        assert await app.enqueue_many([]) == []


async def test_cancel_a_queued_job_and_retry_it(dsn: str) -> None:
    app = make_app(dsn)
    async with app:
        job = await app.enqueue("add", {"a": 1, "b": 2})
        cancelled = await app.cancel(job.id)
        assert cancelled.state == pgq.JobState.CANCELLED and cancelled.finished_at is not None
        with pytest.raises(pgq.JobStateError, match="is cancelled and cannot be cancelled"):
            await app.cancel(job.id)  # already final: 409 in the HTTP API, as the README says
        again = await app.retry(job.id)
        assert again.state == pgq.JobState.QUEUED and again.finished_at is None
        with pytest.raises(pgq.JobStateError, match="only failed or cancelled"):
            await app.retry(job.id)
        with pytest.raises(pgq.JobNotFoundError):
            await app.get_job(10**9)
        with pytest.raises(pgq.JobNotFoundError):
            await app.cancel(10**9)


async def test_app_refuses_a_database_that_was_never_migrated(empty_dsn: str) -> None:
    app = pgq.App(empty_dsn)
    with pytest.raises(pgq.SchemaNotMigratedError, match="pgq migrate"):
        await app.enqueue("x")


def test_app_with_unreachable_database_says_so_in_one_line() -> None:
    app = pgq.App("postgresql://nobody@127.0.0.1:1/nothing")
    with pytest.raises(pgq.DatabaseUnavailableError, match="cannot connect to PostgreSQL at") as info:
        app.enqueue_sync("x")
    assert "\n" not in str(info.value)


def test_app_with_malformed_dsn_is_a_config_error() -> None:
    with pytest.raises(pgq.ConfigError, match="not a valid PostgreSQL DSN"):
        pgq.App("host=localhost port")


def test_one_notify_per_transaction_and_queue_with_the_queue_as_payload(dsn: str) -> None:
    app = pgq.App(dsn)
    with psycopg.connect(dsn, autocommit=True) as listener, psycopg.connect(dsn) as conn:
        listener.execute("LISTEN pgq_jobs")
        app.enqueue_many_sync([{"task": "t", "queue": "a" if i % 2 else "b"} for i in range(100)], conn=conn)
        for _ in range(10):
            app.enqueue_sync("t", queue="a", conn=conn)
        assert list(listener.notifies(timeout=0.3)) == []  # nothing before commit
        conn.commit()
        payloads = sorted(n.payload for n in listener.notifies(timeout=1))
    assert payloads == ["a", "b"]


def test_async_api_works_across_separate_asyncio_run_calls(dsn: str) -> None:
    app = pgq.App(dsn)
    first = asyncio.run(app.enqueue("t"))
    second = asyncio.run(app.get_job(first.id))
    assert second.id == first.id


async def test_list_jobs_pages_newest_first_with_filters(dsn: str) -> None:
    app = pgq.App(dsn)
    async with app:
        jobs = await app.enqueue_many([{"task": "a" if i % 2 else "b", "queue": "q"} for i in range(10)])
        page1 = await app.list_jobs(task="a", limit=3)
        page2 = await app.list_jobs(task="a", limit=3, before_id=page1[-1].id)
        with pytest.raises(ValueError, match="unknown state 'done'"):
            await app.list_jobs(state="done")
        with pytest.raises(ValueError, match="limit must be"):
            await app.list_jobs(limit=0)
    a_ids = sorted((j.id for j in jobs if j.task == "a"), reverse=True)
    assert [j.id for j in page1 + page2] == a_ids[:5]


def test_a_callers_connection_that_reads_jsonb_as_text_still_gets_python_values(dsn: str) -> None:
    """Django's psycopg backend loads jsonb as text; pgq's reads on such a connection do not."""
    from psycopg.types.string import TextLoader

    with pgq.App(dsn) as app, psycopg.connect(dsn) as conn:
        conn.adapters.register_loader("jsonb", TextLoader)
        first = app.enqueue_sync("t", {"to": ["a", 1]}, idempotency_key="k", conn=conn)
        again = app.enqueue_sync("t", {"to": ["a", 1]}, idempotency_key="k", conn=conn)  # read back from the row
        assert again.id == first.id
        assert again.args == {"to": ["a", 1]}
        assert conn.execute("SELECT args FROM pgq.jobs").fetchone() == ('{"to": ["a", 1]}',)  # the caller's own loader
