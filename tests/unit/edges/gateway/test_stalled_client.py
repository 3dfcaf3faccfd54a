"""A client whose socket never drains: every send gives up at its deadline, a kick never waits on it."""

from __future__ import annotations

import asyncio
import time

from tinyim.edges.gateway.connection import Connection, TokenBucket
from tinyim.edges.gateway.hub import GatewayHub
from tinyim.modules.presence.adapters.memory import InMemorySessionDirectory


class StalledSocket:
    def __init__(self) -> None:
        self.aborted = False
        self.sent = 0

    async def send(self, data: bytes) -> None:
        self.sent += 1
        await asyncio.Event().wait()  # the peer stopped reading: never drains

    async def close(self, code: int, reason: str) -> None:
        await asyncio.Event().wait()

    def abort(self) -> None:
        self.aborted = True


def _conn(sock: StalledSocket, token: str, timeout: float = 0.2, max_queued: int = 4) -> Connection:
    return Connection(
        sock.send,
        sock.close,
        1,
        "PC",
        token,
        f"c-{token}",
        TokenBucket(10, 10),
        TokenBucket(0.2, 20),
        abort=sock.abort,
        send_timeout=timeout,
        max_queued=max_queued,
    )


async def test_a_send_to_a_stalled_client_ends_at_its_deadline_and_aborts() -> None:
    sock = StalledSocket()
    conn = _conn(sock, "t1")
    started = time.monotonic()
    await asyncio.wait_for(conn.send(b"frame"), 2)
    assert time.monotonic() - started < 1 and conn.closed and sock.aborted


async def test_fire_and_forget_frames_are_bounded() -> None:
    sock = StalledSocket()
    conn = _conn(sock, "t1", timeout=60, max_queued=4)
    for _ in range(5):
        conn.send_soon(b"notice")
    assert conn.closed and sock.aborted


async def test_a_new_login_never_waits_on_the_old_connection() -> None:
    hub = GatewayHub("gw-1", InMemorySessionDirectory())
    old_sock = StalledSocket()
    old = _conn(old_sock, "old", timeout=60)
    await hub.attach(old)
    blocked = asyncio.create_task(old.send(b"a response the client never reads"))
    await asyncio.sleep(0.01)
    new = _conn(StalledSocket(), "new")
    await asyncio.wait_for(hub.attach(new), 0.5)  # the kick goes out in the background
    assert old.closed and hub.connections_of(1) == {"PC": new}
    await asyncio.sleep(2.5)  # the farewell gives up after its deadline and drops the socket
    assert old_sock.aborted
    blocked.cancel()
