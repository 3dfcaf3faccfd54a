"""Registry in etcd (`IM_ETCD_ENDPOINTS`): each node's record is a key under a lease with the registry TTL.

Keys: `/tinyim/{prefix}nodes/{role}/{node_id}` -> the node's JSON (with its load). A process grants one
lease per announced node and keeps it alive on every renewal; when the process dies the lease runs out
and etcd deletes the key. A watch on the prefix tells readers at once that something changed.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING

from tinyim.infra.extras import AETCD, require
from tinyim.infra.registry import REGISTRY_TTL_SECONDS, Node

if TYPE_CHECKING:
    import aetcd  # the [etcd] extra: imported when IM_ETCD_ENDPOINTS is set


def parse_endpoints(endpoints: str) -> list[tuple[str, int]]:
    """'host:port,host:port' or 'http://host:port' -> [(host, port)]."""
    found: list[tuple[str, int]] = []
    for item in endpoints.split(","):
        item = item.strip().removeprefix("http://").removeprefix("https://").rstrip("/")
        if item:
            host, _, port = item.rpartition(":")
            found.append((host or item, int(port) if host else 2379))
    if not found:
        raise ValueError("IM_ETCD_ENDPOINTS names no endpoint")
    return found


class EtcdRegistry:
    def __init__(
        self, client: aetcd.Client, prefix: str = "", ttl_seconds: float = REGISTRY_TTL_SECONDS
    ) -> None:
        self._client = client
        self._root = f"/tinyim/{prefix}nodes/".encode()
        self._ttl = max(1, round(ttl_seconds))
        self._leases: dict[tuple[str, str], object] = {}

    def _key(self, role: str, node_id: str) -> bytes:
        return self._root + f"{role}/{node_id}".encode()

    async def announce(self, node: Node) -> None:
        ident = (node.role, node.node_id)
        lease = self._leases.get(ident)
        if lease is not None:
            answer = await lease.refresh()  # type: ignore[attr-defined]
            if answer is None or answer.TTL <= 0:  # expired meanwhile (a long pause): start over
                lease = None
        if lease is None:
            lease = await self._client.lease(self._ttl)
            self._leases[ident] = lease
        value = json.dumps({**json.loads(node.to_json()), "load": node.load}).encode()
        await self._client.put(self._key(node.role, node.node_id), value, lease=lease)

    async def withdraw(self, node: Node) -> None:
        lease = self._leases.pop((node.role, node.node_id), None)
        await self._client.delete(self._key(node.role, node.node_id))
        if lease is not None:
            await lease.revoke()  # type: ignore[attr-defined]

    async def nodes(self, role: str) -> list[Node]:
        prefix = self._root + f"{role}/".encode()
        found = []
        for kv in await self._client.get_prefix(prefix):
            node_id = kv.key[len(prefix) :].decode()
            load = int(json.loads(kv.value).get("load", 0))
            found.append(Node.from_json(role, node_id, kv.value, load))
        return sorted(found, key=lambda n: (n.load, n.node_id))

    async def watch(self, on_change: Callable[[], None]) -> None:
        async for _event in await self._client.watch_prefix(self._root):
            on_change()


async def etcd_client(endpoints: str) -> AsyncIterator[aetcd.Client]:
    """A connected client to the first endpoint that answers."""
    aetcd_module = require(AETCD, "IM_ETCD_ENDPOINTS")
    last: Exception | None = None
    for host, port in parse_endpoints(endpoints):
        client = aetcd_module.Client(host=host, port=port, timeout=5)
        try:
            await asyncio.wait_for(client.connect(), 5)
            await client.status()
        except Exception as exc:
            last = exc
            await client.close()
            continue
        try:
            yield client
        finally:
            await client.close()
        return
    raise ConnectionError(f"no etcd endpoint answered ({endpoints})") from last
