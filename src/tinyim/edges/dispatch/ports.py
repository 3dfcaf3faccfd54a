"""What dispatch needs to hand out gateways."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


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


class StaticGatewayAllocator:
    """One process: the gateway is this process."""

    def __init__(self, address: GatewayAddress) -> None:
        self._address = address

    async def allocate(self) -> GatewayAddress:
        return self._address
