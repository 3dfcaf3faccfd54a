"""`NodeDirectory`, the reading side of the registry used by gRPC clients and dispatch: a cache of each
role's live nodes, refreshed at most once a second (at once when the registry signals a change) and minus
nodes a caller found dead.
"""

from __future__ import annotations

import asyncio
import logging
import time

from tinyim.infra import metrics
from tinyim.infra.registry import REGISTRY_TTL_SECONDS, Node, Registry
from tinyim.kernel import UNAVAILABLE, ImError

log = logging.getLogger(__name__)

DIRECTORY_REFRESH_SECONDS = 1.0  # how long a process trusts its last read of the registry


class NodeDirectory:
    """Live nodes per role, cached for `refresh_seconds`; nodes that failed a call are set aside."""

    def __init__(
        self,
        registry: Registry,
        refresh_seconds: float = DIRECTORY_REFRESH_SECONDS,
        suspect_seconds: float = REGISTRY_TTL_SECONDS,
    ) -> None:
        self._registry = registry
        self._refresh = refresh_seconds
        self._suspect_seconds = suspect_seconds  # the registry TTL: by then a dead node's entry is gone
        self._cache: dict[str, tuple[float, list[Node]]] = {}
        self._suspects: dict[str, float] = {}  # node_id -> until (monotonic)
        self._locks: dict[str, asyncio.Lock] = {}

    def invalidate(self) -> None:
        self._cache.clear()

    def suspect(self, node: Node, seconds: float | None = None) -> None:
        """A call to this node failed: skip it until its registry entry had time to expire."""
        self._suspects[node.node_id] = time.monotonic() + (seconds or self._suspect_seconds)

    async def nodes(self, role: str) -> list[Node]:
        """Live nodes of `role`, least loaded first, without suspects (unless every node is one)."""
        cached = self._cache.get(role)
        if cached is None or time.monotonic() - cached[0] > self._refresh:
            async with self._locks.setdefault(role, asyncio.Lock()):
                cached = self._cache.get(role)
                if cached is None or time.monotonic() - cached[0] > self._refresh:
                    try:
                        cached = (time.monotonic(), await self._registry.nodes(role))
                    except Exception as exc:
                        # The registry itself is down (Redis restarting): keep calling the nodes last
                        # seen; with none known, the caller gets UNAVAILABLE (clients retry), not a crash.
                        if cached is None:
                            raise ImError(UNAVAILABLE, f"service registry unreachable: {exc}") from None
                        log.warning("registry unreachable; using the last known nodes", extra={"role": role})
                        cached = (time.monotonic(), cached[1])
                    self._cache[role] = cached
                    metrics.REGISTRY_NODES.labels(role=role).set(len(cached[1]))
        now = time.monotonic()
        healthy = [n for n in cached[1] if self._suspects.get(n.node_id, 0.0) < now]
        return healthy or list(cached[1])

    async def node(self, role: str, node_id: str) -> Node | None:
        for node in await self.nodes(role):
            if node.node_id == node_id:
                return node
        return None

    async def follow(self) -> None:
        """Invalidate the cache on every registry change (etcd watch); runs until cancelled."""
        while True:
            try:
                await self._registry.watch(self.invalidate)
                return
            except asyncio.CancelledError:
                raise
            except Exception:
                log.warning("registry watch failed; polling until it is back", exc_info=True)
                await asyncio.sleep(1.0)
