"""Gateway allocators: one process (static) or every live gateway of the registry; file gateways
likewise (static, or a consistent hash of the task over the live file gateways)."""

from __future__ import annotations

import time

from tinyim.infra.registry import RENEW_EVERY_SECONDS, Node
from tinyim.kernel import UNAVAILABLE, ImError

from .addresses import FileGatewayAddress, GatewayAddress
from .hashring import HashRing
from .ports import LiveNodes
from .probe import Probe, accepts_connections


class StaticGatewayAllocator:
    """One process: the gateway is this process."""

    def __init__(self, address: GatewayAddress) -> None:
        self._address = address

    async def allocate(self) -> GatewayAddress:
        return self._address


class RegistryGatewayAllocator:
    """Least connections among the gateways that renewed their registry entry recently.

    Loads are reported every renewal (1.5 s) and this process reads them through a cache (1 s), so this
    dispatcher also counts what it handed out itself within the age its view can have (`window_seconds`:
    a renewal period plus a cache refresh); otherwise a burst of logins would all land on the gateway that
    was least loaded a moment ago. A gateway whose listener refuses connections is set aside (it died since
    its last renewal) and the next one is handed out.
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


class StaticFileGatewayAllocator:
    """One process: the file gateway is this process (its file listener and HTTP port)."""

    def __init__(self, address: FileGatewayAddress) -> None:
        self._address = address

    async def allocate(self, task_id: str) -> FileGatewayAddress:
        return self._address


class RingFileGatewayAllocator:
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
