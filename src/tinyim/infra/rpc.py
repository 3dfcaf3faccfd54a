"""gRPC plumbing for every role: error translation both ways, the server, and calls to a role's nodes.

- A module's ImError crosses the wire as a gRPC status plus its code in the trailing metadata
  `im-error-code`, and comes back out of the client adapter as the same ImError.
- `RoleChannels[Stub]` holds one channel per target address and picks a live node of a role from the
  registry (round robin), with a deadline on every call. A node that refuses connections is set aside
  and the call goes to another node; calls marked idempotent are also retried after any UNAVAILABLE.
  Calls are typed end to end: `invoke(lambda stub, timeout: stub.Method(req, timeout=timeout))` on the
  async stub mypy-protobuf generates, so a misspelt method or a wrong request type fails `mypy`.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import logging
import time
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Sequence
from typing import Any, Generic, TypeAlias, TypeVar

import grpc

from tinyim import kernel
from tinyim.infra import metrics, tracing
from tinyim.infra.extras import GRPC_HEALTH, require
from tinyim.infra.node_directory import NodeDirectory
from tinyim.infra.registry import Node
from tinyim.kernel import UNAVAILABLE, ImError
from tinyim.pb import im_internal_pb2 as internal_pb

log = logging.getLogger(__name__)

ERROR_KEY = "im-error-code"
DEFAULT_DEADLINE_SECONDS = 5.0

_STATUS: dict[str, grpc.StatusCode] = {
    kernel.INVALID_ARGUMENT: grpc.StatusCode.INVALID_ARGUMENT,
    kernel.NOT_FOUND: grpc.StatusCode.NOT_FOUND,
    kernel.CONFLICT: grpc.StatusCode.ALREADY_EXISTS,
    kernel.ALREADY_EXISTS: grpc.StatusCode.ALREADY_EXISTS,
    kernel.UNAUTHENTICATED: grpc.StatusCode.UNAUTHENTICATED,
    kernel.UNAVAILABLE: grpc.StatusCode.UNAVAILABLE,
    kernel.UNIMPLEMENTED: grpc.StatusCode.UNIMPLEMENTED,
    kernel.RATE_LIMITED: grpc.StatusCode.RESOURCE_EXHAUSTED,  # user search, typing
}

Ctx: TypeAlias = "grpc.aio.ServicerContext[Any, Any]"
Servicer = TypeVar("Servicer")
Req = TypeVar("Req")
Resp = TypeVar("Resp")
Stub = TypeVar("Stub")


def translate_errors(
    method: Callable[[Servicer, Req, Ctx], Awaitable[Resp]],
) -> Callable[[Servicer, Req, Ctx], Coroutine[Any, Any, Resp]]:
    """Servicer method decorator: ImError -> status + im-error-code; anything else is logged, INTERNAL."""

    @functools.wraps(method)
    async def wrapped(self: Servicer, request: Req, context: Ctx) -> Resp:
        try:
            return await method(self, request, context)
        except ImError as exc:
            status = _STATUS.get(exc.code, grpc.StatusCode.FAILED_PRECONDITION)
            await context.abort(status, exc.message, trailing_metadata=((ERROR_KEY, exc.code),))
        except grpc.aio.AbortError:
            raise
        except Exception:
            log.exception("internal call failed", extra={"method": getattr(method, "__qualname__", "")})
            await context.abort(grpc.StatusCode.INTERNAL, "internal error")

    return wrapped


def _im_error(exc: grpc.aio.AioRpcError) -> ImError | None:
    for key, value in exc.trailing_metadata() or ():
        if key == ERROR_KEY:
            return ImError(str(value), exc.details() or "")
    return None


def not_connected(exc: grpc.aio.AioRpcError) -> bool:
    """The request never reached the node (so any call may safely go to another one)."""
    details = (exc.details() or "").lower()
    return exc.code() == grpc.StatusCode.UNAVAILABLE and (
        "failed to connect" in details or "connection refused" in details
    )


# Clients ping idle connections so a dead peer is noticed; servers must accept those pings, or they
# answer GOAWAY "too_many_pings" and the next call on the channel fails.
KEEPALIVE_MS = 10_000
CHANNEL_OPTIONS = [
    ("grpc.keepalive_time_ms", KEEPALIVE_MS),
    ("grpc.keepalive_timeout_ms", 3_000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.initial_reconnect_backoff_ms", 200),
    ("grpc.max_reconnect_backoff_ms", 2_000),
    # A channel's connections are its own (not shared through the process-wide subchannel pool): a
    # renewed channel (Channels.renew) really connects anew instead of taking over the old one's.
    ("grpc.use_local_subchannel_pool", 1),
]


SERVER_OPTIONS = [
    ("grpc.so_reuseport", 0),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.min_recv_ping_interval_without_data_ms", KEEPALIVE_MS // 2),
    ("grpc.http2.max_ping_strikes", 0),
]


def _code_name(code: grpc.StatusCode | None) -> str:
    return code.name if code is not None else "UNKNOWN"


class ClientTelemetry(grpc.aio.UnaryUnaryClientInterceptor):
    """Every internal call: carries the request id, and is timed by method and status code."""

    async def intercept_unary_unary(
        self, continuation: Callable[[Any, Any], Any], client_call_details: Any, request: Any
    ) -> Any:
        rid = tracing.current()
        if rid:
            metadata = grpc.aio.Metadata(*(client_call_details.metadata or ()))
            metadata.add(tracing.METADATA_KEY, rid)
            client_call_details = client_call_details._replace(metadata=metadata)
        method = client_call_details.method
        method = method.decode() if isinstance(method, bytes) else str(method)
        started = time.perf_counter()
        code = "OK"
        try:
            call = await continuation(client_call_details, request)
            code = _code_name(await call.code())
            return call
        except grpc.aio.AioRpcError as exc:
            code = _code_name(exc.code())
            raise
        finally:
            metrics.labelled(metrics.GRPC_CLIENT_SECONDS, method, code).observe(time.perf_counter() - started)


class ServerTelemetry(grpc.aio.ServerInterceptor):
    """Every internal call served: adopts the caller's request id, timed by method and status code."""

    async def intercept_service(
        self, continuation: Callable[[Any], Awaitable[Any]], handler_call_details: Any
    ) -> Any:
        handler = await continuation(handler_call_details)
        if handler is None or handler.unary_unary is None:
            return handler
        method = str(handler_call_details.method)
        rid = dict(handler_call_details.invocation_metadata or ()).get(tracing.METADATA_KEY, "")
        inner = handler.unary_unary

        async def timed(request: Any, context: Ctx) -> Any:
            tracing.adopt(str(rid))
            started = time.perf_counter()
            code = "OK"
            try:
                return await inner(request, context)
            except BaseException:
                code = _code_name(context.code()) if context.code() is not None else "UNKNOWN"
                raise
            finally:
                metrics.labelled(metrics.GRPC_SERVER_SECONDS, method, code).observe(
                    time.perf_counter() - started
                )

        return grpc.unary_unary_rpc_method_handler(
            timed,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )


