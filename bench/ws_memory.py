"""W1: memory per idle WebSocket on one gateway, next to a bare `websockets` server in the same run.

Both servers get N authenticated-or-plain idle connections from a separate client process; the figure is
the server's RSS growth divided by N (RSS read from /proc after a settle pause, with one connection
open beforehand so lazy imports and buffers are not counted). The tokens for the gateway are minted with
the server's secret and recorded in `im_device_session` directly: registering N users through argon2
would take minutes and measure nothing of interest here.

The hold (`w1-hold`): one gateway process holds H authenticated connections opened by several client
processes (each with its own open-file limit; the gateway raises its own to the hard limit), keeps them
for a while, then every one of them sends a heartbeat and must get its answer.
"""

from __future__ import annotations

import asyncio
import json
import os
import resource
import secrets
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from sqlalchemy import insert
from websockets.asyncio.client import ClientConnection, connect

from bench.common import process_cpu_seconds, write_result
from tests.conftest import migrate_sqlite
from tests.support.server import ServerProcess, free_port
from tinyim.infra.db import Database
from tinyim.modules.auth import TokenClaims
from tinyim.modules.auth.adapters.crypto import JwtCodec
from tinyim.modules.auth.adapters.sql import im_device_session
from tinyim.wire import Cmd, decode, encode

BARE_SERVER = """
import asyncio, sys
from websockets.asyncio.server import serve

async def idle(ws):
    async for _ in ws:
        pass

async def main():
    async with serve(idle, "127.0.0.1", int(sys.argv[1]), compression=None):
        print("ready", flush=True)
        await asyncio.Future()

asyncio.run(main())
"""


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


async def open_many(urls: list[str], concurrency: int = 200) -> list[ClientConnection]:
    gate = asyncio.Semaphore(concurrency)
    conns: list[ClientConnection] = []

    async def one(url: str) -> None:
        async with gate:
            conns.append(await connect(url, compression=None, open_timeout=60, ping_interval=None))

    await asyncio.gather(*(one(u) for u in urls))
    return conns


async def measure(pid: int, urls: list[str]) -> dict[str, Any]:
    warm = await open_many(urls[:1])
    await asyncio.sleep(1)
    before = rss_kib(pid)
    conns = warm + await open_many(urls[1:])
    await asyncio.sleep(3)  # let the server settle (tasks started, buffers allocated)
    after = rss_kib(pid)
    alive = sum(1 for c in conns if c.close_code is None)
    for c in conns:
        await c.close()
    return {
        "connections": len(urls),
        "alive_at_measurement": alive,
        "rss_before_kib": before,
        "rss_after_kib": after,
        "kib_per_connection": round((after - before) / max(1, len(urls) - 1), 2),
    }


async def gateway_urls(data_dir: Path, secret: str, port: int, n: int) -> list[str]:
    """N live sessions (user i, device PC) and their tokens, as a login would have made them."""
    db = Database(await asyncio.to_thread(migrate_sqlite, data_dir))
    codec = JwtCodec(secret)
    expires = int(time.time()) + 3600
    rows, urls = [], []
    for user_id in range(1, n + 1):
        token_id = secrets.token_hex(8)
        rows.append({"user_id": user_id, "device_id": "PC", "token_id": token_id})
        token = codec.issue(TokenClaims(user_id, "PC", token_id, expires))
        urls.append(f"ws://127.0.0.1:{port}/ws?token={token}&device_id=PC")
    async with db.write() as conn:
        await conn.execute(insert(im_device_session), rows)
    await db.dispose()
    return urls


def run_ws_memory(connections: int) -> None:
    workdir = Path(tempfile.mkdtemp(prefix="tinyim-bench-ws-"))
    secret = secrets.token_urlsafe(32)
    port = free_port()
    urls = asyncio.run(gateway_urls(workdir, secret, port, connections))
    env = {
        "IM_JWT_SECRET": secret,
        "IM_HEARTBEAT_TIMEOUT_SECONDS": "3600",
        "IM_LOG_LEVEL": "WARNING",
        "IM_MAX_CONNECTIONS_PER_ADDRESS": "0",  # every bench connection comes from loopback
    }
    server = ServerProcess(workdir, env=env, port=port).start()
    try:
        assert server.proc is not None
        gateway = asyncio.run(measure(server.proc.pid, urls))
    finally:
        server.stop()

    bare_port = free_port()
    bare = subprocess.Popen(
        [sys.executable, "-c", BARE_SERVER, str(bare_port)], stdout=subprocess.PIPE, env=os.environ
    )
    try:
        assert bare.stdout is not None
        bare.stdout.readline()  # "ready"
        plain = asyncio.run(measure(bare.pid, [f"ws://127.0.0.1:{bare_port}/"] * connections))
    finally:
        bare.terminate()
        bare.wait(10)

    write_result(
        "w1-idle-websocket-memory",
        {
            "scenario": "idle WebSocket memory on one gateway (tinyim run) vs a bare websockets server",
            "tinyim_gateway": gateway,
            "bare_websockets": plain,
            "ratio_to_bare": round(gateway["kib_per_connection"] / max(0.01, plain["kib_per_connection"]), 2),
            "target_kib_per_connection": 12,
        },
    )


