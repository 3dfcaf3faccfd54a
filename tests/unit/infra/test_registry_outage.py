"""Found by the soak: a Redis restart made every internal call fail with an internal error, because the
node directory re-read an unreachable registry. It now keeps the last known nodes."""

from __future__ import annotations

import asyncio

import pytest

from tinyim.infra.node_directory import NodeDirectory
from tinyim.infra.registry import Node
from tinyim.kernel import UNAVAILABLE, ImError


class FlakyRegistry:
    def __init__(self) -> None:
        self.down = False
        self.node = Node(role="user", node_id="user-1", host="127.0.0.1", http_port=1, grpc_port=2)

    async def nodes(self, role: str) -> list[Node]:
        if self.down:
            raise ConnectionError("Connection refused")
        return [self.node]


async def test_a_registry_outage_keeps_the_last_known_nodes() -> None:
    registry = FlakyRegistry()
    directory = NodeDirectory(registry, refresh_seconds=0.01)  # type: ignore[arg-type]
    assert await directory.nodes("user") == [registry.node]
    registry.down = True
    await asyncio.sleep(0.02)
    assert await directory.nodes("user") == [registry.node]


async def test_a_registry_outage_with_nothing_known_is_unavailable() -> None:
    registry = FlakyRegistry()
    registry.down = True
    with pytest.raises(ImError) as err:
        await NodeDirectory(registry).nodes("user")  # type: ignore[arg-type]
    assert err.value.code == UNAVAILABLE