_closing: set[asyncio.Task[None]] = set()  # channels being closed in the background


def _wrong_server(exc: grpc.aio.AioRpcError) -> bool:
    """The server does not know the method: not the role we meant (nothing ran, so a retry is safe)."""
    return exc.code() == grpc.StatusCode.UNIMPLEMENTED


class Channels:
    """One channel per target address, created on first use, closed at shutdown."""

    def __init__(self) -> None:
        self._channels: dict[str, grpc.aio.Channel] = {}

    def get(self, target: str) -> grpc.aio.Channel:
        channel = self._channels.get(target)
        if channel is None:
            channel = grpc.aio.insecure_channel(
                target, options=CHANNEL_OPTIONS, interceptors=[ClientTelemetry()]
            )
            self._channels[target] = channel
        return channel

    def renew(self, target: str) -> None:
        """Forget the channel to `target`: the next call opens a new one, resolving the name again.
        For a channel that reached the wrong server: a container that died left its address to another
        (of another role), and the old channel reconnected there without asking DNS again."""
        channel = self._channels.pop(target, None)
        if channel is not None:
            task = asyncio.get_running_loop().create_task(channel.close(grace=1.0))
            _closing.add(task)
            task.add_done_callback(_closing.discard)

    async def close(self) -> None:
        channels, self._channels = list(self._channels.values()), {}
        for channel in channels:
            await channel.close(grace=1.0)


