"""What the worker says when the database fails it, and when it may trust it again.

A lost database is said once when it goes and once when it is back, not once per
failed statement. Any other error (a bug, a dropped function, a statement the server
refuses) is logged with its real cause once per run of failures, and the loop that
hit it keeps going with backoff: a worker exits only when told to.

The time of the last recovery also gates the rescuer (see ``settled_in``): right after
an outage every worker's heartbeat is late, and judging them at once would re-run jobs
whose outcome is still on its way.
"""

from __future__ import annotations

import logging
import math
import time

import psycopg

from pgq import _db

log = logging.getLogger("pgq.worker")

RECONNECT_LAG_MAX = 300.0
"""The most a worker's reconnect is assumed to lag behind the database's return (psycopg's
pool gives up reconnecting after 300 s, as the completer gives up an outcome write)."""


def reconnect_lag(outage: float) -> float:
    """How long after the database returns a worker's pool may still be waiting to retry.

    psycopg_pool retries a lost connection after 1 s, doubling the delay each time
    (±10 % jitter): the attempt after the database is back comes at most about as long
    after it as the outage lasted, plus the first second.
    """
    return min(RECONNECT_LAG_MAX, 1.1 * outage + 1.0)


def real_cause(exc: BaseException) -> BaseException:
    """The database error that started this one. psycopg reports a connection killed
    inside a pipeline as "cannot exit pipeline mode while busy", raised while leaving
    the pipeline; the error that broke it is the context of that one."""
    seen: set[int] = set()
    cause = exc
    while id(cause) not in seen:
        seen.add(id(cause))
        inner = cause.__cause__ or cause.__context__
        if not isinstance(inner, psycopg.Error):
            break
        cause = inner
    return cause


def describe(exc: BaseException) -> str:
    """``Type: first line of the message`` of the real cause."""
    cause = real_cause(exc)
    text = (str(cause).strip().splitlines() or [""])[0]
    if "pipeline mode while busy" in text:
        # libpq noticed nothing yet: the connection died between the pipeline's last
        # result and its end (a killed backend, a dropped link), not a refused statement.
        text = f"the connection broke inside a pipeline ({text})"
    return f"{type(cause).__name__}: {text}" if text else type(cause).__name__


class Outage:
    """The state of one worker's link to its database, shared by all its loops."""

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        self.since: float | None = None
        """Monotonic time the database became unreachable; None while it is reachable."""
        self.recovered_at = -math.inf
        """Monotonic time it was last reachable again after an outage."""
        self.last_outage = 0.0
        """How long the last outage lasted, as this process saw it (seconds)."""
        self._troubled: set[str] = set()
        """Activities whose last attempt hit an unexpected error (said once until they work)."""

    def failed(self, what: str, exc: BaseException) -> None:
        """``what`` (e.g. "claiming jobs") failed with ``exc``; the caller backs off."""
        sqlstate = getattr(exc, "sqlstate", None) or ""
        if sqlstate.startswith("40"):  # deadlock or serialization failure: the database is fine
            log.warning("%s: transaction rolled back (%s), retrying", what, type(exc).__name__)
            return
        if isinstance(exc, psycopg.OperationalError):
            if self.since is None:
                self.since = time.monotonic()
                log.warning(
                    "database unreachable while %s (%s; %s); retrying with backoff",
                    what,
                    describe(exc),
                    _db.redact(self.dsn),
                )
            return
        if what not in self._troubled:
            self._troubled.add(what)
            log.error(
                "unexpected error while %s (%s); retrying with backoff, the worker keeps serving",
                what,
                describe(exc),
                exc_info=exc,
            )

    def ok(self, what: str | None = None) -> None:
        """A statement went through (``what``: the activity that had it)."""
        if self.since is not None:
            now = time.monotonic()
            self.last_outage = now - self.since
            log.warning("database reachable again after %.1f s", self.last_outage)
            self.since = None
            self.recovered_at = now
        if what is not None and what in self._troubled:
            self._troubled.discard(what)
            log.warning("%s works again", what)

    def settled_in(self, window: float, now: float | None = None) -> float:
        """Seconds until every worker that is alive has had ``window`` seconds of
        database to check in after the last outage: this process's own return, plus the
        longest another worker's pool may lag behind (``reconnect_lag``), plus ``window``
        (0: that time has passed; while the database is down, at least ``window``)."""
        if self.since is not None:
            return window
        now = time.monotonic() if now is None else now
        return max(0.0, self.recovered_at + reconnect_lag(self.last_outage) + window - now)
