"""GatewayService: the msg and auth roles reach this gateway's connections (push signals, kicks)."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Sequence

import grpc

from tinyim.infra import metrics
from tinyim.infra.rpc import Ctx, Registrar, translate_errors
from tinyim.infra.streams import consume
from tinyim.kernel import PushTarget
from tinyim.modules.presence.protocol import GATEWAY_ID_HEADER, meant_gateway, status_view
from tinyim.pb import im_internal_pb2 as ipb
from tinyim.pb import im_internal_pb2_grpc as ipb_grpc

from .hub import GatewayHub

log = logging.getLogger(__name__)

PUSH_STREAM_METHOD = "/im.GatewayService/PushStream"


def _targets(request: ipb.PushNotifyInternalReq) -> list[PushTarget]:
    targets = [PushTarget(t.user_id, t.max_seq_id, t.except_device, t.message) for t in request.batch]
    if request.user_id:  # the spec's single-user form
        targets.append(PushTarget(request.user_id, request.notify.max_seq_id))
    return targets


class GatewayServicer(ipb_grpc.GatewayServiceServicer):
    def __init__(self, hub: GatewayHub) -> None:
        self._hub = hub

    async def _refuse_if_meant_for_another(self, context: Ctx) -> None:
        """A call addressed to another gateway reached this one (it got that gateway's address after a
        restart): UNIMPLEMENTED, as a process of another role answers, so the caller reconnects and tries
        again; nothing ran here (the user is not on this gateway, a kick here would hit nobody or the
        wrong device)."""
        meant = meant_gateway(context.invocation_metadata())
        if meant is not None and meant != self._hub.gateway_id:
            await context.abort(
                grpc.StatusCode.UNIMPLEMENTED, f"this is gateway {self._hub.gateway_id}, not {meant}"
            )

    @translate_errors
    async def PushNotify(self, request: ipb.PushNotifyInternalReq, context: Ctx) -> ipb.PushNotifyResp:
        await self._refuse_if_meant_for_another(context)
        targets = _targets(request)
        await self._hub.push(targets)
        online = any(self._hub.connections_of(t.user_id) for t in targets)
        return ipb.PushNotifyResp(success=True, user_offline=not online)

    async def PushStream(self, requests: AsyncIterator[ipb.PushNotifyInternalReq], context: Ctx) -> ipb.Ack:
        """PushNotify's batches, one after another on a stream the msg node keeps open. Its headers (this
        gateway's id) go out at once: the msg node writes only once it knows the gateway it meant took the
        stream, not another process that got this address after a restart."""
        await context.send_initial_metadata(((GATEWAY_ID_HEADER, self._hub.gateway_id),))
        await consume(requests, self._streamed_push)
        return ipb.Ack()

    async def _streamed_push(self, request: ipb.PushNotifyInternalReq) -> None:
        started = time.perf_counter()
        try:
            await self._hub.push(_targets(request))
        except Exception:  # a hint: one bad batch must not end the stream for the next ones
            log.exception("a streamed push failed")
        # a batch on the stream counts as a call served (the calls-per-message figures)
        metrics.labelled(metrics.GRPC_SERVER_SECONDS, PUSH_STREAM_METHOD, "OK").observe(
            time.perf_counter() - started
        )

    @translate_errors
    async def KickUser(self, request: ipb.KickUserInternalReq, context: Ctx) -> ipb.KickUserResp:
        await self._refuse_if_meant_for_another(context)
        await self._hub.kick(
            request.user_id, request.device_id, request.keep_token_id, request.reason, origin="remote"
        )
        return ipb.KickUserResp(success=True)

    @translate_errors
    async def PushRead(self, request: ipb.PushReadInternalReq, context: Ctx) -> ipb.Ack:
        await self._refuse_if_meant_for_another(context)
        n = request.notify
        await self._hub.push_read(request.user_id, request.except_device, n.peer_id, n.group_id, n.read_seq)
        return ipb.Ack()

    # a client frame for a user's devices (read receipts, conversation changes)
    @translate_errors
    async def PushEvent(self, request: ipb.PushEventReq, context: Ctx) -> ipb.Ack:
        await self._refuse_if_meant_for_another(context)
        await self._hub.push_event(request.user_id, request.except_device, request.cmd, request.body)
        return ipb.Ack()

    # online status and typing
    @translate_errors
    async def PushStatus(self, request: ipb.PushStatusInternalReq, context: Ctx) -> ipb.Ack:
        await self._refuse_if_meant_for_another(context)
        await self._hub.push_status(list(request.user_ids), status_view(request.status))
        return ipb.Ack()

    @translate_errors
    async def PushTyping(self, request: ipb.PushTypingInternalReq, context: Ctx) -> ipb.Ack:
        await self._refuse_if_meant_for_another(context)
        await self._hub.push_typing(request.user_id, request.notify.user_id, request.notify.stopped)
        return ipb.Ack()


def gateway_registrar(hub: GatewayHub) -> Registrar:
    def register(server: grpc.aio.Server) -> Sequence[str]:
        ipb_grpc.add_GatewayServiceServicer_to_server(GatewayServicer(hub), server)
        return ["im.GatewayService"]

    return register
