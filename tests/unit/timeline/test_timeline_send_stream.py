"""The timeline's gRPC client sends its batches on one long-lived SendMsgStream per msg node, over real
grpc.aio servers on loopback: many batches share a stream and each caller gets its own result; a node
killed mid-stream fails its waiting batches over (only when every item has a client_msg_id) or fails
them clearly; the next batch to a node back on its port opens a new stream; a batch not answered in time
fails UNAVAILABLE and the stream lives on; a node of an earlier release gets unary SendMsgBatch calls,
but a node whose address another role answered first (a container restart) keeps its stream; every item
carries its own request id."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

import grpc

from tests.support.grpc_loop import StaticRegistry
from tests.support.relay import Relay
from tests.support.server import free_port
from tests.unit.fakes import FakePolicy, RecordingNotifier
from tinyim.infra import tracing
from tinyim.infra.node_directory import NodeDirectory
from tinyim.infra.registry import Node
from tinyim.infra.rpc import Channels, Ctx, RoleChannels, grpc_server
from tinyim.infra.snowflake import Snowflake
from tinyim.kernel import NOT_FOUND, UNAVAILABLE, Caller, ImError
from tinyim.modules.timeline import MsgType, SendRequest, SendResult, TimelineService, TimelineWriter
from tinyim.modules.timeline.adapters.memory import InMemoryTimelineStore
from tinyim.modules.timeline.adapters.rpc import GrpcTimelineClient, MsgServicer
from tinyim.pb import im_internal_pb2 as ipb
from tinyim.pb import im_internal_pb2_grpc as ipb_grpc

USERS = set(range(1, 40))
STRANGER = 999


class MsgNode:
    """One msg node on a fixed port: can be killed (server stopped at once, as SIGKILL looks to its
    peers) and started again; counts the streams opened to it and the batches it served; can hold
    batches at a gate; `streams=False` serves only the unary methods (an earlier release)."""

    def __init__(self, name: str, store: InMemoryTimelineStore, streams: bool = True) -> None:
        self.name = name
        writer = TimelineWriter(store, Snowflake(len(name)), RecordingNotifier())
        service = TimelineService(store, writer, FakePolicy(USERS), RecordingNotifier())
        self.streams_opened = 0
        self.batches: list[int] = []  # items per batch served (stream or unary)
        self.unary_batches = 0
        self.request_ids: list[str] = []
        self.arrived = asyncio.Event()  # set by each batch that arrives
        self.gate = asyncio.Event()
        self.gate.set()
        outer = self

        class Recording(MsgServicer):
            async def SendMsgStream(
                self, requests: AsyncIterator[ipb.SendMsgBatchReq], context: Ctx
            ) -> AsyncIterator[ipb.SendMsgBatchResp]:
                if not streams:
                    await context.abort(grpc.StatusCode.UNIMPLEMENTED, "Method not found!")
                outer.streams_opened += 1
                async for answer in super().SendMsgStream(requests, context):
                    yield answer

            async def SendMsgBatch(self, request: ipb.SendMsgBatchReq, context: Ctx) -> ipb.SendMsgBatchResp:
                outer.unary_batches += 1
                return await super().SendMsgBatch(request, context)

            async def _send_batch(self, request: ipb.SendMsgBatchReq) -> ipb.SendMsgBatchResp:
                outer.batches.append(len(request.items))
                outer.request_ids.extend(item.ctx.request_id for item in request.items)
                outer.arrived.set()
                await outer.gate.wait()
                return await super()._send_batch(request)

        self.servicer = Recording(service, writer)
        self.port = free_port()
        self.server: grpc.aio.Server | None = None

    @property
    def node(self) -> Node:
        return Node("msg", self.name, "127.0.0.1", grpc_port=self.port)

    def register(self, server: grpc.aio.Server) -> list[str]:
        ipb_grpc.add_MsgServiceServicer_to_server(self.servicer, server)
        return ["im.MsgService"]

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
async def msg_nodes(
    *names: str, old: tuple[str, ...] = (), deadline: float = 5.0
) -> AsyncIterator[tuple[GrpcTimelineClient, dict[str, MsgNode], InMemoryTimelineStore]]:
    store = InMemoryTimelineStore()
    nodes = {name: MsgNode(name, store, streams=name not in old) for name in names}
    async with AsyncExitStack() as stack:
        for node in nodes.values():
            await node.start()
            stack.push_async_callback(node.kill)
        channels = Channels()
        stack.push_async_callback(channels.close)
        directory = NodeDirectory(StaticRegistry([n.node for n in nodes.values()]))
        remote = RoleChannels("msg", directory, channels, ipb_grpc.MsgServiceStub, deadline)
        yield GrpcTimelineClient(remote, send_calls_in_flight=1), nodes, store


def send(
    client: GrpcTimelineClient, sender: int, receiver: int, text: str, cmid: str = ""
) -> asyncio.Task[SendResult]:
    return asyncio.create_task(
        client.send(Caller(sender, "PC"), SendRequest(receiver, 0, MsgType.TEXT, text, cmid))
    )


async def test_batches_share_one_stream_and_each_caller_gets_its_own_result() -> None:
    async with msg_nodes("a") as (client, nodes, store):
        node = nodes["a"]
        for round_ in range(3):
            node.gate.clear()
            node.arrived.clear()
            first = send(client, 1, 2, f"r{round_} first")
            await asyncio.wait_for(node.arrived.wait(), 2.0)
            rest = [send(client, 2 * i + 1, 2 * i + 2, f"r{round_} m{i}") for i in range(1, 6)]
            await asyncio.sleep(0.05)
            node.gate.set()
            results = await asyncio.gather(first, *rest)
            for i, r in enumerate(results):
                mine = store.timelines[2 * i + 1][-1]
                assert (mine.msg_id, mine.seq_id) == (r.msg_id, r.seq_id)
        assert node.batches == [1, 5] * 3
        assert node.streams_opened == 1  # six batches, one stream
        assert node.unary_batches == 0


async def test_an_error_in_one_item_fails_only_that_item() -> None:
    async with msg_nodes("a") as (client, nodes, store):
        nodes["a"].gate.clear()
        blocker = send(client, 1, 2, "hold")
        await asyncio.wait_for(nodes["a"].arrived.wait(), 2.0)
        good, bad = send(client, 3, 4, "ok"), send(client, 5, STRANGER, "to nobody")
        await asyncio.sleep(0.05)
        nodes["a"].gate.set()
        await blocker
        outcomes = await asyncio.gather(good, bad, return_exceptions=True)
        assert isinstance(outcomes[0], SendResult)
        assert isinstance(outcomes[1], ImError) and outcomes[1].code == NOT_FOUND
        assert [m.content for m in store.timelines[4]] == ["ok"]


async def test_a_node_killed_mid_stream_fails_over_the_batches_whose_items_all_have_an_id() -> None:
    async with msg_nodes("dying", "live") as (client, nodes, store):
        dying = nodes["dying"]
        for i in range(2):  # a stream open to each node (round robin); "dying" is next
            await asyncio.wait_for(send(client, 9, 10, f"warm {i}", cmid=f"w{i}"), 2.0)
        assert dying.batches == [1] and nodes["live"].batches == [1]
        dying.gate.clear()
        dying.arrived.clear()
        pending = send(client, 1, 2, "m", cmid="c1")
        await asyncio.wait_for(dying.arrived.wait(), 2.0)
        await dying.kill()  # held at the gate: nothing was written there
        result = await asyncio.wait_for(pending, 3.0)
        assert [m.content for m in store.timelines[2]] == ["m"]
        assert result.seq_id == store.timelines[2][0].seq_id


async def test_a_batch_without_ids_fails_clearly_when_its_node_is_killed_mid_stream() -> None:
    async with msg_nodes("a") as (client, nodes, store):
        nodes["a"].gate.clear()
        pending = send(client, 1, 2, "no id")
        await asyncio.wait_for(nodes["a"].arrived.wait(), 2.0)
        await nodes["a"].kill()
        outcome = (await asyncio.gather(pending, return_exceptions=True))[0]
        assert isinstance(outcome, ImError) and outcome.code == UNAVAILABLE
        assert nodes["a"].batches == [1]  # not sent again: a retry might have written twice
        assert not store.timelines.get(2)


async def test_after_a_broken_stream_the_next_batch_opens_a_new_one() -> None:
    async with msg_nodes("a") as (client, nodes, store):
        node = nodes["a"]
        await asyncio.wait_for(send(client, 1, 2, "before"), 2.0)
        await node.kill()
        down = (await asyncio.gather(send(client, 1, 2, "while down"), return_exceptions=True))[0]
        assert isinstance(down, ImError) and down.code == UNAVAILABLE
        await node.start()  # the node is back on its port
        result = None
        for _ in range(50):  # the channel reconnects with a short backoff
            try:
                result = await asyncio.wait_for(send(client, 1, 2, "after"), 2.0)
                break
            except ImError:
                await asyncio.sleep(0.1)
        assert result is not None
        assert [m.content for m in store.timelines[2]] == ["before", "after"]
        assert node.streams_opened == 2 and node.unary_batches == 0


async def test_a_batch_not_answered_in_time_fails_and_the_stream_lives_on() -> None:
    # a deadline the next send meets on a loaded CI box too (0.3 s was missed there: 4 workers, 2 cores)
    async with msg_nodes("a", deadline=1.0) as (client, nodes, _store):
        nodes["a"].gate.clear()
        late = (await asyncio.gather(send(client, 1, 2, "late"), return_exceptions=True))[0]
        assert isinstance(late, ImError) and late.code == UNAVAILABLE and "in time" in late.message
        nodes["a"].gate.set()
        await asyncio.wait_for(send(client, 3, 4, "next"), 2.0)
        assert nodes["a"].streams_opened == 1


async def test_a_node_without_the_stream_gets_unary_batches() -> None:
    async with msg_nodes("old", old=("old",)) as (client, nodes, store):
        results = await asyncio.gather(*(send(client, 1, 2, f"m{i}") for i in range(3)))
        assert len({r.seq_id for r in results}) == 3
        assert nodes["old"].unary_batches >= 1
        assert [m.content for m in store.timelines[2]] == ["m0", "m1", "m2"]


async def test_an_address_another_role_answered_first_keeps_the_stream() -> None:
    store = InMemoryTimelineStore()
    node = MsgNode("a", store)
    await node.start()
    other = grpc.aio.server()  # another role on the node's old address: no MsgService
    other_port = other.add_insecure_port("127.0.0.1:0")
    await other.start()
    relay = Relay(first=other_port, then=node.port)
    await relay.start()
    channels = Channels()
    try:
        directory = NodeDirectory(StaticRegistry([Node("msg", "a", "127.0.0.1", grpc_port=relay.port)]))
        remote = RoleChannels("msg", directory, channels, ipb_grpc.MsgServiceStub, 5.0)
        client = GrpcTimelineClient(remote, send_calls_in_flight=1)
        for i in range(3):
            await asyncio.wait_for(send(client, 1, 2, f"m{i}"), 3.0)
        assert [m.content for m in store.timelines[2]] == ["m0", "m1", "m2"]
        # one reconnection, then the stream: not taken for a node of an earlier release
        assert relay.connections == 2 and node.streams_opened == 1 and node.unary_batches == 0
    finally:
        await channels.close()
        await relay.stop()
        await other.stop(0)
        await node.kill()


async def test_each_item_of_a_streamed_batch_carries_its_own_request_id() -> None:
    async with msg_nodes("a") as (client, nodes, _store):
        nodes["a"].gate.clear()

        async def traced(rid: str, sender: int) -> SendResult:
            tracing.adopt(rid)
            return await client.send(Caller(sender, "PC"), SendRequest(sender + 1, 0, MsgType.TEXT, rid, ""))

        first = asyncio.create_task(traced("rid-first", 1))
        await asyncio.wait_for(nodes["a"].arrived.wait(), 2.0)
        others = [asyncio.create_task(traced(f"rid-{i}", 2 * i + 1)) for i in range(1, 4)]
        await asyncio.sleep(0.05)
        nodes["a"].gate.set()
        await asyncio.gather(first, *others)
        assert nodes["a"].batches == [1, 3]
        assert sorted(nodes["a"].request_ids) == sorted(["rid-first", "rid-1", "rid-2", "rid-3"])


async def test_a_stopping_node_answers_what_it_read_and_ends_its_streams_without_waiting_its_grace() -> None:
    """A stop must not wait its whole grace for gateways that keep their streams open; a batch being
    served when the stop begins is still answered, and the next one goes to another node."""
    store = InMemoryTimelineStore()
    stopping, live = MsgNode("stopping", store), MsgNode("live", store)
    await live.start()
    serve = asynccontextmanager(grpc_server)
    node_server = serve("127.0.0.1", stopping.port, [stopping.register], grace_seconds=10.0)
    channels = Channels()
    try:
        await node_server.__aenter__()
        directory = NodeDirectory(StaticRegistry([stopping.node, live.node]))
        remote = RoleChannels("msg", directory, channels, ipb_grpc.MsgServiceStub, 5.0)
        client = GrpcTimelineClient(remote, send_calls_in_flight=1)
        await asyncio.wait_for(send(client, 1, 2, "opens the stream"), 2.0)  # round robin: "stopping"
        stopping.gate.clear()
        stopping.arrived.clear()
        await asyncio.wait_for(send(client, 3, 4, "to live"), 2.0)
        held = send(client, 5, 6, "held")  # without an id: only an answer from "stopping" will do
        await asyncio.wait_for(stopping.arrived.wait(), 2.0)
        started = asyncio.get_running_loop().time()
        stop = asyncio.create_task(node_server.__aexit__(None, None, None))
        await asyncio.sleep(0.2)
        stopping.gate.set()
        assert (await asyncio.wait_for(held, 3.0)).seq_id == 1
        await asyncio.wait_for(stop, 5.0)
        assert asyncio.get_running_loop().time() - started < 5.0  # not the 10 s grace
        assert [m.content for m in store.timelines[6]] == ["held"]
        after = await asyncio.wait_for(send(client, 7, 8, "after the stop"), 3.0)
        assert after.seq_id == 1 and live.batches[-1] == 1
    finally:
        await channels.close()
        await live.kill()
