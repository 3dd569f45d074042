"""Periodic jobs: validation, tick computation across DST, the missed-ticks policy,
registration, race-free enqueueing by concurrent schedulers, the leader's early
wake-ups, and `pgq schedules`."""

from __future__ import annotations

import asyncio
import collections
import datetime as dt
import itertools
import json
import re
import signal
import time
from collections.abc import AsyncIterator, Callable, Iterable
from typing import Any
from zoneinfo import ZoneInfo

import psycopg
import pytest
from psycopg_pool import AsyncConnectionPool

import pgq
from pgq._queries import QUERIES
from pgq.schedule import Schedule
from pgq.worker.leader import Leadership
from pgq.worker.scheduler import GRACE, Plan, Scheduler, idempotency_key, plan
from tests.apps.periodic import app as periodic_app
from tests.conftest import pgq_cli
from tests.helpers import WorkerProcesses, wait_until

UTC = dt.UTC
PARIS = ZoneInfo("Europe/Paris")
Pool = AsyncConnectionPool[psycopg.AsyncConnection[Any]]


# -- validation at decoration time ---------------------------------------------------


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"cron": "*/5 * * *"}, "has 4 fields; it needs 5"),
        ({"cron": "61 * * * *"}, "cron expression '61 * * * *' is invalid: Bad minute"),
        ({"cron": "0 0 31 2 *"}, "is invalid: Bad day-of-month"),
        ({"cron": "* * * * *", "timezone": "Europe/Pariss"}, "unknown time zone 'Europe/Pariss'"),
        ({"cron": "* * * * *", "every": 5}, "not both"),
        ({}, "say when it runs: cron="),
        ({"every": 5, "missed": "later"}, "missed= must be 'run_once' or 'skip', got 'later'"),
        ({"every": 0.5}, "whole number of seconds, at least 1"),
        ({"every": dt.timedelta(0)}, "whole number of seconds, at least 1"),
        ({"every": 30, "timezone": "Europe/Paris"}, "timezone= applies to cron= schedules only"),
        ({"every": 30, "name": "has space"}, "schedule name 'has space' is invalid"),
    ],
)
def test_bad_schedules_fail_at_decoration_naming_the_problem(options: dict[str, Any], message: str) -> None:
    app = pgq.App("postgresql://unused")

    with pytest.raises(pgq.ConfigError, match=re.escape(message)):

        @app.periodic(**options)
        @app.task
        async def job() -> None: ...

    assert app.schedules == {}


def test_periodic_goes_above_task_and_names_are_unique() -> None:
    app = pgq.App("postgresql://unused")
    with pytest.raises(pgq.ConfigError, match=r"put it above @app\.task"):

        @app.task
        @app.periodic(every=5)  # type: ignore[arg-type]
        async def wrong_order() -> None: ...

    @app.periodic(every=5)
    @app.task
    async def ping() -> None: ...

    assert isinstance(ping, pgq.Task) and app.schedules["ping"].every_seconds == 5
    with pytest.raises(pgq.ConfigError, match="a schedule named 'ping' already exists"):
        app.schedule("ping", every=10)
    app.schedule("ping", name="ping_hourly", cron="@hourly", args={"n": 1})
    assert app.schedules["ping_hourly"].cron == "0 * * * *"
    with pytest.raises(TypeError, match="argument 'when' is a datetime"):
        app.schedule("ping", name="bad_args", every=5, args={"when": dt.datetime.now(UTC)})


def test_the_example_app_defines_three_schedules() -> None:
    schedules = periodic_app.schedules
    assert sorted(schedules) == ["every_second", "nightly_report", "weekly_report"]
    assert schedules["nightly_report"].timing == "30 2 * * * (Europe/Paris)"
    assert schedules["nightly_report"].missed == "skip" and schedules["every_second"].missed == "run_once"


# -- ticks: cron in a time zone, across DST, and intervals ---------------------------


