"""The multi-process topology on loopback: dispatch, 2 gateways, auth, user, 2 msg nodes, MariaDB + Redis.

Every internal call goes over gRPC; processes find each other in the Redis registry. Clients talk only to
dispatch (HTTP) and the gateway it hands out (WebSocket), through the SDK. The failover tests kill -9 a
gateway and a msg node under load and count lost, duplicated and out-of-order messages.
"""

from __future__ import annotations

import asyncio
import itertools
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest
from redis.asyncio import Redis
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from tests.e2e.helpers import PASSWORD, befriend, new_user, online
from tinyim.client import Client, ClientOptions, Message, Sent
from tinyim.cluster import Cluster
from tinyim.infra.node_directory import DIRECTORY_REFRESH_SECONDS
from tinyim.infra.redis import Keys
from tinyim.infra.registry import RedisRegistry

pytestmark = pytest.mark.e2e


def gateway_url(cluster: Cluster, name: str) -> str:
    return f"ws://127.0.0.1:{cluster.members[name].http_port}/ws"


@asynccontextmanager
async def on_gateway(
    cluster: Cluster, username: str, gateway: str, device: str = "PC"
) -> AsyncIterator[Client]:
    """A client pinned to one gateway for its first connection (later reconnects follow dispatch)."""
    client = Client(
        cluster.dispatch_url, username, PASSWORD, device, options=ClientOptions(heartbeat_interval=3)
    )
    await client.login()
    client.ws_url = gateway_url(cluster, gateway)
    await client.start()
    client.take_delivered()
    try:
        yield client
    finally:
        await client.close()


def bearer(client: Client) -> dict[str, str]:
    return {"Authorization": f"Bearer {client.token}"}


async def friends(cluster: Cluster, a: str = "alice", b: str = "bob") -> tuple[str, int, str, int]:
    a_name, a_id = await new_user(cluster.dispatch_url, a)
    b_name, b_id = await new_user(cluster.dispatch_url, b)
    await befriend(cluster.dispatch_url, a_name, b_name)
    return a_name, a_id, b_name, b_id


async def next_text(client: Client, timeout: float = 10.0) -> Message:
    """The next delivered chat message, skipping notices (friend requests, group events)."""
    while True:
        m = await client.next_message(timeout)
        if m.type == 0:
            return m


# ---------- the skeleton's and the social issue's scenarios, across gateways ----------
async def gateways_registered(cluster: Cluster, expect: int, within: float) -> bool:
    """Whether the Redis registry lists `expect` live gateways within `within` seconds."""
    redis = Redis.from_url(cluster.env["IM_REDIS_URL"], decode_responses=True)
    registry = RedisRegistry(redis, Keys(cluster.env["IM_REDIS_PREFIX"]))
    try:
        for _ in range(int(within / 0.25)):
            if len(await registry.nodes("gateway")) == expect:
                return True
            await asyncio.sleep(0.25)
        return False
    finally:
        await redis.aclose()


async def quiet_gateways(cluster: Cluster) -> None:
    """Wait until earlier tests' connections are gone from both gateways' reported loads."""
    redis = Redis.from_url(cluster.env["IM_REDIS_URL"], decode_responses=True)
    registry = RedisRegistry(redis, Keys(cluster.env["IM_REDIS_PREFIX"]))
    try:
        for _ in range(60):
            loads = [n.load for n in await registry.nodes("gateway")]
            if len(loads) == 2 and not any(loads):
                break
            await asyncio.sleep(0.25)
        # dispatch forgets its own recent hand-outs after a renewal period and a directory refresh
        await asyncio.sleep(float(cluster.env["IM_REGISTRY_RENEW_SECONDS"]) + DIRECTORY_REFRESH_SECONDS + 0.2)
    finally:
        await redis.aclose()


