"""A real uvicorn server in the test's event loop, and light SSE / WebSocket clients.

The server runs in-process so a test can look at the subscriptions' buffers directly;
the clients are raw sockets (SSE) and the websockets library, so hundreds of them fit
in one test and one of them can stop reading on purpose.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import socket
import struct
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any
from urllib.parse import urlencode

import uvicorn
from starlette.applications import Starlette
from websockets.asyncio.client import ClientConnection, connect

import pgq
from pgq.api import create_app
from pgq.api.events import JobEvents
from tests.conftest import READ_TOKEN, api_settings


async def _connect(address: str, *, stall: bool) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A raw connection to ``host:port``; a stalling one has small buffers, so that not
    reading soon pushes back on the server."""
    host, port = address.split(":")
    sock = socket.socket()
    if stall:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, (host, int(port)))
    return await asyncio.open_connection(sock=sock, limit=4096 if stall else 2**20)


class _InLoopServer(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:  # the test runner keeps its own signal handlers
        yield


@contextlib.asynccontextmanager
async def serve_api(
    dsn: str, *, send_buffer: int | None = None, **options: Any
) -> AsyncIterator[tuple[str, Starlette]]:
    """``create_app(**options)`` served by uvicorn on a free loopback port; yields (host:port, app).

    ``send_buffer`` fixes the kernel's send buffer of every connection (no autotuning up
    to megabytes), so that a client that stops reading pushes back on the server soon.
    """
    options.setdefault("settings", api_settings())
    app = create_app(pgq.App(dsn), **options)
    sock = socket.socket()
    if send_buffer is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, send_buffer)
    sock.bind(("127.0.0.1", 0))
    address = f"127.0.0.1:{sock.getsockname()[1]}"
    config = uvicorn.Config(
        app, log_config=None, lifespan="on", ws="websockets-sansio", backlog=2048, timeout_graceful_shutdown=5
    )
    server = _InLoopServer(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        assert not task.done(), "the server did not start"
        await asyncio.sleep(0.02)
    try:
        yield address, app
    finally:
        app.state.job_events.shutdown_soon()
        server.should_exit = True
        await asyncio.wait_for(task, 30)
        sock.close()


def job_events(app: Starlette) -> JobEvents:
    events: JobEvents = app.state.job_events
    return events


async def until_subscribed(app: Starlette, count: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while job_events(app).subscriber_count < count:
        assert time.monotonic() < deadline, f"{job_events(app).subscriber_count} of {count} clients subscribed"
        await asyncio.sleep(0.02)


Event = tuple[str, dict[str, Any], float]
"""An event's name, its data and when it arrived (time.monotonic())."""


class SseClient:
    """GET /events over a raw socket; ``open(stall=True)`` for a client that will not read for a while."""

    def __init__(self, address: str, params: dict[str, Any] | None = None, token: str | None = READ_TOKEN) -> None:
        self.address = address
        self.params = params or {}
        self.token = token
        self.status = 0
        self.headers: dict[str, str] = {}
        self.events: list[Event] = []
        self.pings = 0
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def open(self, *, stall: bool = False) -> None:
        self._reader, self._writer = await _connect(self.address, stall=stall)
        query = urlencode(self.params, doseq=True)
        auth = f"Authorization: Bearer {self.token}\r\n" if self.token else ""
        request = f"GET /events?{query} HTTP/1.1\r\nHost: {self.address}\r\n{auth}Accept: text/event-stream\r\n\r\n"
        self._writer.write(request.encode())
        await self._writer.drain()
        status_line = await self._reader.readline()
        self.status = int(status_line.split()[1])
        while (line := await self._reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode().partition(":")
            self.headers[name.strip().lower()] = value.strip()

    async def read_body(self) -> str:
        """The whole body of a response that ends (an error)."""
        assert self._reader is not None
        return (await self._reader.read(int(self.headers["content-length"]))).decode()

    async def _chunk(self) -> bytes:
        assert self._reader is not None
        size = int((await self._reader.readline()).strip(), 16)
        data = await self._reader.readexactly(size + 2)
        return data[:-2]

    async def read(self, count: int, timeout: float = 30) -> list[Event]:
        """Read until ``count`` events (not pings) arrived in all; return them all."""
        async with asyncio.timeout(timeout):
            pending = b""
            while len(self.events) < count:
                chunk = await self._chunk()
                if not chunk:
                    break  # the stream ended
                pending += chunk
                while b"\n\n" in pending:
                    block, pending = pending.split(b"\n\n", 1)
                    self._parse(block.decode())
        return self.events

    async def read_to_end(self, timeout: float = 30) -> bool:
        """Read until the server ends the stream; True when it ended cleanly (last chunk)."""
        async with asyncio.timeout(timeout):
            while True:
                try:
                    chunk = await self._chunk()
                except (asyncio.IncompleteReadError, ValueError, ConnectionError):
                    return False  # the connection was dropped mid-stream
                if not chunk:
                    return True
                for block in chunk.decode().split("\n\n"):
                    if block.strip():
                        self._parse(block)

    def _parse(self, block: str) -> None:
        if block.startswith(":"):
            self.pings += 1
            return
        fields = dict(line.split(": ", 1) for line in block.splitlines())
        self.events.append((fields["event"], json.loads(fields["data"]), time.monotonic()))

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()


def ws_url(address: str, params: dict[str, Any] | None = None) -> str:
    return f"ws://{address}/ws?{urlencode(params or {}, doseq=True)}"


def ws_connect(address: str, params: dict[str, Any] | None = None, token: str | None = READ_TOKEN) -> connect:
    headers = {"Authorization": f"Bearer {token}"} if token else None
    return connect(ws_url(address, params), additional_headers=headers, open_timeout=30, max_queue=None)


async def ws_read(ws: ClientConnection, count: int, into: list[Event], timeout: float = 30) -> list[Event]:
    async with asyncio.timeout(timeout):
        while len(into) < count:
            message = json.loads(await ws.recv())
            into.append((message.pop("type"), message, time.monotonic()))
    return into


class RawWebSocket:
    """A WebSocket client on a raw socket that reads only when told to (a stalled browser tab)."""

    def __init__(self, address: str, params: dict[str, Any] | None = None, token: str | None = READ_TOKEN) -> None:
        self.address = address
        self.params = params
        self.token = token
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def open(self, *, stall: bool = False) -> int:
        """Send the handshake; the HTTP status of the answer (101 when accepted)."""
        self._reader, self._writer = await _connect(self.address, stall=stall)
        key = base64.b64encode(os.urandom(16)).decode()
        auth = f"Authorization: Bearer {self.token}\r\n" if self.token else ""
        path = ws_url(self.address, self.params).removeprefix(f"ws://{self.address}")
        self._writer.write(
            f"GET {path} HTTP/1.1\r\nHost: {self.address}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n{auth}\r\n".encode()
        )
        await self._writer.drain()
        status = int((await self._reader.readline()).split()[1])
        while await self._reader.readline() not in (b"\r\n", b""):
            pass
        return status

    async def frames(self, timeout: float = 30) -> AsyncIterator[tuple[int, bytes]]:
        """(opcode, payload) of each frame the server sent, until the connection ends."""
        assert self._reader is not None
        async with asyncio.timeout(timeout):
            while True:
                try:
                    head = await self._reader.readexactly(2)
                except asyncio.IncompleteReadError:
                    return
                size = head[1] & 0x7F
                if size == 126:
                    size = struct.unpack("!H", await self._reader.readexactly(2))[0]
                elif size == 127:
                    size = struct.unpack("!Q", await self._reader.readexactly(8))[0]
                yield head[0] & 0x0F, await self._reader.readexactly(size)

    async def close_code(self, timeout: float = 30) -> tuple[int | None, list[dict[str, Any]]]:
        """Read to the end: the close frame's code (None without one) and the JSON messages before it."""
        messages: list[dict[str, Any]] = []
        async for opcode, payload in self.frames(timeout):
            if opcode == 0x1:
                messages.append(json.loads(payload))
            elif opcode == 0x8:
                return struct.unpack("!H", payload[:2])[0], messages
        return None, messages

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
