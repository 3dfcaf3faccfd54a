"""Role entry of the gateway edge: `gateway` (the chat WebSocket on the lean listener, the online-status
sweeper, GatewayService over gRPC; its load in the registry is its connection count)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

from tinyim.infra.listener import mount_websocket, unmount_websocket
from tinyim.infra.roles import Registration, RoleEntry, resolved
from tinyim.infra.rpc import Registrar

from .grpc_server import gateway_registrar
from .hub import GatewayHub
from .status import StatusTracker
from .ws_protocol import ChatEndpoint


async def _registrar(gateway: Any) -> Registrar:
    return gateway_registrar(await resolved(gateway.hub))


async def _load(gateway: Any) -> Callable[[], int]:
    hub: GatewayHub = await resolved(gateway.hub)
    return lambda: hub.connection_count


@contextlib.asynccontextmanager
async def _background(gateway: Any) -> AsyncIterator[None]:
    # online status: told of every connection's life; idle sweeps and reaping in the background
    tracker: StatusTracker = await resolved(gateway.status_tracker)
    (await resolved(gateway.hub)).add_listener(tracker)
    sweeper = asyncio.create_task(tracker.run())
    # the chat WebSocket: served by its own lean protocol, not through ASGI (same port)
    endpoint = ChatEndpoint(await resolved(gateway.websocket))
    mount_websocket("/ws", endpoint.upgrade)
    try:
        yield
    finally:
        endpoint.close()
        unmount_websocket("/ws")
        sweeper.cancel()


ROLES = (
    RoleEntry(
        "gateway",
        needs_database=False,
        registration=Registration(ws_url=True),
        registrar=_registrar,
        load=_load,
        background=_background,
    ),
)