async def test_dispatch_spreads_users_and_they_chat_across_gateways(cluster: Cluster) -> None:
    alice, alice_id, bob, bob_id = await friends(cluster)
    await quiet_gateways(cluster)
    async with online(cluster.dispatch_url, alice) as a, online(cluster.dispatch_url, bob) as b:
        assert {a.ws_url, b.ws_url} == {gateway_url(cluster, "gateway-1"), gateway_url(cluster, "gateway-2")}
        sent = await a.send_text(bob_id, "hello from the other gateway")
        got = await next_text(b)
        assert (got.content, got.sender_id, got.msg_id) == (
            "hello from the other gateway",
            alice_id,
            sent.msg_id,
        )
        await b.send_text(alice_id, "hi back")
        assert (await next_text(a)).content == "hi back"
        history, _ = await b.history(peer_id=alice_id)
        assert [m.content for m in history if m.type == 0] == ["hello from the other gateway", "hi back"]


async def test_multi_device_on_two_gateways(cluster: Cluster) -> None:
    alice, alice_id, bob, bob_id = await friends(cluster)
    async with (
        on_gateway(cluster, alice, "gateway-1", "PC") as pc,
        on_gateway(cluster, alice, "gateway-2", "Web") as web,
        on_gateway(cluster, bob, "gateway-2") as b,
    ):
        await b.send_text(alice_id, "to both of your devices")
        assert (await next_text(pc)).content == "to both of your devices"
        assert (await next_text(web)).content == "to both of your devices"
        sent = await pc.send_text(bob_id, "sent from my PC")
        mine = await next_text(web)  # the sender's other device, on the other gateway, syncs it too
        assert (mine.content, mine.is_mine, mine.msg_id) == ("sent from my PC", True, sent.msg_id)
        await pc.mark_read(peer_id=bob_id, read_seq=sent.seq_id)
        await asyncio.wait_for(_read_mark(web, bob_id, sent.seq_id), 10)


async def _read_mark(client: Client, peer_id: int, seq: int) -> None:
    while client.read_marks.get((peer_id, 0), 0) < seq:
        client.read_changed.clear()
        await client.read_changed.wait()


async def test_group_chat_and_approval_across_gateways(cluster: Cluster) -> None:
    owner, owner_id, ann, ann_id = await friends(cluster, "owner", "ann")
    joiner, joiner_id = await new_user(cluster.dispatch_url, "joiner")
    async with (
        on_gateway(cluster, owner, "gateway-1") as o,
        on_gateway(cluster, ann, "gateway-2") as a,
        on_gateway(cluster, joiner, "gateway-2") as j,
    ):
        group_id = await o.create_group("across", [ann_id])
        await j.join_group(group_id)
        await o.handle_join(group_id, joiner_id, agree=True)
        assert {u.user_id for u, _ in await a.group_members(group_id)} == {owner_id, ann_id, joiner_id}
        await j.send_group(group_id, "hello group")
        for client in (o, a):
            got = await next_text(client)
            assert (got.content, got.group_id, got.sender_id) == ("hello group", group_id, joiner_id)


async def test_cross_server_kick(cluster: Cluster) -> None:
    alice, _, bob, _ = await friends(cluster)
    async with on_gateway(cluster, alice, "gateway-1") as first:
        old_token = first.token
        async with on_gateway(cluster, alice, "gateway-2") as second:
            await asyncio.wait_for(first.kicked.wait(), 10)
            assert first.kick_reason and not second.kicked.is_set()
            for gateway in ("gateway-1", "gateway-2"):  # the old token connects nowhere
                with pytest.raises(InvalidStatus):
                    await connect(f"{gateway_url(cluster, gateway)}?token={old_token}&device_id=PC")
            async with on_gateway(cluster, bob, "gateway-1") as b:
                await b.send_text(second.user_id, "only the new session hears this")
            assert (await next_text(second)).content == "only the new session hears this"


