"""A worker host cut off by nftables inside its namespace: its TCP connections stay open
but nothing crosses them (the half-open case). Its jobs are rescued and finish on another
host, its listener gives up on LISTEN and polls, and once the network is back its late
outcomes are rejected and it goes on working without a restart. Each time is measured
and printed (pytest -s); the README's "Running at scale" quotes them."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, LiteralString

import psycopg
import pytest

import pgq
from tests.netns.hosts import Host, times_until, wait_for

pytestmark = pytest.mark.slow

# Short intervals so the whole story fits in a test: heartbeat every 1 s, rescue after 4 s
# of silence, the leader's lease 3 s.
FAST = {
    "PGQ_HEARTBEAT_INTERVAL": "1",
    "PGQ_RESCUE_AFTER": "4",
    "PGQ_MAINTENANCE_INTERVAL": "1",
    "PGQ_POLL_INTERVAL": "1",
}
HELD = 4  # jobs running on the host when it is cut off
SECONDS = 5.0  # how long each of them runs


def _rows(dsn: str, query: LiteralString, *params: object) -> list[tuple[Any, ...]]:
    with psycopg.connect(dsn) as conn:
        return conn.execute(query, params).fetchall()


def _count(dsn: str, query: LiteralString, *params: object) -> int:
    return int(_rows(dsn, query, *params)[0][0])


def test_a_partitioned_worker_host_is_rescued_and_rejoins(
    net_dsn: str, hosts: Callable[[int], list[Host]], tmp_path: Path
) -> None:
    cut, other = hosts(2)
    cut_log, other_log = tmp_path / "cut.log", tmp_path / "other.log"
    with pgq.App(net_dsn) as app:
        held = [j.id for j in app.enqueue_many_sync([{"task": "hold", "args": {"seconds": SECONDS}}] * HELD)]
    proc = cut.worker(net_dsn, cut_log, "--concurrency", "4", "--queues", "default,only_cut", env=FAST)
    wait_for(
        lambda: _count(net_dsn, "SELECT count(*) FROM netns_runs WHERE host = %s", cut.label) == HELD, 20, "claims"
    )
    other.worker(net_dsn, other_log, "--concurrency", "4", env=FAST)
    wait_for(lambda: _count(net_dsn, "SELECT count(*) FROM pgq.workers") == 2, 20, "the second host's worker")

    cut.partition()
    cut_off = times_until(
        {
            "rescued": lambda: _count(net_dsn, "SELECT count(*) FROM netns_runs WHERE host = %s", other.label) == HELD,
            "listen_lost": lambda: "LISTEN is not working" in cut_log.read_text(),
            "finished": lambda: (
                _count(
                    net_dsn,
                    "SELECT count(*) FROM pgq.jobs WHERE state = 'succeeded' AND result = %s",
                    f'"{other.label}"',
                )
                == HELD
            ),
        },
        45,
    )
    assert "polling every 1.0 s until it is back" in cut_log.read_text()
    # The rescue lease (4 s) counts from the last heartbeat, which came up to one heartbeat
    # interval (1 s) before the cut; at most a maintenance round later, and a leader change
    # if the cut-off host led.
    assert 4.0 - 1.0 <= cut_off["rescued"] < 4 + 1 + 3 + 3, cut_off
    # Keepalives (5 s idle, probes every 2 s) and tcp_user_timeout (10 s): 10 to 15 s.
    assert cut_off["listen_lost"] < 16, cut_off

    cut.heal()
    t1 = time.monotonic()
    wait_for(lambda: cut_log.read_text().count("late outcome rejected") == HELD, 30, "the late outcomes to be rejected")
    rejected = time.monotonic() - t1
    # It carries on, the same process: new work only it serves is done by it.
    with pgq.App(net_dsn) as app:
        fresh = [j.id for j in app.enqueue_many_sync([{"task": "record", "queue": "only_cut"}] * 3)]
    wait_for(
        lambda: (
            _count(
                net_dsn,
                "SELECT count(*) FROM pgq.jobs WHERE id = ANY(%s) AND state = 'succeeded' AND result = %s",
                fresh,
                f'"{cut.label}"',
            )
            == 3
        ),
        30,
        "the healed host to run new jobs",
    )
    working = time.monotonic() - t1
    wait_for(lambda: "LISTEN connection restored" in cut_log.read_text(), 20, "LISTEN to be back")
    relisten = time.monotonic() - t1
    assert proc.poll() is None  # never restarted

    final = _rows(net_dsn, "SELECT state, attempt, result FROM pgq.jobs WHERE id = ANY(%s)", held)
    assert final == [("succeeded", 2, other.label)] * HELD  # the rescuer's outcomes stuck, not the late ones
    runs = _rows(net_dsn, "SELECT host, attempt, count(*) FROM netns_runs WHERE job_id = ANY(%s) GROUP BY 1, 2", held)
    assert sorted(runs) == [(cut.label, 1, HELD), (other.label, 2, HELD)]
    print(
        f"\npartitioned worker host: jobs running again elsewhere {cut_off['rescued']:.1f} s after the cut, "
        f"finished there {cut_off['finished']:.1f} s; its listener gave up after {cut_off['listen_lost']:.1f} s "
        "and polled; "
        f"after healing: late outcomes rejected within {rejected:.1f} s, new jobs run within {working:.1f} s, "
        f"LISTEN back within {relisten:.1f} s (no restart)"
    )
