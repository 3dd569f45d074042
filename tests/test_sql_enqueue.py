"""pgq.enqueue() in SQL: any client enqueues in its own transaction, checked as the Python API checks.

Through psycopg and asyncpg, from a trigger on a user's table (the outbox pattern),
rolled back, refused (SQLSTATE 22023 naming the parameter, nothing written), with an
idempotency key, woken workers at commit, run by a real worker; and a generated
comparison with the Python API's checks.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import re
import threading
import time
from collections.abc import Iterator
from typing import Any

import asyncpg
import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from psycopg.conninfo import conninfo_to_dict
from psycopg.types.json import Jsonb

import pgq
from pgq import spec as specs
from pgq.errors import ConfigError
from pgq.names import QUEUE_NAME, TASK_NAME, check_task_name
from pgq.schedule import Schedule
from tests.conftest import pgq_cli
from tests.helpers import count_rows, running_worker, wait_final
from tests.test_properties import _same_json
from tests.test_readme import README, check_shown, shown_outputs

pytestmark = pytest.mark.anyio

Conn = psycopg.Connection[tuple[Any, ...]]

_OPTIONS = ("queue", "priority", "run_at", "delay", "max_attempts", "idempotency_key")


def _call(task: Any, args: Any = None, **options: Any) -> tuple[str, dict[str, Any]]:
    """SELECT pgq.enqueue(...) with named parameters for the given options."""
    named = "".join(f", {name} => %({name})s" for name in _OPTIONS if name in options)
    params = {"task": task, "args": None if args is None else Jsonb(args), **options}
    return f"SELECT pgq.enqueue(%(task)s, %(args)s{named})", params


def _enqueue(conn: Conn, task: Any, args: Any = None, **options: Any) -> int:
    query, params = _call(task, args, **options)
    row = conn.execute(query.encode(), params).fetchone()  # query: fixed fragments from _OPTIONS
    assert row is not None
    return int(row[0])


def _asyncpg_kwargs(dsn: str) -> dict[str, Any]:
    info = conninfo_to_dict(dsn)
    return {"host": info["host"], "port": int(str(info["port"])), "user": info["user"], "database": info["dbname"]}


# -- through any client ------------------------------------------------------------------


def test_psycopg_enqueue_writes_the_row_the_python_api_writes(conn: Conn, dsn: str) -> None:
    run_at = dt.datetime(2030, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
    options: dict[str, Any] = {
        "queue": "emails",
        "priority": -5,
        "run_at": run_at,
        "max_attempts": 3,
        "idempotency_key": "w:1",
    }
    from_sql = _enqueue(conn, "send_email", {"to": "a@b.c", "n": [1, 2.5, None]}, **options)
    with pgq.App(dsn) as app:
        from_python = app.enqueue_sync(
            "send_email", {"to": "a@b.c", "n": [1, 2.5, None]}, **{**options, "idempotency_key": "w:2"}
        )
        sql_job = app.get_job_sync(from_sql)
    columns = ("queue", "task", "args", "state", "priority", "run_at", "attempt", "max_attempts")
    assert [getattr(sql_job, c) for c in columns] == [getattr(from_python, c) for c in columns]
    assert sql_job.state == pgq.JobState.SCHEDULED and sql_job.idempotency_key == "w:1"

    # Defaults: the queue 'default', priority 0, 5 attempts, ready now; NULL means the default.
    ready = conn.execute(
        "SELECT queue, args, state, priority, max_attempts, run_at = created_at FROM pgq.jobs WHERE id = %s",
        (_enqueue(conn, "t"),),
    ).fetchone()
    assert ready == ("default", {}, "queued", 0, 5, True)
    nulls = _enqueue(conn, "t", None, queue=None, priority=None, max_attempts=None, run_at=None, delay=None)
    assert conn.execute("SELECT queue, priority, max_attempts FROM pgq.jobs WHERE id = %s", (nulls,)).fetchone() == (
        "default",
        0,
        5,
    )
    delayed = _enqueue(conn, "t", delay=dt.timedelta(minutes=10))
    row = conn.execute("SELECT state, run_at - created_at FROM pgq.jobs WHERE id = %s", (delayed,)).fetchone()
    assert row == ("scheduled", dt.timedelta(minutes=10))


async def test_asyncpg_enqueues_in_its_own_transaction_and_rolls_back(dsn: str) -> None:
    connection = await asyncpg.connect(**_asyncpg_kwargs(dsn))
    try:
        async with connection.transaction():
            job_id = await connection.fetchval(
                "SELECT pgq.enqueue($1, $2::jsonb, queue => $3, priority => $4, delay => $5)",
                "send_email",
                json.dumps({"to": "a@b.c"}),
                "emails",
                -1,
                dt.timedelta(seconds=30),
            )
            assert count_rows(dsn) == 0  # not visible to others before commit
        assert count_rows(dsn, "id = %s AND queue = 'emails' AND state = 'scheduled'", [job_id]) == 1

        with pytest.raises(RuntimeError):
            async with connection.transaction():
                await connection.fetchval("SELECT pgq.enqueue('send_email', '{\"to\": \"x\"}')")
                raise RuntimeError("the caller's own failure")
        assert count_rows(dsn) == 1

        with pytest.raises(asyncpg.InvalidParameterValueError) as refused:
            await connection.fetchval("SELECT pgq.enqueue('send_email', max_attempts => $1)", 0)
        assert refused.value.sqlstate == "22023" and refused.value.column_name == "max_attempts"
        assert "max_attempts must be an integer between 1 and 1000000, got 0" in str(refused.value)
        assert count_rows(dsn) == 1
    finally:
        await connection.close()


def test_a_trigger_on_the_users_table_enqueues_with_the_row_outbox(conn: Conn, dsn: str) -> None:
    conn.execute(
        """
        CREATE TABLE orders (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, email text NOT NULL);
        CREATE FUNCTION orders_enqueue_receipt() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            PERFORM pgq.enqueue('send_receipt', jsonb_build_object('order_id', NEW.id, 'to', NEW.email),
                                queue => 'emails', idempotency_key => 'receipt:' || NEW.id);
            RETURN NULL;
        END;
        $$;
        CREATE TRIGGER orders_receipt AFTER INSERT ON orders FOR EACH ROW EXECUTE FUNCTION orders_enqueue_receipt();
        """
    )
    with psycopg.connect(dsn) as tx:
        tx.execute("INSERT INTO orders (email) VALUES ('a@b.c'), ('d@e.f')")
        tx.commit()
        tx.execute("INSERT INTO orders (email) VALUES ('rolled@back')")
        tx.rollback()
    rows = conn.execute("SELECT task, queue, args, idempotency_key FROM pgq.jobs ORDER BY id").fetchall()
    assert rows == [
        ("send_receipt", "emails", {"order_id": 1, "to": "a@b.c"}, "receipt:1"),
        ("send_receipt", "emails", {"order_id": 2, "to": "d@e.f"}, "receipt:2"),
    ]
    # A refused job refuses the user's row with it: the trigger's statement fails whole.
    conn.execute(
        "CREATE OR REPLACE FUNCTION orders_enqueue_receipt() RETURNS trigger LANGUAGE plpgsql AS $$ "
        "BEGIN PERFORM pgq.enqueue('send receipt'); RETURN NULL; END; $$"
    )
    with pytest.raises(psycopg.errors.InvalidParameterValue):
        conn.execute("INSERT INTO orders (email) VALUES ('g@h.i')")
    assert conn.execute("SELECT count(*) FROM orders").fetchone() == (2,)
    assert count_rows(dsn) == 2


def test_rollback_leaves_nothing_and_commit_notifies_workers(conn: Conn, dsn: str) -> None:
    conn.execute("LISTEN pgq_jobs")
    with psycopg.connect(dsn) as tx:
        _enqueue(tx, "t", queue="q1")
        tx.rollback()
        _enqueue(tx, "t", queue="q2")
        _enqueue(tx, "t", queue="q2")
        assert list(conn.notifies(timeout=0.3)) == []  # nothing before commit
        tx.commit()
    heard = [n.payload for n in conn.notifies(timeout=1)]
    assert heard == ["q2"]  # one per queue and transaction, as the Python insert sends
    assert count_rows(dsn, "queue = 'q1'") == 0 and count_rows(dsn, "queue = 'q2'") == 2


async def test_a_job_enqueued_in_sql_is_run_by_a_worker(dsn: str) -> None:
    app = pgq.App(dsn)
    seen: list[int] = []

    @app.task
    def add(a: int, b: int) -> int:
        seen.append(a + b)
        return a + b

    async with app, running_worker(app):
        async with await psycopg.AsyncConnection.connect(dsn) as tx:
            row = await (await tx.execute("SELECT pgq.enqueue('add', '{\"a\": 2, \"b\": 3}')")).fetchone()
            assert row is not None
        (job,) = await wait_final(app, [row[0]])
    assert job.state == pgq.JobState.SUCCEEDED and job.result == 5 and seen == [5]


# -- idempotency ---------------------------------------------------------------------------


def test_an_idempotency_key_returns_the_live_job_and_is_free_once_it_is_final(conn: Conn, dsn: str) -> None:
    first = _enqueue(conn, "t", {"n": 1}, idempotency_key="k")
    assert _enqueue(conn, "t", {"n": 2}, idempotency_key="k") == first
    with pgq.App(dsn) as app:
        assert app.enqueue_sync("t", idempotency_key="k").id == first  # the Python path agrees
        app.cancel_sync(first)
    again = _enqueue(conn, "t", {"n": 3}, idempotency_key="k")
    assert again != first
    assert count_rows(dsn, "idempotency_key = 'k'") == 2


def test_a_concurrent_repeat_waits_for_the_holder_and_returns_its_job(conn: Conn, dsn: str) -> None:
    """The second caller blocks on the unique index until the first commits, then gets its id."""
    got: list[int] = []

    def repeat() -> None:
        with psycopg.connect(dsn, autocommit=True) as other:
            got.append(_enqueue(other, "t", idempotency_key="race"))

    with psycopg.connect(dsn) as holder:
        first = _enqueue(holder, "t", idempotency_key="race")
        second = threading.Thread(target=repeat)
        second.start()
        time.sleep(0.5)
        assert not got  # waiting on the holder's uncommitted row
        holder.commit()
    second.join(10)
    assert got == [first]
    assert count_rows(dsn) == 1


# -- refusals ------------------------------------------------------------------------------

_REFUSED: list[tuple[str, dict[str, Any], str, str]] = [
    # (what, the call's arguments, the column named, the message's start)
    ("task with a space", {"task": "send email"}, "task", "task name 'send email' is invalid"),
    ("task with a trailing newline", {"task": "send_email\n"}, "task", "task name"),
    ("task starting with a digit", {"task": "1task"}, "task", "task name '1task' is invalid"),
    ("task of 256 characters", {"task": "t" * 256}, "task", "task name"),
    ("no task", {"task": None}, "task", "task name NULL is invalid"),
    ("args an array", {"task": "t", "args": [1]}, "args", "job arguments must be a JSON object"),
    ("args a JSON null", {"task": "t", "args": Jsonb(None)}, "args", "job arguments must be a JSON object"),
    ("an empty argument name", {"task": "t", "args": {"": 1}}, "args", "argument names must be non-empty strings"),
    ("too deep", {"task": "t", "args": {"a": json.loads("[" * 102 + "]" * 102)}}, "args", "argument 'a'"),
    (
        "an integer of 4001 digits",
        {"task": "t", "args": {"n": 10**4000}},
        "args",
        "argument 'n' is an integer of more than 4000",
    ),
    ("a queue with a slash", {"task": "t", "queue": "a/b"}, "queue", "queue name 'a/b' is invalid"),
    ("an empty queue", {"task": "t", "queue": ""}, "queue", "queue name '' is invalid"),
    ("a queue of 129 characters", {"task": "t", "queue": "q" * 129}, "queue", "queue name"),
    (
        "priority 32768",
        {"task": "t", "priority": 32768},
        "priority",
        "priority must be an integer between -32768 and 32767, got 32768",
    ),
    ("priority -32769", {"task": "t", "priority": -32769}, "priority", "priority must be an integer"),
    (
        "max_attempts 0",
        {"task": "t", "max_attempts": 0},
        "max_attempts",
        "max_attempts must be an integer between 1 and 1000000",
    ),
    ("max_attempts 1000001", {"task": "t", "max_attempts": 1_000_001}, "max_attempts", "max_attempts must be"),
    (
        "run_at and delay",
        {"task": "t", "run_at": dt.datetime(2030, 1, 1, tzinfo=dt.UTC), "delay": dt.timedelta(1)},
        "delay",
        "give either run_at or delay, not both",
    ),
    (
        "run_at in 1969",
        {"task": "t", "run_at": dt.datetime(1969, 12, 31, 23, tzinfo=dt.UTC)},
        "run_at",
        "run_at must be in the years 1970 to 9998",
    ),
    (
        "run_at in 9999",
        {"task": "t", "run_at": dt.datetime(9999, 1, 1, tzinfo=dt.UTC)},
        "run_at",
        "run_at must be in the years",
    ),
    ("a negative delay", {"task": "t", "delay": dt.timedelta(seconds=-1)}, "delay", "delay must not be negative"),
    (
        "a delay of 36501 days",
        {"task": "t", "delay": dt.timedelta(days=36501)},
        "delay",
        "delay must be at most 36500 days",
    ),
    (
        "an empty idempotency key",
        {"task": "t", "idempotency_key": ""},
        "idempotency_key",
        "idempotency_key must be a string of 1-255",
    ),
    (
        "a key of 256 characters",
        {"task": "t", "idempotency_key": "k" * 256},
        "idempotency_key",
        "idempotency_key must be",
    ),
]


@pytest.mark.parametrize(("call", "column", "message"), [r[1:] for r in _REFUSED], ids=[r[0] for r in _REFUSED])
def test_bad_input_raises_22023_naming_the_parameter_and_writes_nothing(
    conn: Conn, dsn: str, call: dict[str, Any], column: str, message: str
) -> None:
    options = {k: v for k, v in call.items() if k not in {"task", "args"}}
    args = call.get("args")
    query, params = _call(call["task"], args, **options)
    if isinstance(args, Jsonb):
        params["args"] = args
    with pytest.raises(psycopg.errors.InvalidParameterValue) as refused:
        conn.execute(query.encode(), params)
    assert refused.value.sqlstate == "22023"
    assert refused.value.diag.column_name == column
    assert str(refused.value.diag.message_primary).startswith(message), refused.value.diag.message_primary
    assert count_rows(dsn) == 0
    # The Python API refuses the same input (None is its default, not a missing task).
    if call["task"] is not None:
        spec = specs.JobSpec(call["task"], args.obj if isinstance(args, Jsonb) else (args or {}), **options)
        with pytest.raises((ValueError, TypeError)):
            specs.validate(spec, None, None)


@pytest.mark.parametrize(
    "statement",
    [
        "SELECT pgq.enqueue('t', '{\"a\": \"\\u0000\"}')",  # jsonb refuses \u0000
        "SELECT pgq.enqueue('t', '{\"a\": \"\\ud800\"}')",  # and a lone surrogate
        "SELECT pgq.enqueue('t', '{\"a\": NaN}')",  # and NaN
        "SELECT pgq.enqueue('t', delay => '1 hour', unknown => 1)",  # no such parameter
    ],
)
def test_what_the_types_refuse_never_reaches_the_table(conn: Conn, dsn: str, statement: str) -> None:
    with pytest.raises(psycopg.Error):
        conn.execute(statement.encode())
    assert count_rows(dsn) == 0


def test_text_with_nul_is_refused_before_the_call(conn: Conn, dsn: str) -> None:
    for options in ({"idempotency_key": "a\x00b"}, {"queue": "q\x00"}):
        with pytest.raises(psycopg.DataError, match="NUL"):
            _enqueue(conn, "t", **options)
    assert count_rows(dsn) == 0


def test_names_with_a_trailing_newline_are_refused_by_python_too() -> None:
    """``re.match`` with ``$`` accepted "name\\n", which the table's CHECK then refused
    with a constraint violation instead of a ValueError naming the task."""
    with pytest.raises(ValueError, match="task name 'send_email\\\\n' is invalid"):
        check_task_name("send_email\n")
    with pytest.raises(ValueError, match="task name"):
        specs.validate(specs.JobSpec("send_email\n"), None, None)
    with pytest.raises(ConfigError, match="schedule name"):
        Schedule.define("t", every=60, name="nightly\n")


def test_the_readme_shows_what_the_function_says(conn: Conn, dsn: str) -> None:
    example = shown_outputs(README.read_text(encoding="utf-8"))["sql-enqueue-refused"].example
    statement = re.search(r'conn\.execute\("(.+?)"\)', example)
    assert statement is not None, example
    with pytest.raises(psycopg.errors.InvalidParameterValue) as refused:
        conn.execute(statement[1].encode())
    exc = refused.value
    check_shown("sql-enqueue-refused", f"{exc.sqlstate} {exc.diag.column_name} {exc.diag.message_primary}")
    assert count_rows(dsn) == 0


# -- roles -------------------------------------------------------------------------------


def test_producer_and_worker_roles_may_call_it_and_the_reader_may_not(dsn: str) -> None:
    result = pgq_cli("roles", dsn=dsn)
    assert result.returncode == 0, result.stderr
    for role, allowed in (("pgq_producer", True), ("pgq_worker", True), ("pgq_reader", False)):
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(psycopg.sql.SQL("SET ROLE {}").format(psycopg.sql.Identifier(role)))
            if allowed:
                assert _enqueue(conn, "t", idempotency_key="same") >= 1
            else:
                with pytest.raises(psycopg.errors.InsufficientPrivilege):
                    _enqueue(conn, "t")
    assert count_rows(dsn) == 1


# -- the same checks as Python, generated ------------------------------------------------------

_TEXT = st.text(st.characters(codec="utf-8", exclude_characters="\x00"), max_size=8)
_NAMES = st.sampled_from(
    ["t", "send_email", "a.b:c-d", "_x", "", " ", "1x", "x" * 255, "x" * 256, "é", "a\n", "q" * 128, "q" * 129]
)
_LEAVES = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.sampled_from([10**3999, -(10**3999), 10**4000, 1.7976931348623157e308, -0.0])
    | _TEXT
)
_JSON = st.recursive(
    _LEAVES, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_TEXT, inner, max_size=3), max_leaves=8
)
_UTC = st.just(dt.UTC)
_MIDDLE_YEARS = st.datetimes(dt.datetime(1971, 1, 1), dt.datetime(9997, 1, 1), timezones=st.timezones())
_INT64 = st.integers(min_value=-(2**63), max_value=2**63 - 1)

_GOOD = {
    "task": st.sampled_from(["t", "send_email", "a.b:c-d", "_x", "x" * 255]) | st.from_regex(TASK_NAME, fullmatch=True),
    "args": st.dictionaries(_TEXT.filter(bool), _JSON, max_size=4),
    "queue": st.none() | st.from_regex(QUEUE_NAME, fullmatch=True),
    "priority": st.none() | st.integers(-32768, 32767),
    "run_at": st.none() | st.none() | _MIDDLE_YEARS,
    "delay": st.none() | st.none() | st.timedeltas(dt.timedelta(0), dt.timedelta(days=36500)),
    "max_attempts": st.none() | st.integers(1, 1_000_000),
    "idempotency_key": st.none() | st.text(st.characters(codec="utf-8", exclude_characters="\x00"), min_size=1),
}
"""Values the Python API accepts (run_at and delay aside, which it refuses together)."""
_HOSTILE = {
    "task": _NAMES | _TEXT,
    "args": st.dictionaries(_TEXT, _JSON, max_size=4),
    "queue": _NAMES | _TEXT,
    "priority": _INT64 | st.sampled_from([-32769, -32768, 32767, 32768]),
    "run_at": st.datetimes(dt.datetime(1969, 12, 30), dt.datetime(1970, 1, 2), timezones=_UTC)
    | st.datetimes(dt.datetime(9998, 12, 30), dt.datetime(9999, 12, 31), timezones=_UTC),
    "delay": st.timedeltas(dt.timedelta(days=-2), dt.timedelta(days=36502))
    | st.sampled_from([dt.timedelta(microseconds=-1), dt.timedelta(days=36500, microseconds=1)]),
    "max_attempts": _INT64 | st.sampled_from([0, 1, 1_000_000, 1_000_001]),
    "idempotency_key": _TEXT | st.sampled_from(["", "k" * 255, "k" * 256]),
}
"""Values near and past every limit (in UTC for run_at: SQL reads its year in the
session's time zone, Python in the datetime's own offset)."""


def _deep(levels: int, leaf: Any) -> Any:
    for _ in range(levels):
        leaf = [leaf]
    return leaf


_EDGES: list[dict[str, Any]] = [
    {"args": {"a": _deep(100, 1.5)}},  # a float at depth 100: accepted
    {"args": {"a": _deep(101, 1.5)}},  # at depth 101: refused
    {"args": {"a": _deep(101, 1)}},  # an integer at depth 101: accepted (as Python does)
    {"args": {"a": _deep(101, [])}},  # a list at depth 101: refused
    {"args": {"a": _deep(100, {"b": "x"})}},
    {"args": {"a": [10**4000, 10**3999]}},
    {"args": {"a": [10**3999, -(10**3999)]}},
    {"args": {"a": {"b": 1.7976931348623157e308}}},
    {"args": {"": 1}},
    {"args": {"a": {"": 1}}},
    {"task": "a\n"},
    {"queue": "a\n"},
    {"run_at": dt.datetime(1970, 1, 1, tzinfo=dt.UTC)},
    {"run_at": dt.datetime(9998, 12, 31, 23, 59, 59, 999999, tzinfo=dt.UTC)},
    {"delay": dt.timedelta(days=36500)},
    {"run_at": dt.datetime(2030, 1, 1, tzinfo=dt.UTC), "delay": dt.timedelta(0)},
]


@pytest.fixture
def session(dsn: str) -> Iterator[Conn]:
    with psycopg.connect(dsn, options="-c TimeZone=UTC") as conn:
        yield conn


def test_the_sql_function_accepts_exactly_what_the_python_api_accepts(session: Conn) -> None:
    """For generated calls (valid values with up to two fields drawn near or past their
    limits), both accept or both refuse; accepted, both write the same job."""
    seen = {"accepted": 0, "refused": 0}

    def compare(call: dict[str, Any]) -> None:
        call = {"task": "t", "args": {}, **{name: None for name in _OPTIONS}, **call}
        try:
            expected: dict[str, Any] | None = dataclasses.asdict(specs.validate(specs.JobSpec(**call), None, None))
        except (ValueError, TypeError):
            expected = None
        refused: psycopg.errors.InvalidParameterValue | None = None
        with session.transaction(force_rollback=True):
            try:
                job_id = _enqueue(session, **call)
            except psycopg.errors.InvalidParameterValue as exc:
                refused = exc
            else:
                row = session.execute(
                    "SELECT queue, task, args, priority, max_attempts, idempotency_key, run_at FROM pgq.jobs "
                    "WHERE id = %s",
                    (job_id,),
                ).fetchone()
        if refused is not None:
            assert expected is None, f"SQL refused what Python accepts: {refused.diag.message_primary} ({call})"
            assert refused.diag.column_name in {"task", "args", *_OPTIONS}
            seen["refused"] += 1
            return
        assert expected is not None, f"SQL accepted what Python refuses: {call}"
        assert row is not None
        assert row[:2] + row[3:6] == (
            expected["queue"],
            expected["task"],
            expected["priority"],
            expected["max_attempts"],
            expected["idempotency_key"],
        )
        assert _same_json(row[2], expected["args"])
        if call["run_at"] is not None:
            assert row[6] == call["run_at"]
        seen["accepted"] += 1

    for edge in _EDGES:
        compare(edge)

    @settings(deadline=None, derandomize=True, database=None, max_examples=300, suppress_health_check=list(HealthCheck))
    @given(data=st.data())
    def check(data: st.DataObject) -> None:
        wild = data.draw(st.sets(st.sampled_from(sorted(_GOOD)), max_size=2))
        compare({name: data.draw((_HOSTILE if name in wild else _GOOD)[name], label=name) for name in _GOOD})

    check()
    assert seen["accepted"] >= 50 and seen["refused"] >= 50, seen
