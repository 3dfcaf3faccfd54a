"""The timeline's gRPC client batches sends (SendMsgBatch) over real grpc.aio servers on loopback:
concurrent sends share a call, an error in one item fails only that item, a dead msg node fails over,
and a lone send is not held back."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

import grpc
import pytest

from tests.support.grpc_loop import StaticRegistry, listening
from tests.unit.fakes import FakePolicy, RecordingNotifier
from tinyim.infra.node_directory import NodeDirectory
from tinyim.infra.registry import Node
from tinyim.infra.rpc import Channels, Ctx, RoleChannels
from tinyim.infra.snowflake import Snowflake
from tinyim.kernel import NOT_FOUND, UNAVAILABLE, Caller, ImError
from tinyim.modules.timeline import MsgType, SendRequest, SendResult, TimelineService, TimelineWriter
from tinyim.modules.timeline.adapters.memory import InMemoryTimelineStore
from tinyim.modules.timeline.adapters.rpc import GrpcTimelineClient, MsgServicer
from tinyim.pb import im_internal_pb2 as ipb
from tinyim.pb import im_internal_pb2_grpc as ipb_grpc

USERS = set(range(1, 40))
STRANGER = 999  # not a user: the policy refuses a send to them


class Node_:
    """One msg node: a real TimelineService behind a servicer that records every batch it serves, can
    hold batches at a gate, or can fail them as a node dying mid-call does (UNAVAILABLE, no error code)."""

    def __init__(self, name: str, store: InMemoryTimelineStore) -> None:
        self.name = name
        self.store = store
        writer = TimelineWriter(store, Snowflake(len(name)), RecordingNotifier())
        service = TimelineService(store, writer, FakePolicy(USERS), RecordingNotifier())
        self.batches: list[int] = []  # items per SendMsgBatch served
        self.served = asyncio.Event()  # set by the first batch to arrive
        self.gate = asyncio.Event()
        self.gate.set()
        self.dies_mid_call = False
        outer = self

        class Recording(MsgServicer):
            async def SendMsgBatch(self, request: ipb.SendMsgBatchReq, context: Ctx) -> ipb.SendMsgBatchResp:
                outer.batches.append(len(request.items))
                outer.served.set()
                await outer.gate.wait()
                if outer.dies_mid_call:
                    await context.abort(grpc.StatusCode.UNAVAILABLE, "connection reset")
                return await super().SendMsgBatch(request, context)

        self.servicer = Recording(service, writer)

    def register(self, server: grpc.aio.Server) -> list[str]:
        ipb_grpc.add_MsgServiceServicer_to_server(self.servicer, server)
        return ["im.MsgService"]


def _refused_port() -> int:
    """A loopback port nothing listens on (a node that died: connections are refused)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@asynccontextmanager
async def cluster(
    *names: str, dead: tuple[str, ...] = (), in_flight: int = 1
) -> AsyncIterator[tuple[GrpcTimelineClient, dict[str, Node_], InMemoryTimelineStore]]:
    """Msg nodes sharing one store (as msg nodes share the database) and a client of the role."""
    store = InMemoryTimelineStore()
    nodes = {name: Node_(name, store) for name in names}
    async with AsyncExitStack() as stack:
        listed = []
        for name in names:
            port = await stack.enter_async_context(listening(nodes[name].register))
            listed.append(Node("msg", name, "127.0.0.1", grpc_port=port))
        listed += [Node("msg", name, "127.0.0.1", grpc_port=_refused_port()) for name in dead]
        channels = Channels()
        stack.push_async_callback(channels.close)
        remote = RoleChannels(
            "msg", NodeDirectory(StaticRegistry(listed)), channels, ipb_grpc.MsgServiceStub, 5.0
        )
        # SendMsgBatch calls (the streamed batches: test_timeline_send_stream.py)
        yield GrpcTimelineClient(remote, send_calls_in_flight=in_flight, send_stream=False), nodes, store


def send(
    client: GrpcTimelineClient, sender: int, receiver: int, text: str, cmid: str = ""
) -> asyncio.Task[SendResult]:
    return asyncio.create_task(
        client.send(Caller(sender, "PC"), SendRequest(receiver, 0, MsgType.TEXT, text, cmid))
    )


async def test_concurrent_sends_share_one_call_and_each_gets_its_own_result() -> None:
    async with cluster("a") as (client, nodes, store):
        node = nodes["a"]
        node.gate.clear()
        first = send(client, 1, 2, "first")
        await asyncio.wait_for(node.served.wait(), 2.0)  # the lone first send left at once
        rest = [send(client, 2 * i + 1, 2 * i + 2, f"m{i}") for i in range(1, 8)]
        await asyncio.sleep(0.05)
        assert node.batches == [1]  # the others wait for the call in flight
        node.gate.set()
        results = await asyncio.gather(first, *rest)
        assert node.batches == [1, 7]
        assert len({r.msg_id for r in results}) == 8
        for i, r in enumerate(results):  # each caller got its own message's seq, in its own timeline
            (mine,) = store.timelines[2 * i + 1]
            assert (mine.msg_id, mine.seq_id, mine.content) == (
                r.msg_id,
                r.seq_id,
                "first" if i == 0 else f"m{i}",
            )


