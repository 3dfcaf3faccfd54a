"""Service discovery: every process registers the roles it serves with a short TTL and renews it.

Redis layout (the spec's gateway keys, generalised to every role): `im:{role}:info:{node_id}` holds the
node's addresses and expires after the TTL; `im:{role}:load` is a zset of node ids scored by load
(connections, for gateways). A node that dies stops renewing, its info key expires and it drops out;
its zset member lingers until the next read removes it. The etcd adapter (`infra/etcd.py`) keeps the
same `Node` records under a lease.

`NodeDirectory` is the reading side used by gRPC clients and dispatch: a cache of each role's live nodes,
refreshed at most once a second (at once when the registry signals a change) and minus nodes a caller
found dead.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Protocol

from tinyim.infra import metrics
from tinyim.infra.redis import Keys
from tinyim.kernel import UNAVAILABLE, ImError

if TYPE_CHECKING:
    from redis.asyncio import Redis

log = logging.getLogger(__name__)

# Defaults of IM_REGISTRY_TTL_SECONDS and IM_REGISTRY_RENEW_SECONDS (the composition root passes them).
REGISTRY_TTL_SECONDS = 5.0
RENEW_EVERY_SECONDS = 1.5
DIRECTORY_REFRESH_SECONDS = 1.0  # how long a process trusts its last read of the registry


@dataclass(frozen=True, slots=True)
class Node:
    """One process serving one role. `load` orders gateways for dispatch (live connections)."""

    role: str
    node_id: str
    host: str
    http_port: int = 0
    grpc_port: int = 0
    file_port: int = 0
    load: int = 0
    ws_url: str = ""  # a gateway's public WebSocket URL when clients reach it by another address
    worker_id: int = 0  # a msg node's Snowflake worker id: two live msg nodes must not share one
    http_url: str = ""  # a file gateway's public HTTP base when browsers reach it by another address

    @property
    def grpc_target(self) -> str:
        return f"{self.host}:{self.grpc_port}"

    def to_json(self) -> str:
        data = asdict(self)
        del data["role"], data["node_id"], data["load"]
        return json.dumps(data)

    @classmethod
    def from_json(cls, role: str, node_id: str, raw: str | bytes, load: int = 0) -> Node:
        data = json.loads(raw)
        return cls(role, node_id, str(data["host"]), int(data["http_port"]), int(data["grpc_port"]),
                   int(data.get("file_port", 0)), load, str(data.get("ws_url", "")),
                   int(data.get("worker_id", 0)), str(data.get("http_url", "")))  # fmt: skip


class Registry(Protocol):
    async def announce(self, node: Node) -> None:
        """Register or renew (with the node's current load); the entry lives for the TTL."""
        ...

    async def withdraw(self, node: Node) -> None: ...
    async def nodes(self, role: str) -> list[Node]:
        """Live nodes of a role, least loaded first."""
        ...

    async def watch(self, on_change: Callable[[], None]) -> None:
        """Call on_change whenever a registration changes; returns at once if the registry can't tell."""
        ...


class RedisRegistry:
    def __init__(self, redis: Redis, keys: Keys, ttl_seconds: float = REGISTRY_TTL_SECONDS) -> None:
        self._redis = redis
        self._keys = keys
        self._ttl_ms = int(ttl_seconds * 1000)

    async def announce(self, node: Node) -> None:
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.set(self._keys.node_info(node.role, node.node_id), node.to_json(), px=self._ttl_ms)
            pipe.zadd(self._keys.node_load(node.role), {node.node_id: node.load})
            await pipe.execute()

    async def withdraw(self, node: Node) -> None:
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.delete(self._keys.node_info(node.role, node.node_id))
            pipe.zrem(self._keys.node_load(node.role), node.node_id)
            await pipe.execute()

    async def nodes(self, role: str) -> list[Node]:
        raw = await self._redis.zrange(self._keys.node_load(role), 0, -1, withscores=True)
        loads = [(str(pair[0]), int(pair[1])) for pair in raw]
        if not loads:
            return []
        infos = await self._redis.mget([self._keys.node_info(role, node_id) for node_id, _ in loads])
        live: list[Node] = []
        dead: list[str] = []
        for (node_id, load), info in zip(loads, infos, strict=True):
            if info is None:
                dead.append(node_id)
            else:
                live.append(Node.from_json(role, node_id, info, load))
        if dead:
            await self._redis.zrem(self._keys.node_load(role), *dead)
        return live

    async def watch(self, on_change: Callable[[], None]) -> None:
        return  # polling only: NodeDirectory re-reads every second


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


class DuplicateWorkerId(RuntimeError):
    pass


async def check_worker_id(registry: Registry, me: Node) -> None:
    """Refuse to start a msg node whose Snowflake worker id a live one already uses (ids would collide)."""
    for other in await registry.nodes(me.role):
        if other.node_id != me.node_id and other.worker_id == me.worker_id:
            raise DuplicateWorkerId(
                f"msg node {other.node_id} already uses IM_WORKER_ID={me.worker_id}; "
                "give every msg process its own worker id (0-1023)"
            )


async def keep_registered(
    registry: Registry, describe: Callable[[], Sequence[Node]], renew_seconds: float = RENEW_EVERY_SECONDS
) -> AsyncIterator[asyncio.Task[None]]:
    """Announce this process's nodes before it reports itself up, renew them every `renew_seconds`
    (well inside the registry's TTL), withdraw them on stop."""

    async def announce() -> None:
        for node in describe():
            await registry.announce(node)

    async def renew() -> None:
        while True:
            await asyncio.sleep(renew_seconds)
            try:
                await announce()
            except Exception:
                log.warning("registry renewal failed; retrying", exc_info=True)

    await announce()
    task = asyncio.create_task(renew())
    try:
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        for node in describe():
            with contextlib.suppress(Exception):
                await registry.withdraw(node)  # a clean stop leaves at once, not after the TTL