def _ticks(schedule: Schedule, start: dt.datetime, count: int) -> list[str]:
    out, tick = [], start
    for _ in range(count):
        tick = schedule.next_tick(tick)
        assert tick.tzinfo is UTC
        out.append(tick.astimezone(PARIS).isoformat(timespec="minutes"))
    return out


def test_wall_clock_cron_runs_once_a_day_across_both_dst_changes() -> None:
    nightly = Schedule("n", "t", cron="30 2 * * *", timezone="Europe/Paris")
    # 2030-03-31: 02:00 CET jumps to 03:00 CEST, so 02:30 does not exist: it runs at 03:00.
    assert _ticks(nightly, dt.datetime(2030, 3, 29, 12, tzinfo=UTC), 3) == [
        "2030-03-30T02:30+01:00",
        "2030-03-31T03:00+02:00",
        "2030-04-01T02:30+02:00",
    ]
    # 2030-10-27: 03:00 CEST falls back to 02:00 CET, so 02:30 happens twice: it runs once.
    assert _ticks(nightly, dt.datetime(2030, 10, 25, 12, tzinfo=UTC), 3) == [
        "2030-10-26T02:30+02:00",
        "2030-10-27T02:30+02:00",
        "2030-10-28T02:30+01:00",
    ]


def test_interval_cron_keeps_real_time_steps_across_both_dst_changes() -> None:
    every20 = Schedule("e", "t", cron="*/20 * * * *", timezone="Europe/Paris")
    # Spring forward: the hour that does not exist is skipped, nothing doubles up.
    assert _ticks(every20, dt.datetime(2030, 3, 31, 0, 30, tzinfo=UTC), 3) == [
        "2030-03-31T01:40+01:00",
        "2030-03-31T03:00+02:00",
        "2030-03-31T03:20+02:00",
    ]
    # Fall back: the repeated hour runs in both of its occurrences, 20 real minutes apart.
    ticks = [dt.datetime.fromisoformat(t) for t in _ticks(every20, dt.datetime(2030, 10, 27, 0, 30, tzinfo=UTC), 5)]
    assert [t.isoformat(timespec="minutes") for t in ticks] == [
        "2030-10-27T02:40+02:00",
        "2030-10-27T02:00+01:00",
        "2030-10-27T02:20+01:00",
        "2030-10-27T02:40+01:00",
        "2030-10-27T03:00+01:00",
    ]
    assert {b - a for a, b in itertools.pairwise(ticks)} == {dt.timedelta(minutes=20)}


def test_cron_is_evaluated_in_its_zone_and_stored_in_utc() -> None:
    nine = Schedule("n", "t", cron="0 9 * * 1-5", timezone="America/New_York")
    tick = nine.next_tick(dt.datetime(2030, 7, 5, 14, tzinfo=UTC))  # a Friday, 10:00 in New York
    assert tick == dt.datetime(2030, 7, 8, 13, tzinfo=UTC)  # Monday 09:00 EDT


def test_interval_ticks_are_multiples_of_the_interval_since_the_epoch() -> None:
    every30 = Schedule("e", "t", every_seconds=30)
    after = dt.datetime(2030, 1, 1, 0, 0, 29, 999_999, tzinfo=UTC)
    assert every30.next_tick(after) == dt.datetime(2030, 1, 1, 0, 0, 30, tzinfo=UTC)
    assert every30.next_tick(every30.next_tick(after)) == dt.datetime(2030, 1, 1, 0, 1, tzinfo=UTC)


# -- the missed-ticks policy, as a pure decision -------------------------------------

_NOW = dt.datetime(2030, 1, 1, 12, 0, 30, tzinfo=UTC)


