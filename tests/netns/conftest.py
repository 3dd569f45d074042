"""Fixtures of the network-namespace suite: a bridge, a PostgreSQL listening on it, and
"hosts" (network namespaces) joined to it, all made by the tests and removed after them.

Skipped with the reason when this machine cannot (not root, no ``ip netns``, no nft).
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.netns.hosts import Bridge, Cluster, Host, unavailable

_counter = itertools.count()


@pytest.fixture(scope="session")
def bridge() -> Iterator[Bridge]:
    reason = unavailable()
    if reason is not None:
        pytest.skip(reason)
    net = Bridge()
    try:
        net.up()
        yield net
    finally:
        net.down()


@pytest.fixture(scope="session")
def cluster(bridge: Bridge) -> Iterator[Cluster]:
    """A throwaway PostgreSQL listening on the bridge address only."""
    server = Cluster(bridge)
    try:
        server.start()
        yield server
    finally:
        server.stop()


@pytest.fixture
def net_dsn(cluster: Cluster) -> Iterator[str]:
    """A fresh migrated database on ``cluster``, reached over the bridge."""
    with cluster.database(f"pgq_netns_{os.getpid()}_{next(_counter)}") as dsn:
        yield dsn


@pytest.fixture
def hosts(bridge: Bridge, tmp_path: Path) -> Iterator[Callable[[int], list[Host]]]:
    """``hosts(n)``: n new namespaces on the bridge; their processes and links go at the end."""

    def make(n: int) -> list[Host]:
        start = len(bridge.hosts)
        return [bridge.host(start + i) for i in range(n)]

    try:
        yield make
    finally:
        bridge.remove_hosts()
