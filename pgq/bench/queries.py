"""The named statements of pgq/bench/queries.sql: ``BENCH_QUERIES["bench_raw_claim"]``.

Kept apart from the product's queries so that a benchmark's ceiling statements can
never be mistaken for (or reached by) the queue's own code paths.
"""

from __future__ import annotations

from importlib import resources
from typing import LiteralString

from pgq._queries import parse_named

BENCH_QUERIES: dict[str, LiteralString] = parse_named(
    resources.files("pgq.bench").joinpath("queries.sql").read_text(encoding="utf-8"), "pgq/bench/queries.sql"
)
