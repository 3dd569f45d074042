"""Fixtures of the fault suite."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest


@pytest.fixture
def private_server(tmp_path: Path) -> Iterator[Any]:
    """A PostgreSQL of this test's own (pgserver's binaries), so restarting it harms no one."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from pgserver.postgres_server import get_server

        server = get_server(tmp_path / "pgdata", cleanup_mode="delete")
    yield server
    server.cleanup()
