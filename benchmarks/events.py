"""Live updates: how long a job's change takes to reach GET /events and GET /ws clients.

    DATABASE_URL=postgresql://postgres@127.0.0.1/postgres .venv/bin/python -m benchmarks.events

In one throwaway database, a real `pgq api` process serves; this process holds the
clients: 1 SSE and 1 WebSocket client, then --clients of each. Two of them (one of each
kind) parse and time what they get; the others read and discard the bytes, so that the
numbers measure the server's fan-out, not this process parsing 400 streams. A producer changes one
job at a time (queued → running) at --rate per second, --changes times, and every
client notes when each change arrives. Latency is from the producer having its commit
acknowledged to the client having parsed the event (the notification leaves at commit,
so a few arrive before the acknowledgement: those count as 0); the commit itself
(statement, WAL flush) is reported apart.
Then the table gets --rows finished jobs (default 1,000,000) and the same runs again.
Prints p50/p99/max per client kind, the ratios to the first run, the API's RSS, and the
API process's CPU time per change (the fan-out's cost, which does not depend on how busy
the machine is, unlike the latencies).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import psycopg
from websockets.asyncio.client import ClientConnection, connect

from benchmarks import command_line
from pgq.app import App
from pgq.bench.database import fresh_database, server_settings

TOKEN = "bench-read-token"  # noqa: S105 - a throwaway token for the throwaway server
HEADERS = {"Authorization": f"Bearer {TOKEN}"}


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux): what the fan-out costs, whatever the load."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


def start_api(dsn: str) -> tuple[subprocess.Popen[bytes], str]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {**os.environ, "DATABASE_URL": dsn, "PGQ_API_READ_TOKENS": TOKEN}
    proc = subprocess.Popen(
        [sys.executable, "-m", "pgq", "api", "--port", str(port)], env=env, stderr=subprocess.DEVNULL
    )
    address = f"127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://{address}/health", timeout=2).status_code == 200:
                return proc, address
        except httpx.TransportError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("pgq api did not start")


class SseReader:
    """GET /events on a raw socket: when each job id's event arrived."""

    def __init__(self) -> None:
        self.arrived: dict[int, float] = {}

    async def run(self, address: str, ready: asyncio.Event) -> None:
        host, port = address.split(":")
        reader, writer = await asyncio.open_connection(host, int(port), limit=2**20)
        writer.write(f"GET /events HTTP/1.1\r\nHost: {address}\r\nAuthorization: Bearer {TOKEN}\r\n\r\n".encode())
        await writer.drain()
        while await reader.readline() not in (b"\r\n", b""):
            pass
        ready.set()
        try:
            while True:
                size = int((await reader.readline()).strip(), 16)
                chunk = await reader.readexactly(size + 2)
                now = time.monotonic()
                for line in chunk.decode().splitlines():
                    if line.startswith('data: {"id"'):
                        self.arrived[json.loads(line[6:])["id"]] = now
        finally:
            writer.close()


async def drain(address: str, path: str, extra: str) -> None:
    """A client that reads everything and looks at nothing (SSE, or a WebSocket after its handshake)."""
    host, port = address.split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(f"GET {path} HTTP/1.1\r\nHost: {address}\r\nAuthorization: Bearer {TOKEN}\r\n{extra}\r\n".encode())
    try:
        while await reader.read(65536):
            pass
    finally:
        writer.close()


WS_HANDSHAKE = (
    "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: cGdxLWJlbmNobWFyay1rZXk=\r\n"
    "Sec-WebSocket-Version: 13\r\n"
)


class WsReader:
    def __init__(self) -> None:
        self.arrived: dict[int, float] = {}

    async def run(self, ws: ClientConnection) -> None:
        async for message in ws:
            data = json.loads(message)
            if data["type"] == "job":
                self.arrived[data["id"]] = time.monotonic()


