"""What dispatch needs to hand out gateways: the allocators (chat and file gateways) and the live nodes of
a role."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from tinyim.infra.registry import Node

from .addresses import FileGatewayAddress, GatewayAddress


class GatewayAllocator(Protocol):
    async def allocate(self) -> GatewayAddress:
        """A live gateway for a new connection (least connections among live gateways)."""
        ...


class FileGatewayAllocator(Protocol):
    async def allocate(self, task_id: str) -> FileGatewayAddress:
        """The file gateway of a task: the same one for every call while the live set is unchanged."""
        ...


class LiveNodes(Protocol):
    async def nodes(self, role: str) -> Sequence[Node]: ...
    def suspect(self, node: Node, seconds: float = ...) -> None: ...
