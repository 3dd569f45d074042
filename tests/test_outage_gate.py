"""When the rescuer may judge again after an outage: pure arithmetic, no database."""

from __future__ import annotations

import math
import time

import psycopg

from pgq.worker.outage import RECONNECT_LAG_MAX, Outage, reconnect_lag


def test_never_down_means_no_wait() -> None:
    assert Outage("host=x").settled_in(30.0) == 0.0


def test_while_down_the_rescuer_waits_at_least_a_lease() -> None:
    outage = Outage("host=x")
    outage.failed("claiming jobs", psycopg.OperationalError("server closed the connection"))
    assert outage.settled_in(4.0) == 4.0


def test_after_an_outage_the_wait_covers_the_slowest_reconnect_and_a_lease() -> None:
    outage = Outage("host=x")
    outage.failed("claiming jobs", psycopg.OperationalError("server closed the connection"))
    assert outage.since is not None
    outage.since -= 6.0  # down for 6 s
    outage.ok()
    back = outage.recovered_at
    assert math.isclose(outage.last_outage, 6.0, abs_tol=0.5)
    lag = reconnect_lag(outage.last_outage)
    assert 7.0 < lag < 9.0
    assert math.isclose(outage.settled_in(4.0, now=back), lag + 4.0)
    assert outage.settled_in(4.0, now=back + lag + 4.0) == 0.0


def test_the_reconnect_lag_is_bounded() -> None:
    assert reconnect_lag(10_000.0) == RECONNECT_LAG_MAX


def test_an_unexpected_error_is_not_an_outage() -> None:
    outage = Outage("host=x")
    outage.failed("claiming jobs", psycopg.errors.UndefinedFunction("function pgq.claim_jobs does not exist"))
    assert outage.since is None and outage.settled_in(4.0, now=time.monotonic()) == 0.0
