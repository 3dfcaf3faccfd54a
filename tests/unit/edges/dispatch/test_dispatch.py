"""Dispatch: least-connections gateway allocation and consistent hashing of file tasks."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tinyim.edges.dispatch.addresses import GatewayAddress
from tinyim.edges.dispatch.allocators import RegistryGatewayAllocator, RingFileGatewayAllocator
from tinyim.edges.dispatch.hashring import HashRing
from tinyim.edges.dispatch.ports import FileGatewayAllocator
from tinyim.edges.dispatch.probe import accepts_connections
from tinyim.edges.errors import http_status
from tinyim.infra.registry import Node
from tinyim.kernel import UNAVAILABLE, ImError


class FakeRegistry:
    """Keeps the announced nodes per role, like the registry does between renewals."""

    def __init__(self) -> None:
        self.by_role: dict[str, dict[str, Node]] = {}
        self.suspects: set[str] = set()

    def suspect(self, node: Node, seconds: float = 5.0) -> None:
        self.suspects.add(node.node_id)

    def announce(self, node: Node) -> None:
        self.by_role.setdefault(node.role, {})[node.node_id] = node

    def withdraw(self, role: str, node_id: str) -> None:
        self.by_role.get(role, {}).pop(node_id, None)

    async def nodes(self, role: str) -> Sequence[Node]:
        return [n for n in self.by_role.get(role, {}).values() if n.node_id not in self.suspects]


async def always_up(node: Node) -> bool:
    return True


def gateway(node_id: str, host: str, load: int) -> Node:
    return Node("gateway", node_id, host, http_port=8080, grpc_port=9080, load=load)


async def test_least_connections_wins_and_ties_break_by_id() -> None:
    registry = FakeRegistry()
    allocator = RegistryGatewayAllocator(registry, probe=always_up)
    registry.announce(gateway("gw-b", "10.0.0.2", 7))
    registry.announce(gateway("gw-a", "10.0.0.1", 3))
    registry.announce(gateway("gw-c", "10.0.0.3", 3))
    assert await allocator.allocate() == GatewayAddress("10.0.0.1", 8080)
    registry.announce(gateway("gw-a", "10.0.0.1", 9))
    assert (await allocator.allocate()).ws_url == "ws://10.0.0.3:8080/ws"
    registry.withdraw("gateway", "gw-c")
    assert (await allocator.allocate()).host == "10.0.0.2"


async def test_a_burst_between_load_reports_is_spread_over_gateways() -> None:
    registry = FakeRegistry()
    registry.announce(gateway("gw-a", "10.0.0.1", 0))
    registry.announce(gateway("gw-b", "10.0.0.2", 0))
    allocator = RegistryGatewayAllocator(registry, probe=always_up)
    hosts = [(await allocator.allocate()).host for _ in range(10)]
    assert hosts.count("10.0.0.1") == hosts.count("10.0.0.2") == 5
    # with fresh reports (no window), loads alone decide
    allocator = RegistryGatewayAllocator(registry, window_seconds=0.0, probe=always_up)
    registry.announce(gateway("gw-a", "10.0.0.1", 1))
    registry.announce(gateway("gw-b", "10.0.0.2", 9))
    assert {(await allocator.allocate()).host for _ in range(3)} == {"10.0.0.1"}


async def test_a_gateway_behind_a_published_port_is_handed_out_by_its_public_url() -> None:
    registry = FakeRegistry()
    registry.announce(Node("gateway", "gw-1", "gateway-1", 8080, 9080, ws_url="ws://im.example.com:8081/ws"))
    address = await RegistryGatewayAllocator(registry, probe=always_up).allocate()
    assert address.as_json() == {
        "host": "im.example.com",
        "port": 8081,
        "ws_url": "ws://im.example.com:8081/ws",
    }


async def test_a_gateway_behind_a_tls_proxy_is_handed_out_by_its_url_as_announced() -> None:
    registry = FakeRegistry()
    registry.announce(Node("gateway", "gw-1", "gateway-1", 8080, 9080, ws_url="wss://im.example.com/gw/1/ws"))
    address = await RegistryGatewayAllocator(registry, probe=always_up).allocate()
    assert address.as_json() == {
        "host": "im.example.com",
        "port": 443,
        "ws_url": "wss://im.example.com/gw/1/ws",
    }


async def test_a_registered_gateway_that_refuses_connections_is_not_handed_out() -> None:
    registry = FakeRegistry()
    registry.announce(gateway("gw-a", "10.0.0.1", 0))  # killed: still registered until its TTL ends
    registry.announce(gateway("gw-b", "10.0.0.2", 5))
    probed: list[str] = []

    async def probe(node: Node) -> bool:
        probed.append(node.node_id)
        return node.node_id != "gw-a"

    allocator = RegistryGatewayAllocator(registry, probe=probe)
    assert [(await allocator.allocate()).host for _ in range(3)] == ["10.0.0.2"] * 3
    assert registry.suspects == {"gw-a"} and probed == ["gw-a", "gw-b"]  # answers are remembered a while


async def test_the_real_probe_tells_a_listener_from_a_closed_port() -> None:
    server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    assert await accepts_connections(Node("gateway", "up", "127.0.0.1", http_port=port))
    server.close()
    await server.wait_closed()
    assert not await accepts_connections(Node("gateway", "down", "127.0.0.1", http_port=port))


async def test_no_live_gateway_is_unavailable() -> None:
    with pytest.raises(ImError) as exc:
        await RegistryGatewayAllocator(FakeRegistry(), probe=always_up).allocate()
    assert exc.value.code == UNAVAILABLE and http_status(exc.value.code) == 503


async def test_file_tasks_stick_to_their_gateway_and_only_a_dead_ones_tasks_move() -> None:
    registry = FakeRegistry()
    for i in range(3):
        registry.announce(Node("filegw", f"fg-{i}", f"10.0.1.{i}", file_port=8090))
    allocator: FileGatewayAllocator = RingFileGatewayAllocator(registry)  # the port the HTTP route uses
    tasks = [f"task-{i}" for i in range(300)]
    before = {t: (await allocator.allocate(t)).host for t in tasks}
    assert {t: (await allocator.allocate(t)).host for t in tasks} == before
    registry.withdraw("filegw", "fg-1")
    after = {t: (await allocator.allocate(t)).host for t in tasks}
    moved = {t for t in tasks if after[t] != before[t]}
    assert moved == {t for t in tasks if before[t] == "10.0.1.1"} and moved
    with pytest.raises(ImError):
        await RingFileGatewayAllocator(FakeRegistry()).allocate("task-1")


node_names = st.lists(
    st.text("abcdef0123456789-", min_size=1, max_size=12), min_size=1, max_size=8, unique=True
)


@settings(max_examples=60, deadline=None)
@given(nodes=node_names, newcomer=st.text("ghijk", min_size=1, max_size=8))
def test_adding_a_node_moves_only_keys_to_that_node(nodes: list[str], newcomer: str) -> None:
    keys = [f"k{i}" for i in range(400)]
    ring = HashRing(nodes)
    before = {k: ring.node_for(k) for k in keys}
    ring.add(newcomer)
    after = {k: ring.node_for(k) for k in keys}
    moved = [k for k in keys if before[k] != after[k]]
    assert all(after[k] == newcomer for k in moved)
    # its share is about 1/(n+1) of the keys; virtual nodes keep it well under half even for 2 nodes
    assert len(moved) <= len(keys) * (2.5 / (len(nodes) + 1))


@settings(max_examples=60, deadline=None)
@given(nodes=node_names.filter(lambda n: len(n) >= 2), data=st.data())
def test_removing_a_node_moves_only_its_keys(nodes: list[str], data: st.DataObject) -> None:
    keys = [f"k{i}" for i in range(400)]
    ring = HashRing(nodes)
    before = {k: ring.node_for(k) for k in keys}
    gone = data.draw(st.sampled_from(nodes))
    ring.remove(gone)
    after = {k: ring.node_for(k) for k in keys}
    assert all(after[k] == before[k] for k in keys if before[k] != gone)
    assert all(after[k] != gone for k in keys)
    assert ring.nodes == frozenset(nodes) - {gone}
