"""Helpers for end-to-end tests: fresh users, friendships, connected SDK clients."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from websockets.asyncio.client import ClientConnection

from tinyim.client import Client, ClientOptions, register

PASSWORD = "correct horse battery"
# Helpers log in on this device type so they never kick a test's PC or Web session.
HELPER_DEVICE = "Pad"


def unique(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:10]}"


async def new_user(base_url: str, prefix: str = "u") -> tuple[str, int]:
    name = unique(prefix)
    return name, await register(base_url, name, PASSWORD, prefix.capitalize())


async def befriend(base_url: str, applicant: str, target: str) -> None:
    """applicant asks, target agrees: both timelines get one notice (FRIEND_REQ / SYSTEM)."""
    async with online(base_url, applicant, HELPER_DEVICE) as a, online(base_url, target, HELPER_DEVICE) as b:
        assert not await a.apply_friend(b.user_id, "hello from a test")
        await b.handle_friend(a.user_id, agree=True)


async def friend_pair(base_url: str, a: str = "alice", b: str = "bob") -> tuple[str, int, str, int]:
    a_name, a_id = await new_user(base_url, a)
    b_name, b_id = await new_user(base_url, b)
    await befriend(base_url, a_name, b_name)
    return a_name, a_id, b_name, b_id


E2E_OPTIONS = ClientOptions(heartbeat_interval=5)  # heartbeats faster than a real client's


@asynccontextmanager
async def online(
    base_url: str,
    username: str,
    device_id: str = "PC",
    drain: bool = True,
    options: ClientOptions = E2E_OPTIONS,
    **kwargs: object,
) -> AsyncIterator[Client]:
    """A started client. With drain, what its first sync delivered (history) is not in next_message().
    kwargs: the client's seq_store and callbacks."""
    client = Client(base_url, username, PASSWORD, device_id, options=options, **kwargs)  # type: ignore[arg-type]
    await client.start()
    if drain:
        client.take_delivered()
    try:
        yield client
    finally:
        await client.close()


async def recv_bytes(ws: ClientConnection, timeout: float = 5.0) -> bytes:
    data = await asyncio.wait_for(ws.recv(), timeout)
    assert isinstance(data, bytes), f"expected a binary frame, got {data!r}"
    return data