class RoleChannels(Generic[Stub]):
    """Calls to any live node of one role, balanced round robin, with deadlines and failover.

    `stub_type` is the generated `XServiceStub`; over a `grpc.aio` channel it is typed (mypy-protobuf)
    as `XServiceAsyncStub`, whose methods take the request type and return an awaitable response type.
    """

    def __init__(
        self,
        role: str,
        directory: NodeDirectory,
        channels: Channels,
        stub_type: Callable[[grpc.aio.Channel], Stub],
        deadline_seconds: float = DEFAULT_DEADLINE_SECONDS,
    ) -> None:
        self.role = role
        self._directory = directory
        self._channels = channels
        self._stub_type = stub_type
        self._deadline = deadline_seconds
        self._turn = itertools.count()
        self._stubs: dict[str, Stub] = {}  # target -> stub over that target's one channel

    def stub(self, node: Node) -> Stub:
        stub = self._stubs.get(node.grpc_target)
        if stub is None:
            stub = self._stubs[node.grpc_target] = self._stub_type(self._channels.get(node.grpc_target))
        return stub

    async def pick(self, tried: set[str]) -> Node:
        """A live node of the role not in `tried` (round robin); UNAVAILABLE when none is left."""
        nodes = [n for n in await self._directory.nodes(self.role) if n.node_id not in tried]
        if not nodes:
            raise ImError(UNAVAILABLE, f"no {self.role} service is available; try again shortly")
        return nodes[next(self._turn) % len(nodes)]

    def suspect(self, node: Node) -> None:
        """The node failed a call: the directory sets it aside for a while."""
        self._directory.suspect(node)

    def renew(self, node: Node) -> None:
        """The node's address answered as another service: the next call connects anew (Channels.renew)."""
        log.warning("%s node %s answered as another service; reconnecting", self.role, node.node_id)
        self._stubs.pop(node.grpc_target, None)
        self._channels.renew(node.grpc_target)

    @property
    def deadline_seconds(self) -> float:
        return self._deadline

    async def invoke(
        self,
        call: Callable[[Stub, float], Awaitable[Resp]],
        *,
        idempotent: bool = True,
        deadline_seconds: float | None = None,
    ) -> Resp:
        """`call(stub, timeout)` on a live node's stub: `lambda s, t: s.Method(req, timeout=t)`."""
        tried: set[str] = set()
        renewed: set[str] = set()  # targets whose channel was renewed after reaching the wrong server
        timeout = deadline_seconds or self._deadline
        while True:
            node = await self.pick(tried)
            try:
                return await call(self.stub(node), timeout)
            except grpc.aio.AioRpcError as exc:
                error = _im_error(exc)
                if error is not None:
                    raise error from None
                if _wrong_server(exc) and node.grpc_target not in renewed:
                    renewed.add(node.grpc_target)
                    self.renew(node)
                    continue
                if exc.code() == grpc.StatusCode.UNAVAILABLE:
                    self._directory.suspect(node)
                    tried.add(node.node_id)
                    if idempotent or not_connected(exc):
                        log.info("%s node %s unavailable; trying another", self.role, node.node_id)
                        continue
                    raise ImError(UNAVAILABLE, f"{self.role} service failed mid-call; retry") from None
                if exc.code() == grpc.StatusCode.DEADLINE_EXCEEDED:
                    raise ImError(UNAVAILABLE, f"{self.role} service did not answer in time") from None
                raise


async def node_call(
    channels: Channels,
    node: Node,
    stub_type: Callable[[grpc.aio.Channel], Stub],
    call: Callable[[Stub, float], Awaitable[Resp]],
    deadline_seconds: float = DEFAULT_DEADLINE_SECONDS,
) -> Resp:
    """One call to one named node (a gateway holding a user's connection); ImError comes back as such."""
    for attempt in (1, 2):
        stub = stub_type(channels.get(node.grpc_target))
        try:
            return await call(stub, deadline_seconds)
        except grpc.aio.AioRpcError as exc:
            error = _im_error(exc)
            if error is not None:
                raise error from None
            if attempt == 1 and _wrong_server(exc):  # see Channels.renew
                log.warning("node %s answered as another service; reconnecting", node.node_id)
                channels.renew(node.grpc_target)
                continue
            raise
    raise AssertionError("unreachable")


Registrar = Callable[[grpc.aio.Server], Sequence[str]]


class ServedStream:
    """A long-lived stream this process serves (infra.streams): told to end when the server stops, so
    a stop does not wait its whole grace for peers that keep their streams open."""

    _live: weakref.WeakSet[ServedStream] = weakref.WeakSet()

    def __init__(self, reader: asyncio.Task[None]) -> None:
        self.reader = reader  # the task reading the peer's requests
        self.ended = False
        ServedStream._live.add(self)

    def end(self) -> None:
        """Stop reading: what was read is still answered, then the stream ends (OK)."""
        self.ended = True
        self.reader.cancel()

    @classmethod
    def end_all(cls) -> None:
        for stream in list(cls._live):
            stream.end()


async def grpc_server(
    host: str, port: int, registrars: Sequence[Registrar], grace_seconds: float = 5.0
) -> AsyncIterator[grpc.aio.Server | None]:
    """Serve the given services plus grpc.health.v1 on host:port; drain in-flight calls on stop."""
    if not registrars:
        yield None
        return
    require(GRPC_HEALTH, "a node that serves gRPC (IM_ROLES other than all, or a registry)")
    from grpc_health.v1 import health, health_pb2, health_pb2_grpc

    server = grpc.aio.server(options=SERVER_OPTIONS, interceptors=[ServerTelemetry()])
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    names: list[str] = []
    for register in registrars:
        names.extend(register(server))
    if server.add_insecure_port(f"{host}:{port}") == 0:
        raise OSError(f"gRPC cannot listen on {host}:{port}")
    await server.start()
    for name in ["", *names]:
        await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    try:
        yield server
    finally:
        await health_servicer.enter_graceful_shutdown()
        ServedStream.end_all()
        await server.stop(grace_seconds)


def context_of(caller: kernel.Caller) -> internal_pb.ContextReq:
    return internal_pb.ContextReq(user_id=caller.user_id, device_id=caller.device_id)


def caller_of(ctx: internal_pb.ContextReq) -> kernel.Caller:
    """The identity the calling gateway established for its session (never a client's body field)."""
    if not ctx.user_id:
        raise ImError(kernel.UNAUTHENTICATED, "internal call without a session context")
    return kernel.Caller(ctx.user_id, ctx.device_id)
