"""GatewayLink contract: the in-process link and the gRPC link (GatewayService) reach a hub alike."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from tests.support.grpc_loop import StaticRegistry, directory_of, listening
from tests.unit.presence.test_presence_and_hub import connection
from tinyim.edges.gateway.connection import CLOSE_KICKED
from tinyim.edges.gateway.grpc_server import gateway_registrar
from tinyim.edges.gateway.hub import GatewayHub, LocalGatewayLink
from tinyim.infra.node_directory import NodeDirectory
from tinyim.infra.rpc import Channels
from tinyim.kernel import PushTarget
from tinyim.modules.presence import GatewayLink
from tinyim.modules.presence.adapters.grpc_client import GrpcGatewayLink
from tinyim.modules.presence.adapters.memory import InMemorySessionDirectory
from tinyim.pb import im_protocol_pb2 as pb
from tinyim.wire import Cmd, decode

GW = "gw-test"


@pytest.fixture(params=["local", "grpc"])
async def hub_and_link(request: pytest.FixtureRequest) -> AsyncIterator[tuple[GatewayHub, GatewayLink]]:
    hub = GatewayHub(GW, InMemorySessionDirectory())
    if request.param == "local":
        yield hub, LocalGatewayLink(hub)
        return
    async with listening(gateway_registrar(hub)) as port:
        channels = Channels()
        yield hub, GrpcGatewayLink(directory_of("gateway", GW, port), channels)
        await channels.close()


async def test_push_signals_every_device_but_the_sender(hub_and_link: tuple[GatewayHub, GatewayLink]) -> None:
    hub, link = hub_and_link
    pc, pc_sock = connection(1, "PC")
    web, web_sock = connection(1, "Web")
    other, other_sock = connection(2, "PC")
    for conn in (pc, web, other):
        await hub.attach(conn)
    await link.push(GW, [PushTarget(1, 7, except_device="PC"), PushTarget(2, 3)])
    await asyncio.sleep(0.05)
    assert pc_sock.sent == []
    for sock, seq in ((web_sock, 7), (other_sock, 3)):
        (frame,) = [decode(d) for d in sock.sent]
        assert frame.cmd == Cmd.CMD_MSG_PUSH_NOTIFY
        assert pb.MsgPushNotify.FromString(frame.body).max_seq_id == seq


async def test_kick_closes_only_the_named_device_and_spares_the_new_session(
    hub_and_link: tuple[GatewayHub, GatewayLink],
) -> None:
    hub, link = hub_and_link
    pc, pc_sock = connection(1, "PC", token="old")
    web, web_sock = connection(1, "Web", token="w")
    await hub.attach(pc)
    await hub.attach(web)
    await link.kick(GW, 1, "PC", keep_token_id="new", reason="logged in elsewhere")
    await asyncio.sleep(0.05)  # the kick's frames go out in the background (never waiting on the socket)
    assert pc_sock.closed_with == CLOSE_KICKED and pc_sock.cmds() == [Cmd.CMD_KICK_NOTIFY]
    assert web_sock.closed_with is None and hub.connections_of(1) == {"Web": web}
    await link.kick(GW, 1, "Web", keep_token_id="w", reason="same session")
    assert web_sock.closed_with is None


async def test_read_notify_reaches_the_other_devices(hub_and_link: tuple[GatewayHub, GatewayLink]) -> None:
    hub, link = hub_and_link
    pc, pc_sock = connection(1, "PC")
    web, web_sock = connection(1, "Web")
    await hub.attach(pc)
    await hub.attach(web)
    await link.push_read(GW, 1, "PC", peer_id=2, group_id=0, read_seq=9)
    await asyncio.sleep(0.05)
    assert pc_sock.sent == []
    (frame,) = [decode(d) for d in web_sock.sent]
    assert frame.cmd == Cmd.CMD_READ_NOTIFY and pb.ReadNotify.FromString(frame.body).read_seq == 9


async def test_a_gateway_that_is_not_registered_costs_nothing() -> None:
    link = GrpcGatewayLink(NodeDirectory(StaticRegistry([])), Channels())
    await link.push("gw-gone", [PushTarget(1, 1)])  # push is only a hint: dropped, no error


# ---------- online status and typing ----------
async def test_status_and_typing_reach_the_named_users_devices(
    hub_and_link: tuple[GatewayHub, GatewayLink],
) -> None:
    from tinyim.modules.presence import Status, StatusView

    hub, link = hub_and_link
    pc, pc_sock = connection(1, "PC")
    web, web_sock = connection(1, "Web")
    other, other_sock = connection(2, "PC")
    third, third_sock = connection(3, "PC")
    for conn in (pc, web, other, third):
        await hub.attach(conn)
    await link.push_status(GW, [1, 2], StatusView(9, Status.AWAY, 1_800_000_000_123))
    await link.push_typing(GW, 3, from_user_id=9, stopped=True)
    await asyncio.sleep(0.05)
    for sock in (pc_sock, web_sock, other_sock):
        (frame,) = [decode(d) for d in sock.sent]
        assert frame.cmd == Cmd.CMD_STATUS_NOTIFY
        info = pb.StatusNotify.FromString(frame.body).status
        assert (info.user_id, info.status, info.last_seen) == (9, pb.STATUS_AWAY, 1_800_000_000_123)
    (frame,) = [decode(d) for d in third_sock.sent]
    typing = pb.TypingNotify.FromString(frame.body)
    assert frame.cmd == Cmd.CMD_TYPING_NOTIFY and (typing.user_id, typing.stopped) == (9, True)
