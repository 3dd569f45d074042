"""The typed query layer: one function per named statement of pgq/schema/queries.sql.

Each function owns its statement's parameters and returns typed rows, so a call site
never builds a parameter dict or unpacks a tuple, and a changed ``RETURNING`` clause
fails here, under mypy and the tests, instead of at a distant call site. Grouped per
table or concern: ``jobs`` (the worker's and the leader's hot path), ``enqueue``,
``job_admin``, ``queues``, ``schedules``, ``workers``, ``leases``, ``schema``,
``dashboard`` and ``events``.

Two shapes, each where it pays: the worker's statements are plain async functions on an
open connection (the caller decides about pooling, pipelines and transactions); the
producer's and the API's are sans-IO operations (``driver.Op``) that ``App.run`` and
``App.run_sync`` drive, so each is written once for sync and async callers.
"""

from __future__ import annotations

from typing import Any

import psycopg

Conn = psycopg.AsyncConnection[Any]