HOLD_CLIENTS = 3  # client processes for the hold: each needs one fd per connection


def run_ws_hold(connections: int, hold_seconds: float = 30.0) -> dict[str, Any]:
    """One gateway process holds `connections` authenticated WebSockets from HOLD_CLIENTS processes."""
    workdir = Path(tempfile.mkdtemp(prefix="tinyim-bench-hold-"))
    secret = secrets.token_urlsafe(32)
    port = free_port()
    urls = asyncio.run(gateway_urls(workdir, secret, port, connections))
    env = {
        "IM_JWT_SECRET": secret,
        "IM_HEARTBEAT_TIMEOUT_SECONDS": "3600",
        "IM_LOG_LEVEL": "WARNING",
        "IM_MAX_CONNECTIONS_PER_ADDRESS": "0",
    }
    server = ServerProcess(workdir, env=env, port=port).start()
    clients: list[subprocess.Popen[str]] = []
    try:
        assert server.proc is not None
        pid = server.proc.pid
        rss_before, cpu_before = rss_kib(pid), process_cpu_seconds(pid)
        started = time.monotonic()
        for i in range(HOLD_CLIENTS):
            part = workdir / f"urls-{i}.json"
            part.write_text(json.dumps(urls[i::HOLD_CLIENTS]))
            clients.append(
                subprocess.Popen(
                    [sys.executable, "-m", "bench.ws_memory", "hold-client", str(part)],
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    text=True,
                    cwd=Path(__file__).resolve().parents[1],
                )
            )
        opened = sum(int(_ask(c, None)["open"]) for c in clients)
        open_seconds = time.monotonic() - started
        time.sleep(hold_seconds)
        rss_held = rss_kib(pid)
        replies = [_ask(c, "heartbeat") for c in clients]
        result = {
            "connections": connections,
            "client_processes": HOLD_CLIENTS,
            "opened": opened,
            "open_seconds": round(open_seconds, 1),
            "held_seconds": hold_seconds,
            "alive_after_hold": sum(int(r["alive"]) for r in replies),
            "heartbeats_answered": sum(int(r["answered"]) for r in replies),
            "gateway_fd_limit": _fd_limit(pid),
            "gateway_rss_kib": rss_held,
            "kib_per_connection": round((rss_held - rss_before) / max(1, connections), 2),
            "gateway_cpu_seconds_to_open": round(process_cpu_seconds(pid) - cpu_before, 2),
        }
    finally:
        for client in clients:
            if client.poll() is None:
                client.kill()
            client.wait(10)
        server.stop()
    write_result(
        f"w1-hold-{connections}",
        {"scenario": "one gateway process holds N authenticated WebSockets", **result},
    )
    return result


def _ask(client: subprocess.Popen[str], command: str | None) -> dict[str, Any]:
    assert client.stdin is not None and client.stdout is not None
    if command is not None:
        client.stdin.write(command + "\n")
        client.stdin.flush()
    line = client.stdout.readline()
    if not line:
        raise RuntimeError(f"a hold client ended early (exit {client.wait()})")
    answer: dict[str, Any] = json.loads(line)
    return answer


def _fd_limit(pid: int) -> int:
    for line in Path(f"/proc/{pid}/limits").read_text().splitlines():
        if line.startswith("Max open files"):
            return int(line.split()[3])
    return 0


async def _hold_client(urls: list[str]) -> None:
    """A client process of the hold: open every URL, report, then heartbeat on each when asked."""
    # 60 handshakes at a time per client process: each costs the gateway a few SQL round trips (token,
    # session, online status), and more at once only queue on its connection pool
    conns = await open_many(urls, concurrency=60)
    print(json.dumps({"open": len(conns)}), flush=True)
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, sys.stdin.readline)
    alive = [c for c in conns if c.close_code is None]
    heartbeat = encode(Cmd.CMD_HEARTBEAT_REQ, b"")

    async def beat(conn: ClientConnection) -> bool:
        try:
            await conn.send(heartbeat)
            answer = await asyncio.wait_for(conn.recv(), 60)
            return isinstance(answer, bytes) and decode(answer).cmd == Cmd.CMD_HEARTBEAT_RESP
        except Exception:
            return False

    gate = asyncio.Semaphore(500)

    async def gated(conn: ClientConnection) -> bool:
        async with gate:
            return await beat(conn)

    answered = sum(await asyncio.gather(*(gated(c) for c in alive)))
    print(json.dumps({"alive": len(alive), "answered": answered}), flush=True)
    await asyncio.gather(*(c.close() for c in conns), return_exceptions=True)


if __name__ == "__main__" and sys.argv[1:2] == ["hold-client"]:
    _soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (_hard, _hard))  # one fd per connection
    asyncio.run(_hold_client(json.loads(Path(sys.argv[2]).read_text())))