async def test_internal_services_report_health_over_grpc(cluster: Cluster) -> None:
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    for name, service in (
        ("auth", "im.AuthService"),
        ("msg-1", "im.MsgService"),
        ("gateway-2", "im.GatewayService"),
    ):
        async with grpc.aio.insecure_channel(f"127.0.0.1:{cluster.members[name].grpc_port}") as channel:
            answer = await health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=service), timeout=3
            )
            assert answer.status == health_pb2.HealthCheckResponse.SERVING


async def test_file_gateways_are_allocated_by_hash_of_the_task(cluster: Cluster) -> None:
    name, _ = await new_user(cluster.dispatch_url, "filer")
    file_ports = {cluster.members[n].file_port for n in ("filegw-1", "filegw-2")}
    async with (
        online(cluster.dispatch_url, name) as c,
        httpx.AsyncClient(base_url=cluster.dispatch_url) as http,
    ):
        seen = set()
        for task in [f"{i:032x}" for i in range(40)]:
            answers = [
                (
                    await http.get(
                        "/api/allocate_file_gateway",
                        params={"task_id": task},
                        headers={"Authorization": f"Bearer {c.token}"},
                    )
                ).json()
                for _ in range(2)
            ]
            assert answers[0] == answers[1]  # the same task always lands on the same file gateway
            assert answers[0]["port"] in file_ports
            seen.add(answers[0]["port"])
        assert seen == file_ports  # and tasks spread over both


# ---------- failover, with a checker ----------
def audit(sent: list[Sent], received: list[Message]) -> dict[str, int]:
    """Lost, duplicated and out-of-order messages of one conversation, as the receiver saw them."""
    wanted = [s.client_msg_id for s in sent]
    got = [m.client_msg_id for m in received if m.type == 0]
    order = {cmid: i for i, cmid in enumerate(wanted)}
    positions = [order[c] for c in got if c in order]
    seqs = [m.seq_id for m in received]
    return {
        "lost": len(set(wanted) - set(got)),
        "duplicated": len(got) - len(set(got)),
        "out_of_order": sum(1 for x, y in itertools.pairwise(positions) if y < x)
        + sum(1 for x, y in itertools.pairwise(seqs) if y <= x),
        "unexpected": len(set(got) - set(wanted)),
    }


async def _send_stream(client: Client, to: int, count: int, label: str, pause: float = 0.02) -> list[Sent]:
    sent = []
    for i in range(count):
        sent.append(
            await client.send_text(to, f"{label} {i}", client_msg_id=f"{label}-{i}-{uuid.uuid4().hex[:6]}")
        )
        await asyncio.sleep(pause)
    return sent


async def _collect(client: Client, want: int, timeout: float = 30.0) -> list[Message]:
    """What the client is delivered until `want` chat messages from others arrived (and a moment more)."""
    got: list[Message] = []
    async with asyncio.timeout(timeout):
        while sum(1 for m in got if m.type == 0 and not m.is_mine) < want:
            got.append(await client.next_message(timeout))
    await asyncio.sleep(0.5)  # anything delivered twice would arrive now
    return got + client.take_delivered()


