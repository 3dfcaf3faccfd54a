"""Dispatch's gateway allocation over a registry fake that keeps state."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from tinyim.edges.dispatch.ports import GatewayAddress, RegistryGatewayAllocator
from tinyim.edges.errors import http_status
from tinyim.infra.registry import GatewayNode
from tinyim.kernel import UNAVAILABLE, ImError


class FakeRegistry:
    def __init__(self) -> None:
        self.nodes: dict[str, GatewayNode] = {}

    async def heartbeat(self, gateway_id: str, host: str, port: int, connections: int) -> None:
        self.nodes[gateway_id] = GatewayNode(gateway_id, host, port, connections)

    async def unregister(self, gateway_id: str) -> None:
        self.nodes.pop(gateway_id, None)

    async def live(self) -> Sequence[GatewayNode]:
        return list(self.nodes.values())


async def test_least_connections_wins_and_ties_break_by_id() -> None:
    registry = FakeRegistry()
    allocator = RegistryGatewayAllocator(registry)
    await registry.heartbeat("gw-b", "10.0.0.2", 8080, 7)
    await registry.heartbeat("gw-a", "10.0.0.1", 8080, 3)
    await registry.heartbeat("gw-c", "10.0.0.3", 8080, 3)
    assert await allocator.allocate() == GatewayAddress("10.0.0.1", 8080)
    await registry.heartbeat("gw-a", "10.0.0.1", 8080, 9)
    assert (await allocator.allocate()).ws_url == "ws://10.0.0.3:8080/ws"
    await registry.unregister("gw-c")
    assert (await allocator.allocate()).host == "10.0.0.2"


async def test_no_live_gateway_is_unavailable() -> None:
    with pytest.raises(ImError) as exc:
        await RegistryGatewayAllocator(FakeRegistry()).allocate()
    assert exc.value.code == UNAVAILABLE and http_status(exc.value.code) == 503
