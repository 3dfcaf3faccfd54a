"""Registry timings are settings (IM_REGISTRY_TTL_SECONDS, IM_REGISTRY_RENEW_SECONDS): renewals follow the
interval given, a node found dead is set aside for the TTL given, and a renewal slower than half the TTL
is refused at start (one late renewal would let a live node expire)."""

from __future__ import annotations

import asyncio
import contextlib
import time

import pytest
from pydantic import ValidationError

from tinyim.infra.node_directory import NodeDirectory
from tinyim.infra.registration import keep_registered
from tinyim.infra.registry import Node
from tinyim.settings import Settings

NODE = Node(role="gateway", node_id="gw-1", host="127.0.0.1", http_port=1, grpc_port=2)
OTHER = Node(role="gateway", node_id="gw-2", host="127.0.0.1", http_port=3, grpc_port=4)


class CountingRegistry:
    def __init__(self, nodes: list[Node]) -> None:
        self.announced = 0
        self.withdrawn: list[Node] = []
        self._nodes = nodes

    async def announce(self, node: Node) -> None:
        self.announced += 1

    async def withdraw(self, node: Node) -> None:
        self.withdrawn.append(node)

    async def nodes(self, role: str) -> list[Node]:
        return list(self._nodes)

    async def watch(self, on_change: object) -> None:
        return


async def test_renewals_follow_the_interval_setting() -> None:
    registry = CountingRegistry([NODE])
    register = contextlib.asynccontextmanager(keep_registered)
    async with register(registry, lambda: [NODE], 0.05):
        assert registry.announced == 1  # announced before the process reports itself up
        await asyncio.sleep(0.3)
    # about 6 renewals at 0.05 s (the default 1.5 s would give none); a loaded machine may lose some
    assert registry.announced >= 3
    assert registry.withdrawn == [NODE]  # a clean stop leaves at once


async def test_a_suspect_node_is_set_aside_for_the_ttl_setting() -> None:
    directory = NodeDirectory(CountingRegistry([NODE, OTHER]), suspect_seconds=0.2)
    directory.suspect(NODE)
    assert await directory.nodes("gateway") == [OTHER]
    started = time.monotonic()
    while await directory.nodes("gateway") != [NODE, OTHER]:
        assert time.monotonic() - started < 2.0, "the suspect stayed aside past its TTL"
        await asyncio.sleep(0.02)
    assert time.monotonic() - started >= 0.15


def test_registry_timings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IM_REGISTRY_TTL_SECONDS", "2")
    monkeypatch.setenv("IM_REGISTRY_RENEW_SECONDS", "0.5")
    s = Settings()
    assert (s.registry_ttl_seconds, s.registry_renew_seconds) == (2.0, 0.5)
    monkeypatch.delenv("IM_REGISTRY_TTL_SECONDS")
    monkeypatch.delenv("IM_REGISTRY_RENEW_SECONDS")
    s = Settings()
    assert (s.registry_ttl_seconds, s.registry_renew_seconds) == (5.0, 1.5)


def test_a_renewal_slower_than_half_the_ttl_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IM_REGISTRY_TTL_SECONDS", "2")
    monkeypatch.setenv("IM_REGISTRY_RENEW_SECONDS", "1.5")
    with pytest.raises(ValidationError, match="IM_REGISTRY_RENEW_SECONDS"):
        Settings()
