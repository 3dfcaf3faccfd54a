"""W1: memory per idle WebSocket on one gateway, next to a bare `websockets` server in the same run.

Both servers get N authenticated-or-plain idle connections from a separate client process; the figure is
the server's RSS growth divided by N (RSS read from /proc after a settle pause, with one connection
open beforehand so lazy imports and buffers are not counted). The tokens for the gateway are minted with
the server's secret and recorded in `im_device_session` directly: registering N users through argon2
would take minutes and measure nothing of interest here.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from sqlalchemy import insert
from websockets.asyncio.client import ClientConnection, connect

from bench.common import write_result
from tests.conftest import migrate_sqlite
from tests.support.server import ServerProcess, free_port
from tinyim.infra.db import Database
from tinyim.modules.auth import TokenClaims
from tinyim.modules.auth.adapters.crypto import JwtCodec
from tinyim.modules.auth.adapters.sql import im_device_session

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