@pytest.mark.parametrize("missed", ["run_once", "skip"])
def test_a_tick_within_the_grace_runs_for_itself_under_both_policies(missed: str) -> None:
    hourly = Schedule("h", "t", cron="0 * * * *", missed=missed)  # type: ignore[arg-type]
    due = dt.datetime(2030, 1, 1, 12, tzinfo=UTC)
    assert plan(hourly, due, _NOW) == Plan(run_at=due, next_run_at=dt.datetime(2030, 1, 1, 13, tzinfo=UTC))


def test_run_once_collapses_missed_ticks_into_one_run_for_the_latest() -> None:
    hourly = Schedule("h", "t", cron="0 * * * *")
    step = plan(hourly, dt.datetime(2030, 1, 1, 7, tzinfo=UTC), _NOW)
    assert step == Plan(
        run_at=dt.datetime(2030, 1, 1, 12, tzinfo=UTC), next_run_at=dt.datetime(2030, 1, 1, 13, tzinfo=UTC)
    )
    minutely_month = plan(Schedule("m", "t", cron="* * * * *"), _NOW - dt.timedelta(days=30), _NOW)
    assert minutely_month.run_at == dt.datetime(2030, 1, 1, 12, tzinfo=UTC)


def test_skip_drops_missed_ticks_and_schedules_the_next_one() -> None:
    hourly = Schedule("h", "t", cron="0 * * * *", missed="skip")
    step = plan(hourly, dt.datetime(2030, 1, 1, 7, tzinfo=UTC), _NOW + dt.timedelta(minutes=5))
    assert step == Plan(run_at=None, next_run_at=dt.datetime(2030, 1, 1, 13, tzinfo=UTC))


# -- against the database -------------------------------------------------------------


@pytest.fixture
async def pool(dsn: str) -> AsyncIterator[Pool]:
    async with AsyncConnectionPool(dsn, min_size=1, max_size=10, kwargs={"autocommit": True}) as opened:
        yield opened


def _rows(dsn: str, query: str, *params: Any) -> list[tuple[Any, ...]]:
    with psycopg.connect(dsn) as conn:
        return conn.execute(query.encode(), params).fetchall()


@pytest.mark.anyio
async def test_register_writes_schedules_and_keeps_next_run_unless_the_timing_changed(dsn: str, pool: Pool) -> None:
    scheduler = Scheduler(pool)
    assert sorted(await scheduler.register(periodic_app.schedules.values(), periodic_app.tasks)) == [
        "every_second",
        "nightly_report",
        "weekly_report",
    ]
    (row,) = _rows(
        dsn,
        "SELECT task, queue, args, priority, max_attempts, timezone FROM pgq.schedules WHERE name = 'weekly_report'",
    )
    assert row == ("nightly_report", "periodic", {"kind": "weekly"}, -1, 2, "UTC")  # the task's defaults, overridden
    (nightly,) = _rows(dsn, "SELECT next_run_at FROM pgq.schedules WHERE name = 'nightly_report'")
    assert nightly[0].astimezone(PARIS).strftime("%H:%M") in {"02:30", "03:00"}

    far = dt.datetime(2031, 1, 1, tzinfo=UTC)
    _rows(dsn, "UPDATE pgq.schedules SET next_run_at = %s RETURNING 1", far)
    # The same definitions again (a restart, a second worker): nothing changes.
    assert await scheduler.register(periodic_app.schedules.values(), periodic_app.tasks) == []
    # New args keep the next run; a new timing recomputes it.
    other = pgq.App("postgresql://unused")
    other.schedule("nightly_report", cron="30 2 * * *", timezone="Europe/Paris", args={"kind": "x"}, missed="skip")
    other.schedule("every_second", every=2)
    assert sorted(await scheduler.register(other.schedules.values(), other.tasks)) == ["every_second", "nightly_report"]
    rows = dict(_rows(dsn, "SELECT name, next_run_at FROM pgq.schedules"))
    assert rows["nightly_report"] == far and rows["weekly_report"] == far
    assert rows["every_second"] < far


