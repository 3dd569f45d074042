"""pgq.listen.ListenClient, the LISTEN session the worker and the API share."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import AsyncIterator

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict, make_conninfo

import pgq
from pgq._queries import QUERIES
from pgq.listen import ListenClient
from pgq.settings import Settings

pytestmark = pytest.mark.anyio
log = logging.getLogger("tests.listen")


class _Proxy:
    """A TCP relay to PostgreSQL that can go silent without closing anything: a half-open link."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.silent = False
        self.port = 0
        self._writers: list[asyncio.StreamWriter] = []

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError):
            while data := await reader.read(65536):
                if not self.silent:
                    writer.write(data)
                    await writer.drain()
        writer.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(*self.target)
        self._writers += [writer, up_writer]
        await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))

    @contextlib.asynccontextmanager
    async def serving(self) -> AsyncIterator[None]:
        server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = server.sockets[0].getsockname()[1]
        try:
            async with server:
                yield
        finally:
            for writer in self._writers:
                writer.close()
                with contextlib.suppress(OSError):
                    await writer.wait_closed()
            server.close()
            await server.wait_closed()


async def _notify(dsn: str, channel: str, payload: str) -> None:
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        await conn.execute("SELECT pg_notify(%s, %s)", (channel, payload))


async def test_a_silent_connection_is_caught_by_the_self_ping_and_replaced(
    dsn: str, caplog: pytest.LogCaptureFixture
) -> None:
    params = conninfo_to_dict(dsn)
    if str(params.get("host", "")).startswith("/"):
        pytest.skip("the proxy relays TCP; this server listens on a socket")
    proxy = _Proxy(str(params["host"]), int(str(params.get("port", 5432))))
    got: list[str] = []
    connects = 0

    def connected() -> None:
        nonlocal connects
        connects += 1

    async with proxy.serving():
        through_proxy = make_conninfo(dsn, host="127.0.0.1", port=proxy.port)
        client = ListenClient(
            lambda: dsn if proxy.silent else through_proxy,
            QUERIES["worker_listen"],
            lambda n: got.append(n.payload),
            log=log,
            fallback="polling",
            application_name="pgq-test-listener",
            on_connect=connected,
            health_interval=0.3,
            ping_timeout=0.5,
        )
        task = asyncio.create_task(client.run())
        try:
            await asyncio.wait_for(client.connected.wait(), 10)
            await _notify(dsn, "pgq_jobs", "before")
            await asyncio.sleep(0.5)
            proxy.silent = True  # TCP stays open, nothing comes back
            for _ in range(100):
                if connects == 2:
                    break
                await asyncio.sleep(0.05)
            assert connects == 2, "the silent connection was not replaced"
            await _notify(dsn, "pgq_jobs", "after")
            await asyncio.sleep(0.5)
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    assert got == ["before", "after"]  # pings are not handed to the user
    messages = [r.getMessage() for r in caplog.records if r.name == "tests.listen"]
    assert messages == ["LISTEN is not working (its own ping did not come back); polling", "LISTEN connection restored"]
    assert messages.count("LISTEN connection restored") == 1


async def test_an_outage_is_logged_once_and_reconnects_with_backoff(dsn: str, caplog: pytest.LogCaptureFixture) -> None:
    down = True
    unreachable = make_conninfo(dsn, host="127.0.0.1", port=1, connect_timeout=1)
    client = ListenClient(
        lambda: unreachable if down else dsn,
        QUERIES["job_events_listen"],
        lambda n: None,
        log=log,
        fallback="waiting",
        application_name="pgq-test-listener",
    )
    task = asyncio.create_task(client.run())
    try:
        await asyncio.sleep(2.0)  # several failed attempts (0.2 s, 0.4 s, 0.8 s ... apart)
        assert not client.connected.is_set()
        down = False
        await asyncio.wait_for(client.connected.wait(), 15)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    messages = [r.getMessage() for r in caplog.records if r.name == "tests.listen"]
    broken = [m for m in messages if m.startswith("LISTEN is not working")]
    assert broken == [
        f"LISTEN is not working (cannot connect to PostgreSQL at {unreachable}: connection failed: "
        'connection to server at "127.0.0.1", port 1 failed: Connection refused); waiting'
    ]
    assert messages.count("LISTEN connection restored") == 1


def test_a_listen_url_libpq_cannot_parse_is_a_config_error_naming_it(dsn: str) -> None:
    settings = dataclasses.replace(Settings(), listen_url="not a dsn")
    with pytest.raises(pgq.ConfigError, match="PGQ_LISTEN_URL is not a valid PostgreSQL DSN"):
        pgq.App(dsn, settings=settings)
    assert Settings.from_env({"PGQ_LISTEN_URL": " host=db port=5432 "}).listen_url == "host=db port=5432"
    assert pgq.App(dsn).listen_dsn == dsn  # unset: LISTEN goes where everything else goes


async def test_the_silence_is_counted_from_the_last_notification(dsn: str) -> None:
    """A link that goes quiet right after a notification is questioned health_interval
    after that notification, not at the end of the next whole quiet interval."""
    params = conninfo_to_dict(dsn)
    if str(params.get("host", "")).startswith("/"):
        pytest.skip("the proxy relays TCP; this server listens on a socket")
    proxy = _Proxy(str(params["host"]), int(str(params.get("port", 5432))))
    health = 2.0
    got: list[str] = []
    lost = asyncio.Event()
    async with proxy.serving():
        client = ListenClient(
            lambda: dsn if proxy.silent else make_conninfo(dsn, host="127.0.0.1", port=proxy.port),
            QUERIES["worker_listen"],
            lambda n: got.append(n.payload),
            log=log,
            fallback="polling",
            application_name="pgq-test-listener",
            on_disconnect=lost.set,
            health_interval=health,
            ping_timeout=0.3,
        )
        task = asyncio.create_task(client.run())
        try:
            await asyncio.wait_for(client.connected.wait(), 10)
            await _notify(dsn, "pgq_jobs", "last")
            for _ in range(500):
                if got == ["last"]:
                    break
                await asyncio.sleep(0.01)
            proxy.silent = True
            heard = asyncio.get_running_loop().time()
            await asyncio.wait_for(lost.wait(), 10)
            gave_up = asyncio.get_running_loop().time() - heard
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    # health_interval + ping_timeout after the notification; counted per whole interval
    # it would have been about twice health_interval.
    assert health < gave_up < health + 1.2, gave_up
