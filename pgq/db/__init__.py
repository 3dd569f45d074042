"""The typed query layer: one function per named statement of pgq/schema/queries.sql.

Each function owns its statement's parameters and returns typed rows, so a call site
never builds a parameter dict or unpacks a tuple, and a changed ``RETURNING`` clause
fails here, under mypy and the tests, instead of at a distant call site. Grouped per
table: ``jobs``, ``workers``, ``leases``. Functions take an open connection, so the
caller decides about pooling, pipelines and transactions.

So far the worker's and the leader services' statements go through here; the
producer (``pgq/_ops.py``), the scheduler and the API still use ``QUERIES`` directly.
"""

from __future__ import annotations

from typing import Any

import psycopg

Conn = psycopg.AsyncConnection[Any]