async def test_kill_a_gateway_clients_move_to_the_other_and_lose_nothing(cluster: Cluster) -> None:
    alice, _, bob, bob_id = await friends(cluster)
    try:
        async with on_gateway(cluster, alice, "gateway-2") as a, on_gateway(cluster, bob, "gateway-1") as b:
            sender = asyncio.create_task(_send_stream(a, bob_id, 60, "gwfail"))
            await asyncio.sleep(0.4)
            cluster.kill("gateway-1")  # kill -9: no goodbye to the registry, connections just drop
            assert not sender.done()
            # still registered (IM_REGISTRY_TTL_SECONDS), but dispatch finds it refusing connections, skips it
            await asyncio.sleep(1.2)
            live = cluster.members["gateway-2"].http_port
            async with httpx.AsyncClient(base_url=cluster.dispatch_url, headers=bearer(a)) as http:
                for _ in range(4):
                    assert (await http.get("/api/allocate_gateway")).json()["port"] == live
            sent = await asyncio.wait_for(sender, 60)
            received = await _collect(b, len(sent), timeout=60)
            assert b.ws_url == gateway_url(cluster, "gateway-2") and b.connects >= 2
            assert audit(sent, received) == {"lost": 0, "duplicated": 0, "out_of_order": 0, "unexpected": 0}
            # the dead gateway's entry expires (IM_REGISTRY_TTL_SECONDS); dispatch hands out only the live one
            assert await gateways_registered(cluster, expect=1, within=10.0)
            await asyncio.sleep(1.2)  # past the dispatcher's cache of the registry
            async with httpx.AsyncClient(base_url=cluster.dispatch_url, headers=bearer(a)) as http:
                for _ in range(4):
                    assert (await http.get("/api/allocate_gateway")).json()["port"] == live
    finally:
        cluster.start("gateway-1")


async def test_kill_a_msg_node_sends_go_to_the_other_and_lose_nothing(cluster: Cluster) -> None:
    alice, alice_id, bob, bob_id = await friends(cluster)
    try:
        async with on_gateway(cluster, alice, "gateway-1") as a, on_gateway(cluster, bob, "gateway-2") as b:
            a_to_b = asyncio.create_task(_send_stream(a, bob_id, 60, "a2b"))
            b_to_a = asyncio.create_task(_send_stream(b, alice_id, 60, "b2a"))
            await asyncio.sleep(0.4)
            cluster.kill("msg-1")
            assert not a_to_b.done() and not b_to_a.done()  # killed while both were sending
            sent_ab, sent_ba = await asyncio.wait_for(asyncio.gather(a_to_b, b_to_a), 90)
            got_b, got_a = await asyncio.gather(_collect(b, 60, 60), _collect(a, 60, 60))
            clean = {"lost": 0, "duplicated": 0, "out_of_order": 0, "unexpected": 0}
            assert audit(sent_ab, [m for m in got_b if not m.is_mine]) == clean
            assert audit(sent_ba, [m for m in got_a if not m.is_mine]) == clean
            history, _ = await a.history(peer_id=bob_id, limit=200)
            texts = [m.client_msg_id for m in history if m.type == 0]
            assert len(texts) == len(set(texts)) == 120  # each message stored exactly once
    finally:
        cluster.start("msg-1")


# ---------- conversation list, read receipts, recall: across gateways ----------
async def test_receipts_recalls_and_pin_cross_gateways(cluster: Cluster) -> None:
    """Receipts and pin/mute changes travel as PushEvent calls to the gateway holding each device;
    recall entries reach both gateways through the timeline."""
    from tinyim.client import ConversationEvent, RecallEvent, ReceiptEvent

    alice, alice_id, bob, bob_id = await friends(cluster)
    async with (
        on_gateway(cluster, alice, "gateway-1", "PC") as a_pc,
        on_gateway(cluster, alice, "gateway-2", "Web") as a_web,
        on_gateway(cluster, bob, "gateway-2") as b,
    ):
        sent = await a_pc.send_text(bob_id, "across")
        got = await next_text(b)
        await b.mark_read(peer_id=alice_id, read_seq=got.seq_id)
        for device in (a_pc, a_web):  # alice's devices on both gateways
            event = await device.next_event(10)
            assert event == ReceiptEvent(bob_id, sent.seq_id)
        await a_pc.pin_conversation(peer_id=bob_id)
        assert await a_web.next_event(10) == ConversationEvent(bob_id, 0, True, False)
        await a_web.recall(sent.msg_id)
        recall = await b.next_event(10)
        assert isinstance(recall, RecallEvent) and recall.msg_id == sent.msg_id
        (listed,) = [c for c in (await b.all_conversations()) if c.peer_id == alice_id]
        assert listed.unread == 0 and "across" not in listed.preview
