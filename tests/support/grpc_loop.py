"""Serve a module's local service over a real gRPC server on loopback, for the contract suites.

The suites that describe a module's inbound port (the service tests) run twice: against the local
service, and against its gRPC client adapter talking to that same service through `grpc.aio`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import TypeVar

import grpc

from tinyim.infra.node_directory import NodeDirectory
from tinyim.infra.registry import Node
from tinyim.infra.rpc import Channels, Registrar, RoleChannels

StubT = TypeVar("StubT")


class StaticRegistry:
    """A registry that always lists the same nodes."""

    def __init__(self, nodes: list[Node]) -> None:
        self._nodes = nodes

    async def announce(self, node: Node) -> None:
        self._nodes.append(node)

    async def withdraw(self, node: Node) -> None:
        self._nodes.remove(node)

    async def nodes(self, role: str) -> list[Node]:
        return [n for n in self._nodes if n.role == role]

    async def watch(self, on_change: Callable[[], None]) -> None:
        return


@asynccontextmanager
async def listening(registrar: Registrar) -> AsyncIterator[int]:
    """A grpc.aio server with the registrar's services on a free loopback port; yields the port."""
    server = grpc.aio.server()
    registrar(server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        yield port
    finally:
        await server.stop(0)


def directory_of(role: str, node_id: str, port: int) -> NodeDirectory:
    return NodeDirectory(StaticRegistry([Node(role, node_id, "127.0.0.1", grpc_port=port)]))


@asynccontextmanager
async def served(
    role: str, registrar: Registrar, stub_type: Callable[[grpc.aio.Channel], StubT]
) -> AsyncIterator[RoleChannels[StubT]]:
    """The client side of a role served on loopback: calls go through real gRPC."""
    async with listening(registrar) as port:
        channels = Channels()
        try:
            yield RoleChannels(role, directory_of(role, f"{role}-test", port), channels, stub_type, 5.0)
        finally:
            await channels.close()


@asynccontextmanager
async def remote_if(
    kind: str, role: str, registrar: Registrar, stub_type: Callable[[grpc.aio.Channel], StubT]
) -> AsyncIterator[RoleChannels[StubT] | None]:
    """For suites parametrized "local"/"grpc": None (use the service), or the served role's channels."""
    if kind == "local":
        yield None
        return
    async with served(role, registrar, stub_type) as remote:
        yield remote