async def test_an_error_in_one_item_fails_only_that_item() -> None:
    async with cluster("a") as (client, nodes, store):
        node = nodes["a"]
        node.gate.clear()
        blocker = send(client, 1, 2, "hold")
        await asyncio.wait_for(node.served.wait(), 2.0)
        good1 = send(client, 3, 4, "ok 1")
        bad = send(client, 5, STRANGER, "to nobody")
        good2 = send(client, 6, 7, "ok 2")
        await asyncio.sleep(0.05)
        node.gate.set()
        await blocker
        outcomes = await asyncio.gather(good1, bad, good2, return_exceptions=True)
        assert node.batches == [1, 3]
        assert isinstance(outcomes[1], ImError) and outcomes[1].code == NOT_FOUND
        assert isinstance(outcomes[0], SendResult) and isinstance(outcomes[2], SendResult)
        assert [m.content for m in store.timelines[4]] == ["ok 1"]
        assert [m.content for m in store.timelines[7]] == ["ok 2"]
        assert 5 not in store.timelines or not store.timelines[5]  # the refused send wrote nothing


async def test_a_lone_send_is_one_call_of_one_item() -> None:
    async with cluster("a") as (client, nodes, _):
        for i in range(3):  # one after another: nothing to gather, nothing waits
            await asyncio.wait_for(send(client, 1, 2, f"m{i}"), 2.0)
        assert nodes["a"].batches == [1, 1, 1]


async def test_a_node_that_refuses_connections_is_skipped() -> None:
    async with cluster("live", dead=("dead",)) as (client, nodes, store):
        # without a client_msg_id too: a refused connection means nothing ran there
        results = await asyncio.gather(*(send(client, 1, 2, f"m{i}") for i in range(6)))
        assert len({r.seq_id for r in results}) == 6
        assert sum(nodes["live"].batches) == 6
        assert len(store.timelines[2]) == 6


async def test_a_batch_whose_node_dies_mid_call_is_retried_elsewhere_when_every_item_has_an_id() -> None:
    async with cluster("dying", "live") as (client, nodes, store):
        nodes["dying"].dies_mid_call = True
        results = await asyncio.gather(
            *(send(client, 1, 2, f"m{i}", cmid=f"c{i}") for i in range(4)), return_exceptions=True
        )
        assert all(isinstance(r, SendResult) for r in results)
        assert [m.content for m in store.timelines[2]] == [f"m{i}" for i in range(4)]


async def test_a_send_without_id_is_not_retried_after_a_mid_call_failure() -> None:
    async with cluster("a", "b") as (client, nodes, _):
        for node in nodes.values():
            node.dies_mid_call = True
        outcomes = await asyncio.gather(send(client, 3, 4, "without"), return_exceptions=True)
        assert all(isinstance(o, ImError) and o.code == UNAVAILABLE for o in outcomes)
        assert sum(len(n.batches) for n in nodes.values()) == 1  # once only: a retry might write twice


async def test_sends_with_and_without_id_batch_apart_so_the_ones_with_an_id_keep_their_retry() -> None:
    async with cluster("dying", "live") as (client, nodes, store):
        nodes["dying"].dies_mid_call = True
        for node in nodes.values():
            node.gate.clear()
        with_id = [send(client, 1, 2, f"id {i}", cmid=f"c{i}") for i in range(3)]
        without = [send(client, 3, 4, f"plain {i}") for i in range(3)]

        def served() -> list[int]:
            return sorted(n for node in nodes.values() for n in node.batches)

        for _ in range(500):  # both calls reach their nodes (a busy machine may take a while)
            if len(served()) >= 2:
                break
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.05)  # and no third one follows
        assert served() == [3, 3]  # two calls: one batch of each kind, never mixed
        for node in nodes.values():
            node.gate.set()
        outcomes = await asyncio.gather(*with_id, *without, return_exceptions=True)
        assert all(isinstance(o, SendResult) for o in outcomes[:3])  # retried on the live node if need be
        assert [m.content for m in store.timelines[2]] == [f"id {i}" for i in range(3)]


async def test_a_batch_whose_items_all_have_an_id_is_tried_on_every_node_before_it_fails() -> None:
    async with cluster("a", "b") as (client, nodes, _store):
        for node in nodes.values():
            node.dies_mid_call = True
        retried = await asyncio.gather(
            send(client, 1, 2, "x", cmid="c1"), send(client, 3, 4, "y", cmid="c2"), return_exceptions=True
        )
        assert all(isinstance(o, ImError) and o.code == UNAVAILABLE for o in retried)
        assert sum(len(n.batches) for n in nodes.values()) == 2  # tried on both nodes


async def test_a_msg_node_refuses_an_oversized_batch() -> None:
    async with (
        cluster("a") as (_, nodes, _store),
        listening(nodes["a"].register) as port,
        grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel,
    ):
        stub = ipb_grpc.MsgServiceStub(channel)
        item = ipb.SendMsgInternalReq(ctx=ipb.ContextReq(user_id=1, device_id="PC"))
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await stub.SendMsgBatch(ipb.SendMsgBatchReq(items=[item] * 2000))
        assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
