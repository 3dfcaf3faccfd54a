"""What dispatch needs to hand out gateways."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from tinyim.infra.registry import GatewayNode
from tinyim.kernel import UNAVAILABLE, ImError


@dataclass(frozen=True, slots=True)
class GatewayAddress:
    host: str
    port: int

    @property
    def ws_url(self) -> str:
        return f"ws://{self.host}:{self.port}/ws"

    def as_json(self) -> dict[str, object]:
        return {"host": self.host, "port": self.port, "ws_url": self.ws_url}


class GatewayAllocator(Protocol):
    async def allocate(self) -> GatewayAddress:
        """A live gateway for a new connection (least connections among live gateways)."""
        ...


class RegistryGatewayAllocator:
    """Least connections among the gateways that renewed their registry entry recently."""

    def __init__(self, registry: GatewayRegistry) -> None:
        self._registry = registry

    async def allocate(self) -> GatewayAddress:
        live = await self._registry.live()
        if not live:
            raise ImError(UNAVAILABLE, "no gateway is available; try again shortly")
        best = min(live, key=lambda node: (node.connections, node.gateway_id))
        return GatewayAddress(best.host, best.port)


class GatewayRegistry(Protocol):
    async def heartbeat(self, gateway_id: str, host: str, port: int, connections: int) -> None: ...
    async def unregister(self, gateway_id: str) -> None: ...
    async def live(self) -> Sequence[GatewayNode]: ...


class StaticGatewayAllocator:
    """One process: the gateway is this process."""

    def __init__(self, address: GatewayAddress) -> None:
        self._address = address

    async def allocate(self) -> GatewayAddress:
        return self._address
