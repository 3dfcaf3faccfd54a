"""What dispatch needs to hand out gateways: an allocator and the live nodes of a role."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from tinyim.infra.registry import Node

from .addresses import GatewayAddress


class GatewayAllocator(Protocol):
    async def allocate(self) -> GatewayAddress:
        """A live gateway for a new connection (least connections among live gateways)."""
        ...


class LiveNodes(Protocol):
    async def nodes(self, role: str) -> Sequence[Node]: ...
    def suspect(self, node: Node, seconds: float = ...) -> None: ...
