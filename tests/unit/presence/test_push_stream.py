"""Message signals to another gateway ride one long-lived PushStream per gateway (real grpc.aio server on
loopback): many pushes share one stream and arrive in order; a gateway killed and started again on its
port gets a new stream and the pushes after it; a gateway of an earlier release (no PushStream) gets
PushNotify calls; the in-process-free fallback (push_stream=False) never opens a stream; a channel that
reconnected to an address another role or another gateway took over (a container restart) loses no
push and writes none to the wrong gateway; a gateway that
sends no headers as the stream opens (the release before that check) is still written to; a unary call
that reaches another gateway is refused there and goes to the one meant."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import grpc
import pytest

from tests.support.grpc_loop import StaticRegistry, directory_of
from tests.support.relay import Relay
from tests.support.server import free_port
from tests.unit.presence.test_presence_and_hub import connection
from tinyim.edges.gateway.grpc_server import GatewayServicer
from tinyim.edges.gateway.hub import GatewayHub
from tinyim.infra.node_directory import NodeDirectory
from tinyim.infra.registry import Node
from tinyim.infra.rpc import Channels, Ctx, grpc_server
from tinyim.infra.streams import consume
from tinyim.kernel import PushTarget
from tinyim.modules.presence.adapters.grpc_client import (
    PUSH_REQUEST_MAX_BYTES,
    GrpcGatewayLink,
    push_requests,
)
from tinyim.modules.presence.adapters.memory import InMemorySessionDirectory
from tinyim.pb import im_internal_pb2 as ipb
from tinyim.pb import im_internal_pb2_grpc as ipb_grpc
from tinyim.pb import im_protocol_pb2 as pb
from tinyim.wire import Cmd, decode

GW = "gw-1"


class Gateway:
    """A gateway's GatewayService on a fixed port that can be killed and started again; counts the push
    streams opened and the PushNotify calls; `streams=False`: an earlier release without PushStream."""

    def __init__(self, streams: bool = True, gateway_id: str = GW, early_headers: bool = True) -> None:
        self.hub = GatewayHub(gateway_id, InMemorySessionDirectory())
        self.streams_opened = 0
        self.calls = 0
        outer = self

        class Counting(GatewayServicer):
            async def PushStream(
                self, requests: AsyncIterator[ipb.PushNotifyInternalReq], context: Ctx
            ) -> ipb.Ack:
                if not streams:
                    await context.abort(grpc.StatusCode.UNIMPLEMENTED, "Method not found!")
                outer.streams_opened += 1
                if not early_headers:  # the release before: headers only with the stream's end
                    await consume(requests, self._streamed_push)
                    return ipb.Ack()
                return await super().PushStream(requests, context)

            async def PushNotify(
                self, request: ipb.PushNotifyInternalReq, context: Ctx
            ) -> ipb.PushNotifyResp:
                outer.calls += 1
                return await super().PushNotify(request, context)

        self.servicer = Counting(self.hub)
        self.port = free_port()
        self.server: grpc.aio.Server | None = None

    def register(self, server: grpc.aio.Server) -> list[str]:
        ipb_grpc.add_GatewayServiceServicer_to_server(self.servicer, server)
        return ["im.GatewayService"]

    async def start(self) -> None:
        self.server = grpc.aio.server()
        self.register(self.server)
        assert self.server.add_insecure_port(f"127.0.0.1:{self.port}") == self.port
        await self.server.start()

    async def kill(self) -> None:
        if self.server is not None:
            await self.server.stop(0)
            self.server = None


@asynccontextmanager
async def running(*gateways: Gateway) -> AsyncIterator[Channels]:
    """The gateways started, and channels to reach them; the channels closed and the gateways killed
    after."""
    for gateway in gateways:
        await gateway.start()
    channels = Channels()
    try:
        yield channels
    finally:
        await channels.close()
        for gateway in gateways:
            await gateway.kill()


def seqs(sent: list[bytes]) -> list[int]:
    frames = [decode(d) for d in sent]
    assert all(f.cmd == Cmd.CMD_MSG_PUSH_NOTIFY for f in frames)
    return [pb.MsgPushNotify.FromString(f.body).max_seq_id for f in frames]


async def until(check: object, seconds: float = 3.0) -> None:
    for _ in range(int(seconds / 0.02)):
        if callable(check) and check():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("timed out")


async def test_pushes_share_one_stream_and_arrive_in_order() -> None:
    gateway = Gateway()
    async with running(gateway) as channels:
        conn, sock = connection(1, "PC")
        await gateway.hub.attach(conn)
        link = GrpcGatewayLink(directory_of("gateway", GW, gateway.port), channels)
        for seq in range(1, 21):
            await link.push(GW, [PushTarget(1, seq)])
        await until(lambda: len(sock.sent) == 20 or (sock.sent and seqs(sock.sent)[-1] == 20))
        got = seqs(sock.sent)
        assert got == sorted(got) and got[-1] == 20  # in order (signals may collapse, never reorder)
        assert gateway.streams_opened == 1 and gateway.calls == 0


async def test_a_gateway_killed_and_back_gets_a_new_stream_and_the_pushes_after_it() -> None:
    gateway = Gateway()
    async with running(gateway) as channels:
        conn, sock = connection(1, "PC")
        await gateway.hub.attach(conn)
        link = GrpcGatewayLink(directory_of("gateway", GW, gateway.port), channels)
        await link.push(GW, [PushTarget(1, 1)])
        await until(lambda: seqs(sock.sent) == [1])
        await gateway.kill()
        await asyncio.sleep(0.1)
        failed = 0
        for seq in (2, 3):  # lost with the dead gateway (a hint): a failure is raised, or nothing
            try:
                await link.push(GW, [PushTarget(1, seq)])
            except Exception:
                failed += 1
        assert failed >= 1  # the broken stream is noticed, not written to forever
        await gateway.start()
        seq = 10
        while not sock.sent or seqs(sock.sent)[-1] < 10:  # the channel reconnects with a short backoff
            with contextlib.suppress(Exception):
                await link.push(GW, [PushTarget(1, seq)])
            await asyncio.sleep(0.05)
            seq += 1
            assert seq < 100
        assert gateway.streams_opened == 2 and gateway.calls == 0


async def test_a_gateway_without_push_stream_gets_push_notify_calls() -> None:
    gateway = Gateway(streams=False)
    async with running(gateway) as channels:
        conn, sock = connection(1, "PC")
        await gateway.hub.attach(conn)
        link = GrpcGatewayLink(directory_of("gateway", GW, gateway.port), channels)
        for seq in range(1, 6):
            with contextlib.suppress(Exception):
                await link.push(GW, [PushTarget(1, seq)])
            await asyncio.sleep(0.02)
        await until(lambda: bool(sock.sent) and seqs(sock.sent)[-1] == 5)
        assert gateway.calls >= 3  # at most the first batch or two were written before it was known


async def test_an_earlier_release_next_to_a_current_one_only_it_gets_calls() -> None:
    old, new = Gateway(streams=False, gateway_id="gw-old"), Gateway(gateway_id="gw-new")
    async with running(old, new) as channels:
        (old_conn, old_sock), (new_conn, new_sock) = connection(1, "PC"), connection(2, "PC")
        await old.hub.attach(old_conn)
        await new.hub.attach(new_conn)
        nodes = [
            Node("gateway", g, "127.0.0.1", grpc_port=p)
            for g, p in (("gw-old", old.port), ("gw-new", new.port))
        ]
        link = GrpcGatewayLink(NodeDirectory(StaticRegistry(nodes)), channels)
        for seq in range(1, 6):  # a rolling upgrade: pushes to both releases, interleaved
            with contextlib.suppress(Exception):
                await link.push("gw-old", [PushTarget(1, seq)])
            await link.push("gw-new", [PushTarget(2, seq)])
            await asyncio.sleep(0.02)
        await until(lambda: bool(old_sock.sent) and seqs(old_sock.sent)[-1] == 5)
        await until(lambda: bool(new_sock.sent) and seqs(new_sock.sent)[-1] == 5)
        assert (
            old.calls >= 3 and new.calls == 0 and new.streams_opened == 1
        )  # the current one keeps its stream


async def test_without_streams_every_push_is_a_call() -> None:
    gateway = Gateway()
    async with running(gateway) as channels:
        conn, sock = connection(1, "PC")
        await gateway.hub.attach(conn)
        link = GrpcGatewayLink(directory_of("gateway", GW, gateway.port), channels, push_stream=False)
        for seq in (1, 2, 3):
            await link.push(GW, [PushTarget(1, seq)])
        await until(lambda: bool(sock.sent) and seqs(sock.sent)[-1] == 3)
        assert gateway.calls == 3 and gateway.streams_opened == 0


@pytest.mark.parametrize("push_stream", [True, False], ids=["stream", "calls"])
async def test_a_push_past_grpcs_message_limit_goes_in_parts_and_every_member_gets_it(
    push_stream: bool,
) -> None:
    """A busy big group's paced push: 3 members x 1,000 messages of 2 KB = 6 MB, over the 4 MiB that a
    gRPC server takes in one message. Sent whole it would be refused and every member would sync."""
    gateway = Gateway()
    async with running(gateway) as channels:
        socks = []
        for user in (1, 2, 3):
            conn, sock = connection(user, "PC")
            await gateway.hub.attach(conn)
            socks.append(sock)
        link = GrpcGatewayLink(directory_of("gateway", GW, gateway.port), channels, push_stream=push_stream)
        targets = [PushTarget(u, seq, "", b"m" * 2000) for seq in range(1, 1001) for u in (1, 2, 3)]
        await link.push(GW, targets)
        await until(lambda: all(s.sent and seqs(s.sent)[-1] == 1000 for s in socks))
        assert gateway.calls == (0 if push_stream else 6)


def test_push_requests_keep_every_target_in_order_under_the_size() -> None:
    targets = [
        PushTarget(u, seq, "PC" if u == 1 else "", b"m" * (seq % 300))
        for seq in range(1, 5000)
        for u in (1, 2)
    ]
    requests = push_requests(targets, max_bytes=64 * 1024)
    assert len(requests) > 10
    assert all(r.ByteSize() <= 64 * 1024 for r in requests)
    got = [(t.user_id, t.max_seq_id, t.except_device, t.message) for r in requests for t in r.batch]
    assert got == [(t.user_id, t.max_seq, t.except_device, t.message) for t in targets]
    assert len(push_requests(targets[:3])) == 1 and push_requests([]) == []
    assert PUSH_REQUEST_MAX_BYTES < 4 * 1024 * 1024


async def test_a_stopping_gateway_ends_its_push_streams_without_waiting_its_grace() -> None:
    gateway = Gateway()
    serve = asynccontextmanager(grpc_server)
    server = serve("127.0.0.1", gateway.port, [gateway.register], grace_seconds=10.0)
    channels = Channels()
    try:
        await server.__aenter__()
        conn, sock = connection(1, "PC")
        await gateway.hub.attach(conn)
        link = GrpcGatewayLink(directory_of("gateway", GW, gateway.port), channels)
        await link.push(GW, [PushTarget(1, 1)])
        await until(lambda: seqs(sock.sent) == [1])
        started = asyncio.get_running_loop().time()
        await asyncio.wait_for(server.__aexit__(None, None, None), 5.0)
        assert asyncio.get_running_loop().time() - started < 5.0  # not the 10 s grace
        assert gateway.streams_opened == 1
    finally:
        await channels.close()


async def test_an_address_another_role_took_over_costs_no_push() -> None:
    gateway = Gateway()
    await gateway.start()
    other = grpc.aio.server()  # another role on the gateway's old address: no GatewayService
    other_port = other.add_insecure_port("127.0.0.1:0")
    await other.start()
    relay = Relay(first=other_port, then=gateway.port)
    await relay.start()
    channels = Channels()
    try:
        conn, sock = connection(1, "PC")
        await gateway.hub.attach(conn)
        link = GrpcGatewayLink(directory_of("gateway", GW, relay.port), channels)
        await link.push(GW, [PushTarget(1, 1)])
        await until(lambda: seqs(sock.sent) == [1])  # the first batch is not written into the void
        for seq in (2, 3):
            await link.push(GW, [PushTarget(1, seq)])
        await until(lambda: seqs(sock.sent)[-1] == 3)
        # one reconnection, then the stream: not taken for a gateway of an earlier release
        assert relay.connections == 2 and gateway.streams_opened == 1 and gateway.calls == 0
    finally:
        await channels.close()
        await relay.stop()
        await other.stop(0)
        await gateway.kill()


async def test_a_gateway_that_sends_no_early_headers_is_still_written_to() -> None:
    gateway = Gateway(early_headers=False)
    async with running(gateway) as channels:
        conn, sock = connection(1, "PC")
        await gateway.hub.attach(conn)
        link = GrpcGatewayLink(directory_of("gateway", GW, gateway.port), channels, deadline_seconds=0.3)
        for seq in (1, 2, 3):
            await link.push(GW, [PushTarget(1, seq)])
        await until(lambda: bool(sock.sent) and seqs(sock.sent)[-1] == 3)
        assert gateway.streams_opened == 1 and gateway.calls == 0


@asynccontextmanager
async def another_gateway_answering_first() -> AsyncIterator[tuple[Gateway, Gateway, Relay, Channels]]:
    """The gateway meant (gw-1, registered at the relay's address) and gw-2, which answers the relay's
    first connection: what a channel meets after two containers came back with each other's addresses."""
    meant, other = Gateway(), Gateway(gateway_id="gw-2")
    async with running(meant, other) as channels:
        relay = Relay(first=other.port, then=meant.port)
        await relay.start()
        try:
            yield meant, other, relay, channels
        finally:
            await relay.stop()


async def test_an_address_another_gateway_took_over_gets_no_push_of_this_one() -> None:
    async with another_gateway_answering_first() as (meant, other, relay, channels):
        (conn, sock), (other_conn, other_sock) = connection(1, "PC"), connection(1, "PC")
        await meant.hub.attach(conn)
        await other.hub.attach(other_conn)  # the same user on the other gateway: must not be signalled
        link = GrpcGatewayLink(directory_of("gateway", GW, relay.port), channels)
        for seq in (1, 2):
            await link.push(GW, [PushTarget(1, seq)])
        await until(lambda: bool(sock.sent) and seqs(sock.sent)[-1] == 2)
        assert other_sock.sent == [] and relay.connections == 2 and meant.streams_opened == 1


async def test_a_unary_call_another_gateway_answers_is_refused_and_goes_to_the_one_meant() -> None:
    """A kick (a unary call) through a channel that reconnected to another gateway's address: that gateway
    refuses it (the call names the gateway meant), the caller reconnects, and only the one meant kicks."""
    async with another_gateway_answering_first() as (meant, other, relay, channels):
        (conn, _), (other_conn, _) = connection(1, "PC"), connection(1, "PC")
        await meant.hub.attach(conn)
        await other.hub.attach(other_conn)  # the same user and device on the other gateway: not to be kicked
        link = GrpcGatewayLink(directory_of("gateway", GW, relay.port), channels)
        await link.kick(GW, 1, "PC", "", "logged in elsewhere")
        assert conn.closed and not other_conn.closed
        assert meant.hub.connections_of(1) == {} and other.hub.connections_of(1) != {}
        assert relay.connections == 2


async def test_a_unary_call_that_names_no_gateway_is_served() -> None:
    """A caller of the release before (no target header) is still served."""
    gateway = Gateway()
    async with running(gateway) as channels:
        conn, _ = connection(1, "PC")
        await gateway.hub.attach(conn)
        stub = ipb_grpc.GatewayServiceStub(channels.get(f"127.0.0.1:{gateway.port}"))
        reply = await stub.KickUser(ipb.KickUserInternalReq(user_id=1, device_id="PC", reason="x"), timeout=5)
        assert reply.success and conn.closed