async def measure(dsn: str, address: str, pid: int, clients: int, changes: int, rate: float) -> dict[str, Any]:
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        cur = await conn.execute(
            "INSERT INTO pgq.jobs (task, queue) SELECT 'bench', 'live' FROM generate_series(1, %s) RETURNING id",
            [changes],
        )
        ids = [row[0] for row in await cur.fetchall()]
        sse, ws = SseReader(), WsReader()
        ready = asyncio.Event()
        tasks = [asyncio.create_task(sse.run(address, ready))]
        tasks += [asyncio.create_task(drain(address, "/events", "")) for _ in range(clients - 1)]
        tasks += [asyncio.create_task(drain(address, "/ws", WS_HANDSHAKE)) for _ in range(clients - 1)]
        sockets = [await connect(f"ws://{address}/ws", additional_headers=HEADERS, max_queue=None)]
        tasks.append(asyncio.create_task(ws.run(sockets[0])))
        await ready.wait()
        await asyncio.sleep(1 + clients / 50)  # time for every draining client to subscribe
        sent: dict[int, float] = {}
        commits: list[float] = []
        cpu_before = _cpu_seconds(pid)
        for jid in ids:
            started = time.monotonic()
            await conn.execute(
                "UPDATE pgq.jobs SET state = 'running', attempt = 1, started_at = now(), heartbeat_at = now(), "
                "worker_id = 'bench' WHERE id = %s",
                [jid],
            )
            sent[jid] = time.monotonic()
            commits.append((sent[jid] - started) * 1000)
            await asyncio.sleep(max(0.0, 1 / rate - (time.monotonic() - started)))

        for _ in range(600):  # up to 30 s for the last arrivals
            if min(len(sse.arrived), len(ws.arrived)) >= changes:
                break
            await asyncio.sleep(0.05)
        cpu_ms = (_cpu_seconds(pid) - cpu_before) * 1000 / changes
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await asyncio.gather(*(s.close() for s in sockets))
    result: dict[str, Any] = {
        "commit_p50_ms": round(_percentile(commits, 50), 2),
        "api_cpu_ms_per_change": round(cpu_ms, 2),
    }
    for kind, reader in (("sse", sse), ("ws", ws)):
        latencies = [max(0.0, reader.arrived[j] - sent[j]) * 1000 for j in ids if j in reader.arrived]
        missing = changes - len(latencies)
        result[kind] = {
            "p50_ms": round(_percentile(latencies, 50), 2),
            "p99_ms": round(_percentile(latencies, 99), 2),
            "max_ms": round(max(latencies), 2),
            "missing": missing,
        }
    return result


async def fill(dsn: str, rows: int) -> None:
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        await conn.execute("SET synchronous_commit = off")
        for first in range(0, rows, 100_000):
            await conn.execute(
                "INSERT INTO pgq.jobs (task, queue, state, attempt, started_at, finished_at, result) "
                "SELECT 'old', 'history', 'succeeded', 1, now(), now(), '1' FROM generate_series(1, %s)",
                [min(100_000, rows - first)],
            )
        await conn.execute("VACUUM ANALYZE pgq.jobs")


async def run(o: argparse.Namespace, dsn: str, address: str, pid: int) -> dict[str, Any]:
    runs: dict[str, Any] = {}
    for table in ("empty", f"{o.rows:,} rows"):
        if table != "empty":
            await fill(dsn, o.rows)
        for clients in (1, o.clients):
            name = f"{table}, {clients} SSE + {clients} WS clients"
            runs[name] = await measure(dsn, address, pid, clients, o.changes, o.rate)
            runs[name]["api_rss_mb"] = round(_rss_mb(pid), 1)
    return runs


def format_report(report: dict[str, Any]) -> str:
    runs = report["runs"]
    base = next(iter(runs.values()))
    lines = [
        f"{report['changes']} changes at {report['rate']:g}/s; server {report['server']}",
        f"{'run':44} {'kind':4} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} {'p99 ratio':>9} {'missing':>7} "
        f"{'API RSS':>8} {'commit p50':>10} {'API CPU/change':>14}",
    ]
    for name, run in runs.items():
        for kind in ("sse", "ws"):
            r = run[kind]
            ratio = r["p99_ms"] / base[kind]["p99_ms"] if base[kind]["p99_ms"] else float("nan")
            lines.append(
                f"{name:44} {kind:4} {r['p50_ms']:8.2f} {r['p99_ms']:8.2f} {r['max_ms']:8.2f} {ratio:9.2f} "
                f"{r['missing']:7d} {run['api_rss_mb']:6.1f}MB {run['commit_p50_ms']:8.2f}ms "
                f"{run['api_cpu_ms_per_change']:12.2f}ms"
            )
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    return command_line.parse(
        __doc__,
        argv,
        clients=(200, "SSE and WebSocket clients each"),
        changes=(200, "changes per run"),
        rate=(20.0, "changes per second"),
        rows=(1_000_000, "finished jobs in the table"),
        json=False,
    )


def main(argv: list[str] | None = None) -> int:
    o = parse_args(argv)
    with fresh_database(App().dsn, "pgq_events") as dsn:
        proc, address = start_api(dsn)
        try:
            report = {"changes": o.changes, "rate": o.rate, "server": server_settings(dsn)}
            report["runs"] = asyncio.run(run(o, dsn, address, proc.pid))
        finally:
            proc.terminate()
            proc.wait(30)
    print(json.dumps(report, indent=2) if o.json else format_report(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
