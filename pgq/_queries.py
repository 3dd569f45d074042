"""Loads the named queries of pgq/schema/queries.sql.

All SQL lives in that one file so that `grep job_claim` finds both the statement and
every caller. Queries are used by name: ``QUERIES["job_claim"]``.
"""

from __future__ import annotations

import re
from importlib import resources
from typing import LiteralString

_HEADER = re.compile(r"^-- name: (?P<name>[a-z_]+)\s*$", re.MULTILINE)


def parse_named(text: str, source: str) -> dict[str, LiteralString]:
    """The ``-- name: x`` statements of one SQL file, by name."""
    queries: dict[str, LiteralString] = {}
    headers = list(_HEADER.finditer(text))
    for header, following in zip(headers, [*headers[1:], None], strict=True):
        end = following.start() if following else len(text)
        body = text[header.end() : end].strip()
        name = header["name"]
        if name in queries:
            raise ValueError(f"query {name!r} is defined twice in {source}")
        # Typed LiteralString: the text comes from our own package file, never from
        # user input, and values only ever travel as parameters.
        queries[name] = body
    return queries


def schema_sql(name: str = "schema.sql") -> str:
    """A whole SQL file of pgq/schema: the current DDL, or roles.sql."""
    return resources.files("pgq.schema").joinpath(name).read_text(encoding="utf-8")


QUERIES: dict[str, LiteralString] = parse_named(schema_sql("queries.sql"), "pgq/schema/queries.sql")
