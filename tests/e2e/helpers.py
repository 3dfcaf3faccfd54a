"""Helpers for end-to-end tests: fresh users and connected SDK clients."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from websockets.asyncio.client import ClientConnection

from tinyim.client import Client, register

PASSWORD = "correct horse battery"


def unique(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:10]}"


async def new_user(base_url: str, prefix: str = "u") -> tuple[str, int]:
    name = unique(prefix)
    return name, await register(base_url, name, PASSWORD, prefix.capitalize())


@asynccontextmanager
async def online(
    base_url: str, username: str, device_id: str = "PC", **kwargs: object
) -> AsyncIterator[Client]:
    client = Client(base_url, username, PASSWORD, device_id, heartbeat_interval=5, **kwargs)  # type: ignore[arg-type]
    await client.start()
    try:
        yield client
    finally:
        await client.close()


async def recv_bytes(ws: ClientConnection, timeout: float = 5.0) -> bytes:
    data = await asyncio.wait_for(ws.recv(), timeout)
    assert isinstance(data, bytes), f"expected a binary frame, got {data!r}"
    return data
