"""Read receipts and conversation changes as client frames: the timeline's FramePushNotifier through
presence routing to a gateway hub, over the in-process link and the gRPC link (GatewayService.PushEvent)."""

from __future__ import annotations

import asyncio

from tests.contract.presence.test_gateway_link import GW, hub_and_link  # noqa: F401 (fixture)
from tests.unit.presence.test_presence_and_hub import connection
from tinyim.edges.gateway.hub import GatewayHub
from tinyim.modules.presence import GatewayLink, PresenceRouter
from tinyim.modules.timeline import Conversation, ConversationView, ConvType
from tinyim.modules.timeline.adapters.push import FramePushNotifier
from tinyim.pb import im_protocol_pb2 as pb
from tinyim.wire import Cmd, decode


async def test_receipts_reach_every_device_and_conversation_changes_the_other_ones(
    hub_and_link: tuple[GatewayHub, GatewayLink],  # noqa: F811
) -> None:
    hub, link = hub_and_link
    sessions = hub._sessions  # the hub binds what it attaches
    notifier = FramePushNotifier(PresenceRouter(sessions, link))
    pc, pc_sock = connection(1, "PC")
    web, web_sock = connection(1, "Web")
    stranger, stranger_sock = connection(3, "PC")
    for conn in (pc, web, stranger):
        await hub.attach(conn)

    await notifier.notify_receipt(1, peer_id=2, read_seq=41)
    view = ConversationView(Conversation(ConvType.GROUP, 7), 5, 6, 2, 0, "hi", 0, 5, 0, True, False)
    await notifier.notify_conversation(1, "PC", view)
    await asyncio.sleep(0.05)

    pc_frames = [decode(d) for d in pc_sock.sent]
    web_frames = [decode(d) for d in web_sock.sent]
    assert [f.cmd for f in pc_frames] == [Cmd.CMD_RECEIPT_NOTIFY]
    assert [f.cmd for f in web_frames] == [Cmd.CMD_RECEIPT_NOTIFY, Cmd.CMD_CONV_NOTIFY]
    receipt = pb.ReceiptNotify.FromString(web_frames[0].body)
    assert (receipt.peer_id, receipt.read_seq) == (2, 41)
    change = pb.ConversationNotify.FromString(web_frames[1].body)
    assert (change.peer_id, change.group_id, change.pinned, change.muted) == (0, 7, True, False)
    assert stranger_sock.sent == []


async def test_event_push_to_an_offline_user_costs_nothing(
    hub_and_link: tuple[GatewayHub, GatewayLink],  # noqa: F811
) -> None:
    hub, link = hub_and_link
    notifier = FramePushNotifier(PresenceRouter(hub._sessions, link))
    await notifier.notify_receipt(99, peer_id=2, read_seq=1)  # nobody online: nothing to do, no error
