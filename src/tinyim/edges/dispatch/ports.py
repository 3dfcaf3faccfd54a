"""What dispatch needs to hand out gateways."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import urlparse

from tinyim.infra.registry import RENEW_EVERY_SECONDS, Node
from tinyim.kernel import UNAVAILABLE, ImError

from .hashring import HashRing


@dataclass(frozen=True, slots=True)
class GatewayAddress:
    host: str
    port: int
    url: str = ""  # the gateway's announced public URL, handed out as is (wss://, a path behind a proxy)

    @property
    def ws_url(self) -> str:
        return self.url or f"ws://{self.host}:{self.port}/ws"

    @classmethod
    def of(cls, node: Node) -> GatewayAddress:
        """Where clients reach a gateway: its public WebSocket URL if it announced one, else host:port."""
        if node.ws_url:
            parsed = urlparse(node.ws_url)
            default_port = 443 if parsed.scheme == "wss" else 80
            return cls(parsed.hostname or node.host, parsed.port or default_port, node.ws_url)
        return cls(node.host, node.http_port)

    def as_json(self) -> dict[str, object]:
        return {"host": self.host, "port": self.port, "ws_url": self.ws_url}


class GatewayAllocator(Protocol):
    async def allocate(self) -> GatewayAddress:
        """A live gateway for a new connection (least connections among live gateways)."""
        ...


class LiveNodes(Protocol):
    async def nodes(self, role: str) -> Sequence[Node]: ...
    def suspect(self, node: Node, seconds: float = ...) -> None: ...


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


class RegistryGatewayAllocator:
    """Least connections among the gateways that renewed their registry entry recently.

    Loads are reported every 1.5 s, so this dispatcher also counts what it handed out itself within the
    last report period; otherwise a burst of logins would all land on the gateway that was least loaded
    a moment ago. A gateway whose listener refuses connections is set aside (it died since its last
    renewal) and the next one is handed out.
    """

    def __init__(
        self,
        registry: LiveNodes,
        window_seconds: float = RENEW_EVERY_SECONDS,
        probe: Probe = accepts_connections,
        probe_every_seconds: float = 1.0,
    ) -> None:
        self._registry = registry
        self._window = window_seconds
        self._recent: dict[str, list[float]] = {}  # node_id -> when we handed it out
        self._probe = probe
        self._probe_every = probe_every_seconds
        self._probed: dict[str, float] = {}  # node_id -> when it last answered a probe

    async def allocate(self) -> GatewayAddress:
        since = time.monotonic() - self._window
        for node_id in list(self._recent):
            self._recent[node_id] = [t for t in self._recent[node_id] if t > since]
        refused: set[str] = set()
        while True:
            live = [n for n in await self._registry.nodes("gateway") if n.node_id not in refused]
            if not live:
                raise ImError(UNAVAILABLE, "no gateway is available; try again shortly")
            best = min(live, key=lambda n: (n.load + len(self._recent.get(n.node_id, ())), n.node_id))
            if await self._answers(best):
                self._recent.setdefault(best.node_id, []).append(time.monotonic())
                return GatewayAddress.of(best)
            refused.add(best.node_id)
            self._registry.suspect(best)

    async def _answers(self, node: Node) -> bool:
        if time.monotonic() - self._probed.get(node.node_id, -1e9) < self._probe_every:
            return True
        if await self._probe(node):
            self._probed[node.node_id] = time.monotonic()
            return True
        self._probed.pop(node.node_id, None)
        return False


class FileGatewayAllocator:
    """The file gateway of a task: consistent hash of task_id over the live file gateways."""

    def __init__(self, registry: LiveNodes) -> None:
        self._registry = registry
        self._ring = HashRing()

    async def allocate(self, task_id: str) -> FileGatewayAddress:
        live = {n.node_id: n for n in await self._registry.nodes("filegw")}
        if not live:
            raise ImError(UNAVAILABLE, "no file gateway is available")
        for gone in self._ring.nodes - live.keys():
            self._ring.remove(gone)
        for node_id in live.keys() - self._ring.nodes:
            self._ring.add(node_id)
        node = live[self._ring.node_for(task_id)]
        http_url = node.http_url or f"http://{node.host}:{node.http_port}"
        return FileGatewayAddress(node.host, node.file_port, http_url)


@dataclass(frozen=True, slots=True)
class FileGatewayAddress:
    host: str
    port: int
    http_url: str = ""  # the same gateway over HTTP (browser uploads and downloads)

    def as_json(self) -> dict[str, object]:
        return {"host": self.host, "port": self.port, "http_url": self.http_url}


class StaticFileGatewayAllocator:
    """One process: the file gateway is this process (its file listener and HTTP port)."""

    def __init__(self, address: FileGatewayAddress) -> None:
        self._address = address

    async def allocate(self, task_id: str) -> FileGatewayAddress:
        return self._address


class StaticGatewayAllocator:
    """One process: the gateway is this process."""

    def __init__(self, address: GatewayAddress) -> None:
        self._address = address

    async def allocate(self) -> GatewayAddress:
        return self._address


class RegistryOnlineCount:
    """admin API: open connections over every live gateway, as each last reported (every few seconds)."""

    def __init__(self, registry: LiveNodes) -> None:
        self._registry = registry

    async def connections(self) -> int:
        return sum(n.load for n in await self._registry.nodes("gateway"))
