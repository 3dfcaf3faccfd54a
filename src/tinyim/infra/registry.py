"""Service registry: every process registers the roles it serves with a short TTL and renews it.

Redis layout (the spec's gateway keys, generalised to every role): `im:{role}:info:{node_id}` holds the
node's addresses and expires after the TTL; `im:{role}:load` is a zset of node ids scored by load
(connections, for gateways). A node that dies stops renewing, its info key expires and it drops out;
its zset member lingers until the next read removes it. The etcd adapter (`infra/etcd.py`) keeps the
same `Node` records under a lease. Reading side: `infra/node_directory.py`; announcing and renewing:
`infra/registration.py`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Protocol

from tinyim.infra.redis import Keys

if TYPE_CHECKING:
    from redis.asyncio import Redis

# Defaults of IM_REGISTRY_TTL_SECONDS and IM_REGISTRY_RENEW_SECONDS (the composition root passes them).
REGISTRY_TTL_SECONDS = 5.0
RENEW_EVERY_SECONDS = 1.5


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
