"""Which database serves a read: the streaming replica when it keeps up, else the primary.

With ``PGQ_READ_DATABASE_URL`` set, the API's list, get, statistics, metrics and
dashboard reads go to that replica; writes, wait and the event streams stay on the
primary (they need its NOTIFY and its newest rows). The replica is used only while
it is within ``PGQ_READ_MAX_LAG`` seconds of the primary, and never for a client that
wrote something the replica has not replayed yet (api/positions.py). When it lags or
is unreachable, reads go to the primary (``PGQ_READ_FALLBACK=primary``, the default)
or fail with 503 (``fail``), for setups where the primary must be spared.

How lag is measured: every check (at most every ``CHECK_INTERVAL`` seconds, on demand)
reads the primary's WAL end and the replica's replay position. The replica's lag is
the age of the oldest primary position it has not replayed yet, so an idle primary
never makes an idle replica look late, and a replica whose replay stopped looks later
the longer writes go on without it.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Literal, TypeVar

from starlette.datastructures import MutableHeaders
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

import pgq
from pgq.api import positions
from pgq.api.config import ApiSettings
from pgq.api.errors import UNREACHABLE, ApiError
from pgq.db import replication
from pgq.errors import first_line

log = logging.getLogger("pgq.api.reads")

T = TypeVar("T")
Source = Literal["primary", "replica"]

CHECK_INTERVAL = 0.25
"""Seconds a replica check is trusted before the next read checks again."""
CHECK_TIMEOUT = 2.0
"""A replica that does not answer a check within this is treated as gone."""
REPLICA_ERRORS: tuple[type[BaseException], ...] = (*UNREACHABLE, pgq.SchemaNotMigratedError)


class Reads:
    """Chooses, per read, the database that may answer it; see the module docstring."""

    def __init__(self, primary: pgq.App, config: ApiSettings) -> None:
        self.primary = primary
        self.replica = pgq.App(config.read_url, settings=primary.settings) if config.read_url else None
        self.max_lag = config.read_max_lag
        self.fallback = config.read_fallback
        self.replayed: int | None = None
        """The replica's replay position at the last check (None: unknown)."""
        self.problem: str | None = None
        """Why the replica is not used now: 'lagging', 'unavailable', 'not_a_replica'; None: it is."""
        self._unreplayed: collections.deque[tuple[float, int]] = collections.deque()
        self._checked_at = float("-inf")
        self._checking: asyncio.Lock | None = None

    async def read(self, request: Request, op: Callable[[pgq.App], Awaitable[T]]) -> T:
        """Run ``op`` on the database this request may read from (and say which, in a header)."""
        app = await self._choose(request)
        if app is self.replica:
            request.state.read_source = "replica"  # also on its answers that are errors (404)
            try:
                return await op(app)
            except REPLICA_ERRORS as exc:
                self._lost(exc)
                app = self._without_replica(request)
        request.state.read_source = "primary"
        return await op(app)

    async def after_write(self, response: Response) -> None:
        """Give the client the primary's WAL end after its write, to read it back anywhere."""
        if self.replica is None:
            return
        try:
            position = await self.primary.run(replication.primary_position())
        except REPLICA_ERRORS as exc:  # the write committed; only read-your-writes is lost
            log.warning("could not read the primary's WAL position after a write: %s", exc)
            return
        positions.remember(response, position)

    async def close(self) -> None:
        if self.replica is not None:
            await self.replica.close()

    # -- choosing ---------------------------------------------------------------------

    async def _choose(self, request: Request) -> pgq.App:
        position = positions.requested(request)  # a bad header is a 400 even without a replica
        if self.replica is None:
            return self.primary
        await self._check()
        if position is not None and (self.replayed is None or self.replayed < position):
            await self._check(force=True)
            if self.replayed is None or self.replayed < position:
                return self.primary  # the client's own write is not on the replica yet
        if self.problem is None:
            return self.replica
        return self._without_replica(request)

    def _without_replica(self, request: Request) -> pgq.App:
        if self.fallback == "fail":
            raise ApiError(
                503,
                f"the read replica is {self.problem.replace('_', ' ') if self.problem else 'unavailable'} "
                "and PGQ_READ_FALLBACK=fail keeps reads off the primary; retry shortly",
                code=f"replica_{self.problem or 'unavailable'}",
                details={"max_lag_seconds": self.max_lag},
                headers={"Retry-After": "1"},
            )
        return self.primary

    async def _check(self, *, force: bool = False) -> None:
        """Refresh the replica's state when the last check is older than CHECK_INTERVAL.

        One check runs at a time; reads arriving meanwhile use the last known state
        instead of waiting for a replica that may not answer.
        """
        assert self.replica is not None
        if self._checking is None:
            self._checking = asyncio.Lock()
        if self._checking.locked() or (not force and time.monotonic() - self._checked_at < CHECK_INTERVAL):
            return
        async with self._checking:
            try:
                primary_at, replica = await asyncio.wait_for(
                    asyncio.gather(
                        self.primary.run(replication.primary_position()),
                        self.replica.run(replication.replica_position()),
                    ),
                    CHECK_TIMEOUT,
                )
            except REPLICA_ERRORS as exc:
                self._lost(exc)
                return
            finally:
                self._checked_at = time.monotonic()
            self._measured(primary_at, replica)

    def _measured(self, primary_at: int, replica: replication.ReplicaPosition) -> None:
        now = time.monotonic()
        self.replayed = replica.replayed
        self._unreplayed.append((now, primary_at))
        while self._unreplayed and self.replayed is not None and self.replayed >= self._unreplayed[0][1]:
            self._unreplayed.popleft()
        lag = now - self._unreplayed[0][0] if self._unreplayed else 0.0
        if not replica.in_recovery:
            self._set_problem("not_a_replica", "PGQ_READ_DATABASE_URL is not a replica (promoted?)")
        elif lag > self.max_lag:
            self._set_problem("lagging", f"the replica is {lag:.1f} s behind (PGQ_READ_MAX_LAG={self.max_lag:g})")
        else:
            self._set_problem(None, "the replica has caught up: reads use it again")

    def _lost(self, exc: BaseException) -> None:
        self.replayed = None
        self._set_problem("unavailable", f"the read replica does not answer: {first_line(exc)}")

    def _set_problem(self, problem: str | None, message: str) -> None:
        if problem != self.problem:
            where = "the primary" if self.fallback == "primary" else "nowhere (503)"
            if problem is None:
                log.info("%s", message)
            else:
                log.warning("%s; reads go to %s until it is back", message, where)
        self.problem = problem

    # -- saying where a read came from --------------------------------------------------

    def middleware(self, app: ASGIApp) -> ASGIApp:
        """Adds ``Pgq-Read-Source: replica|primary`` to every answer a read was chosen for."""

        async def labelled(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != "http" or self.replica is None:
                await app(scope, receive, send)
                return

            async def sending(message: Message) -> None:
                source = scope.get("state", {}).get("read_source")
                if message["type"] == "http.response.start" and source:
                    MutableHeaders(scope=message).append(positions.SOURCE_HEADER, source)
                await send(message)

            await app(scope, receive, sending)

        return labelled