async def _declare(pool: Pool, names: Iterable[str], worker_id: str = "w-test") -> None:
    """A live worker row declaring these schedules, as a worker's heartbeat writes it."""
    async with pool.connection() as conn:
        await conn.execute(
            "INSERT INTO pgq.workers (id, host, pid, queues, concurrency, schedules) "
            "VALUES (%s, 'h', 1, '{default}', 1, %s)",
            [worker_id, list(names)],
        )


async def _register(pool: Pool, *schedules: Schedule) -> None:
    await Scheduler(pool).register(schedules, {})
    await _declare(pool, [s.name for s in schedules])


@pytest.mark.anyio
@pytest.mark.parametrize("missed", ["run_once", "skip"])
async def test_missed_ticks_after_downtime_follow_the_policy(dsn: str, pool: Pool, missed: str) -> None:
    await _register(pool, Schedule("hourly", "noop", cron="0 * * * *", missed=missed, args={"n": 1}))  # type: ignore[arg-type]
    # Five hours of downtime: the schedule's next tick is long past.
    _rows(dsn, "UPDATE pgq.schedules SET next_run_at = date_trunc('hour', now()) - interval '5 hours' RETURNING 1")
    report = await Scheduler(pool).run_once()
    ((now,),) = _rows(dsn, "SELECT now()")
    this_hour = now.replace(minute=0, second=0, microsecond=0)
    (schedule,) = _rows(dsn, "SELECT next_run_at, last_run_at, last_job_id FROM pgq.schedules")
    assert schedule[0] == this_hour + dt.timedelta(hours=1)
    jobs = _rows(dsn, "SELECT id, task, args, run_at, state, idempotency_key FROM pgq.jobs")
    if missed == "run_once" and now - this_hour > GRACE:
        (job,) = jobs
        assert job[1:] == ("noop", {"n": 1}, this_hour, "queued", idempotency_key("hourly", this_hour))
        assert [(r.schedule, r.run_at, r.job_id) for r in report.enqueued] == [("hourly", this_hour, job[0])]
        assert schedule[1:] == (this_hour, job[0])
    elif missed == "skip" and now - this_hour > GRACE:
        assert jobs == [] and report.enqueued == [] and schedule[1:] == (None, None)
    else:  # the current hour's tick is within the grace: it runs for itself either way
        assert [j[3] for j in jobs] == [this_hour]
    assert report.wake_in is not None and 0 < report.wake_in <= 3600


@pytest.mark.anyio
async def test_eight_concurrent_schedulers_enqueue_each_tick_exactly_once(dsn: str, pool: Pool) -> None:
    await _register(pool, Schedule("fast", "noop", every_seconds=1))
    # 40 seconds behind, within the grace: 40-odd ticks, each its own run.
    _rows(dsn, "UPDATE pgq.schedules SET next_run_at = date_trunc('second', now()) - interval '40 seconds' RETURNING 1")
    reports = await asyncio.gather(*(Scheduler(pool).run_once() for _ in range(8)))
    run_ats = [r for (r,) in _rows(dsn, "SELECT run_at FROM pgq.jobs ORDER BY run_at")]
    assert len(run_ats) >= 41 and len(set(run_ats)) == len(run_ats)
    assert {b - a for a, b in itertools.pairwise(run_ats)} == {dt.timedelta(seconds=1)}
    enqueued = collections.Counter(run.run_at for report in reports for run in report.enqueued)
    assert set(enqueued.values()) == {1} and sorted(enqueued) == run_ats


