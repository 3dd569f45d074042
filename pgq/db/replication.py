"""WAL positions of a primary and its streaming replica, for reading from the replica
only what it has already replayed (api/reads.py)."""

from __future__ import annotations

import dataclasses

from pgq._queries import QUERIES
from pgq.db.driver import Op


@dataclasses.dataclass(frozen=True, slots=True)
class ReplicaPosition:
    in_recovery: bool
    """False: the server is not a replica (a promoted one, or a primary given by mistake)."""
    replayed: int | None
    """Bytes of WAL replayed since 0/0 (None: nothing replayed yet)."""


def primary_position() -> Op[int]:
    """``wal_position_primary``: where the primary's WAL ends now, in bytes since 0/0."""
    (row,) = yield QUERIES["wal_position_primary"], {}
    return int(row["position"])


def replica_position() -> Op[ReplicaPosition]:
    """``wal_position_replica``: how far the replica has replayed."""
    (row,) = yield QUERIES["wal_position_replica"], {}
    replayed = row["replayed"]
    return ReplicaPosition(bool(row["in_recovery"]), None if replayed is None else int(replayed))
