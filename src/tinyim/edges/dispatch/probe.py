"""Whether a registered gateway still listens, asked before it is handed out."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from tinyim.infra.registry import Node

Probe = Callable[[Node], Awaitable[bool]]


async def accepts_connections(node: Node, timeout: float = 0.5) -> bool:
    """Whether the gateway's listener answers a TCP connect (a killed one is still registered for up
    to the TTL; handing it out would cost the client a failed connect and a backoff)."""
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(node.host, node.http_port), timeout)
    except (OSError, TimeoutError):
        return False
    writer.close()
    return True