@pytest.mark.anyio
async def test_leader_wakes_for_a_one_second_schedule_while_the_rescuer_keeps_its_interval(
    dsn: str, pool: Pool
) -> None:
    await _register(pool, Schedule("fast", "noop", every_seconds=1))
    rescues: list[float] = []

    async def rescuer() -> None:
        rescues.append(asyncio.get_running_loop().time())

    scheduler = Scheduler(pool)
    leadership = Leadership(pool, "w1", interval=30, duties=[rescuer, scheduler.run_once])
    running = asyncio.create_task(leadership.run())
    try:
        await _wait_for(lambda: len(_rows(dsn, "SELECT 1 FROM pgq.jobs")) >= 3, 20)
    finally:
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)
    assert len(rescues) == 1  # the 30 s interval did not come round again
    run_ats = [r for (r,) in _rows(dsn, "SELECT run_at FROM pgq.jobs ORDER BY run_at")]
    assert {b - a for a, b in itertools.pairwise(run_ats)} == {dt.timedelta(seconds=1)}


async def _wait_for(predicate: Callable[[], bool], timeout: float) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.05)


@pytest.mark.anyio
async def test_pgq_schedules_lists_next_and_last_runs(dsn: str, pool: Pool) -> None:
    assert pgq_cli("schedules", dsn=dsn).stdout.startswith("no schedules")
    await Scheduler(pool).register(periodic_app.schedules.values(), periodic_app.tasks)
    await _declare(pool, ["every_second", "weekly_report"])  # nightly_report: declared by no live worker
    _rows(
        dsn, "UPDATE pgq.schedules SET next_run_at = now() + interval '1 hour' WHERE name = 'every_second' RETURNING 1"
    )
    _rows(dsn, "UPDATE pgq.schedules SET next_run_at = now() WHERE name = 'weekly_report' RETURNING 1")
    report = await Scheduler(pool).run_once()
    assert [r.schedule for r in report.enqueued] == ["weekly_report"]

    result = pgq_cli("schedules", dsn=dsn)
    assert result.returncode == 0, result.stderr
    header, *lines = result.stdout.splitlines()
    assert header.split() == [
        "NAME",
        "TASK",
        "QUEUE",
        "WHEN",
        "TZ",
        "MISSED",
        "NEXT",
        "RUN",
        "LAST",
        "RUN",
        "LAST",
        "JOB",
        "DECLARED",
        "BY",
    ]
    assert sorted(line.split()[0] for line in lines) == ["every_second", "nightly_report", "weekly_report"]
    nightly = next(line for line in lines if line.startswith("nightly_report"))
    assert "30 2 * * *  Europe/Paris  skip" in nightly and re.search(r" -\s+ORPHANED: no live worker since ", nightly)
    assert "every 1s" in next(line for line in lines if line.startswith("every_second"))
    weekly = next(line for line in lines if line.startswith("weekly_report"))
    assert "0 0 * * 0" in weekly and weekly.split()[-4:] == ["1", "1", "live", "worker"]  # the last job's id

    listed = json.loads(pgq_cli("schedules", "--json", dsn=dsn).stdout)
    by_name = {s["name"]: s for s in listed}
    assert by_name["weekly_report"]["last_run_at"].endswith("+00:00")
    assert by_name["nightly_report"]["orphaned"] is True and by_name["nightly_report"]["declared_by"] == []
    volatile = {"next_run_at": None, "last_run_at": None, "updated_at": None, "last_declared_at": None}
    assert by_name["weekly_report"] | volatile == {
        "name": "weekly_report",
        "task": "nightly_report",
        "queue": "periodic",
        "args": {"kind": "weekly"},
        "priority": -1,
        "max_attempts": 2,
        "cron": "0 0 * * 0",
        "every_seconds": None,
        "timezone": "UTC",
        "missed": "run_once",
        "next_run_at": None,
        "last_run_at": None,
        "last_job_id": 1,
        "updated_at": None,
        "declared_by": ["w-test"],
        "orphaned": False,
        "last_declared_at": None,
    }
    with pgq.App(dsn) as app:
        assert [s.name for s in app.list_schedules_sync()] == [s["name"] for s in listed]


# -- orphaned schedules: real worker processes of two apps ---------------------------


