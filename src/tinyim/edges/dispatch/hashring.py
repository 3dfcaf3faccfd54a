"""Consistent hashing with virtual nodes: a key (file task id) maps to one node, and adding or removing a
node moves only the keys that node gains or loses (about 1/n of them), so resumable uploads of other
tasks keep landing on the file gateway that holds their partial data.
"""

from __future__ import annotations

import bisect
import hashlib
from collections.abc import Iterable

VIRTUAL_NODES = 160


def _point(text: str) -> int:
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "big")


class HashRing:
    def __init__(self, nodes: Iterable[str] = (), virtual_nodes: int = VIRTUAL_NODES) -> None:
        self._virtual = virtual_nodes
        self._points: list[int] = []
        self._owners: list[str] = []
        self._nodes: set[str] = set()
        for node in nodes:
            self.add(node)

    @property
    def nodes(self) -> frozenset[str]:
        return frozenset(self._nodes)

    def add(self, node: str) -> None:
        if node in self._nodes:
            return
        self._nodes.add(node)
        for i in range(self._virtual):
            point = _point(f"{node}#{i}")
            at = bisect.bisect_left(self._points, point)
            self._points.insert(at, point)
            self._owners.insert(at, node)

    def remove(self, node: str) -> None:
        if node not in self._nodes:
            return
        self._nodes.discard(node)
        kept = [(p, o) for p, o in zip(self._points, self._owners, strict=True) if o != node]
        self._points = [p for p, _ in kept]
        self._owners = [o for _, o in kept]

    def node_for(self, key: str) -> str:
        if not self._points:
            raise LookupError("the ring has no nodes")
        at = bisect.bisect_right(self._points, _point(key)) % len(self._points)
        return self._owners[at]