@pytest.mark.slow
def test_a_schedule_whose_app_stopped_is_orphaned_not_run_by_another_apps_leader(
    dsn: str, start_worker: WorkerProcesses
) -> None:
    fast = {"PGQ_MAINTENANCE_INTERVAL": "0.5"}
    periodic = start_worker(env=fast, app="tests.apps.periodic:app")
    wait_until(lambda: _rows(dsn, "SELECT 1 FROM pgq.jobs WHERE task = 'every_second'"), 20, "a periodic run")
    start_worker(env=fast, app="tests.apps.basic:app")  # another app: declares no schedule
    wait_until(lambda: len(_rows(dsn, "SELECT 1 FROM pgq.workers")) == 2, 20, "both workers registered")
    live = {s["name"]: s for s in json.loads(pgq_cli("schedules", "--json", dsn=dsn).stdout)}
    assert live["every_second"]["orphaned"] is False and len(live["every_second"]["declared_by"]) == 1

    periodic.send_signal(signal.SIGTERM)
    assert periodic.wait(30) == 0
    wait_until(lambda: len(_rows(dsn, "SELECT 1 FROM pgq.leases")) == 1, 20, "the basic worker leads")
    ((enqueued_before,),) = _rows(dsn, "SELECT count(*) FROM pgq.jobs WHERE task = 'every_second'")
    time.sleep(3)  # six maintenance rounds of the other app's leader, three ticks of the schedule
    assert _rows(dsn, "SELECT count(*) FROM pgq.jobs WHERE task = 'every_second'") == [(enqueued_before,)]
    assert _rows(dsn, "SELECT count(*) FROM pgq.jobs WHERE errors::text LIKE %s", "%UnknownTaskError%") == [(0,)]
    assert "schedule every_second (task every_second) is declared by no live worker since" in start_worker.all_logs()

    table = pgq_cli("schedules", dsn=dsn).stdout
    every = next(line for line in table.splitlines() if line.startswith("every_second"))
    assert "ORPHANED: no live worker since " in every
    (row,) = _rows(
        dsn,
        "SELECT orphaned, declared_by, last_declared_at <= now() FROM pgq.schedule_status WHERE name = 'every_second'",
    )
    assert row == (True, [], True)

    deleted = pgq_cli("schedules", "delete", "every_second", dsn=dsn)
    assert deleted.returncode == 0 and deleted.stdout.startswith("schedule every_second deleted")
    assert _rows(dsn, "SELECT name FROM pgq.schedules WHERE name = 'every_second'") == []
    unknown = pgq_cli("schedules", "delete", "every_second", dsn=dsn)
    assert unknown.returncode == 1
    assert unknown.stderr.strip() == "pgq: error: no schedule named 'every_second' (`pgq schedules` lists them)"


@pytest.mark.anyio
async def test_a_killed_workers_schedules_stay_declared_until_it_is_pruned(dsn: str, pool: Pool) -> None:
    await _register(pool, Schedule("fast", "noop", every_seconds=1))
    _rows(dsn, "UPDATE pgq.schedules SET declared_at = now() - interval '2 hours' RETURNING 1")  # registered then
    _rows(dsn, "UPDATE pgq.workers SET heartbeat_at = now() - interval '1 hour' RETURNING 1")  # then went silent
    (declared,) = _rows(dsn, "SELECT orphaned FROM pgq.schedule_status")
    assert declared == (False,)  # silent, not yet pruned: still counts as live
    async with pool.connection() as conn:
        await conn.execute(QUERIES["worker_prune_dead"], {"lease": dt.timedelta(seconds=15)})
    (row,) = _rows(
        dsn, "SELECT orphaned, now() - last_declared_at BETWEEN '59 minutes' AND '61 minutes' FROM pgq.schedule_status"
    )
    assert row == (True, True)  # last declared at the dead worker's last heartbeat
    _rows(dsn, "UPDATE pgq.schedules SET next_run_at = now() - interval '1 second' RETURNING 1")
    report = await Scheduler(pool).run_once()
    assert report.enqueued == [] and report.wake_in is None
