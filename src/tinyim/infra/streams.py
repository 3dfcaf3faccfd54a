"""Requests to a role's nodes over one long-lived bidirectional gRPC stream per node.

A unary grpc.aio call costs a call set-up on both sides (headers, deadline timer, completion queue
round trips, interceptors): measured here at about twice the CPU of one message on an open stream. For
a hot internal path (a gateway's batched sends) `RoleStreams` keeps one stream per node of the role and
sends each request on it with a tag (`batch_id`); the node answers each one, tagged, as it finishes.

The rules of `RoleChannels.invoke` hold per request:
- every request has a deadline (the role's); one not answered in time fails UNAVAILABLE "did not answer
  in time" and its late answer is dropped; the stream itself lives on;
- the node is picked round robin among the live nodes of the registry; a stream that cannot connect
  marks the node suspect and the request goes to another node (nothing ran there);
- a stream that breaks (the node died or went away) fails every request waiting on it: a request marked
  idempotent is tried again on another node, others fail UNAVAILABLE "failed mid-call; retry"; the next
  request to that node opens a new stream;
- a node that does not know the stream method raises `StreamUnsupported` (an earlier release: the
  caller falls back to unary calls for it), but only once a new channel got the same answer: the first
  UNIMPLEMENTED may come from another role that took over the node's address (a container restarted),
  so the channel is renewed and the request tried again (nothing ran).
Each request served is timed in the client metrics under the stream's method name, and carries no
metadata of its own: what a request id would say travels in the request body.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Generic, Protocol, TypeVar, cast

import grpc

from tinyim.infra import metrics
from tinyim.infra.registry import Node
from tinyim.infra.rpc import RoleChannels, ServedStream, not_connected
from tinyim.kernel import UNAVAILABLE, ImError

log = logging.getLogger(__name__)


class Tagged(Protocol):
    batch_id: int


Req = TypeVar("Req", bound=Tagged)
Resp = TypeVar("Resp", bound=Tagged)
Stub = TypeVar("Stub")


class StreamUnsupported(Exception):
    """The node does not serve the stream method (UNIMPLEMENTED): use unary calls with it."""


class StreamClosed(Exception):
    """The node ended the stream (it is shutting down) before answering this request."""


class NodeStream(Generic[Req, Resp]):
    """One open stream to one node: tagged requests out, answers matched to their waiting callers."""

    def __init__(self, call: grpc.aio.StreamStreamCall[Req, Resp], method: str) -> None:
        self._call = call
        self._method = method
        self._tags = itertools.count(1)
        self._pending: dict[int, asyncio.Future[Resp]] = {}
        self._write_lock = asyncio.Lock()  # grpc.aio allows one write in progress per call
        self.failure: BaseException | None = None  # set once the stream is over
        self._reader = asyncio.get_running_loop().create_task(self._read())

    @property
    def broken(self) -> bool:
        return self.failure is not None

    async def request(self, request: Req, timeout: float) -> Resp:
        if self.failure is not None:
            raise self.failure
        tag = next(self._tags)
        request.batch_id = tag
        future: asyncio.Future[Resp] = asyncio.get_running_loop().create_future()
        self._pending[tag] = future
        try:
            async with asyncio.timeout(timeout):
                async with self._write_lock:
                    try:
                        await self._call.write(request)
                    except asyncio.InvalidStateError:  # the call ended meanwhile: the reader says why
                        await asyncio.wait({self._reader})
                    except grpc.aio.AioRpcError as exc:
                        if exc.code() == grpc.StatusCode.UNIMPLEMENTED:
                            # not a server of this stream (another role, an earlier release): nothing
                            # ran, and the caller decides what that means, as when the reader sees it
                            self.failure = self.failure or exc
                            raise
                        # The write itself failed: the call was ending (a node that died answers a write
                        # with INTERNAL "Failed execute_batch" before the reader sees UNAVAILABLE). The
                        # request never left; the stream is over, and the next request opens another.
                        if self.failure is None:
                            self.failure = StreamClosed(
                                f"{self._method}: the stream broke while writing ({exc.code().name})"
                            )
                        raise self.failure from None
                if self.failure is not None and not future.done():
                    raise self.failure
                return await future
        finally:
            self._pending.pop(tag, None)

    async def _read(self) -> None:
        failure: BaseException = StreamClosed(f"{self._method}: the node ended the stream")
        try:
            while True:
                read = await self._call.read()
                if read is grpc.aio.EOF:
                    break
                answer = cast(Resp, read)
                future = self._pending.get(answer.batch_id)
                if future is not None and not future.done():  # gone: its caller gave up (deadline)
                    future.set_result(answer)
        except grpc.aio.AioRpcError as exc:
            failure = exc
        except asyncio.CancelledError:
            failure = StreamClosed(f"{self._method}: the stream was closed")
            raise
        finally:
            self.failure = failure
            for future in self._pending.values():
                if not future.done():
                    future.set_exception(failure)
            self._pending.clear()


class RoleStreams(Generic[Stub, Req, Resp]):
    """Tagged requests to any live node of `remote`'s role, one `open_stream(stub)` stream per node."""

    def __init__(
        self,
        remote: RoleChannels[Stub],
        open_stream: Callable[[Stub], grpc.aio.StreamStreamCall[Req, Resp]],
        method: str,
    ) -> None:
        self._remote = remote
        self._open = open_stream
        self._method = method  # for metrics and logs: the full method name
        self._streams: dict[str, NodeStream[Req, Resp]] = {}  # node id -> its open stream
        # target -> how many times a request's UNIMPLEMENTED renewed its channel: a request whose stream
        # was closed by such a renewal meanwhile ran nowhere (that address served no stream), so it goes again
        self._renewals: dict[str, int] = {}

    def _stream(self, node: Node) -> NodeStream[Req, Resp]:
        stream = self._streams.get(node.node_id)
        if stream is None or stream.broken:
            stream = NodeStream(self._open(self._remote.stub(node)), self._method)
            self._streams[node.node_id] = stream
        return stream

    async def invoke(self, request: Req, *, idempotent: bool) -> Resp:
        """Send `request` on a live node's stream and return its answer (see the module's rules)."""
        tried: set[str] = set()
        renewed: set[str] = set()  # targets whose channel was renewed after an UNIMPLEMENTED answer
        started = time.perf_counter()
        code = "OK"
        try:
            while True:
                node = await self._remote.pick(tried)
                renewals = self._renewals.get(node.grpc_target, 0)
                try:
                    return await self._stream(node).request(request, self._remote.deadline_seconds)
                except TimeoutError:
                    code = grpc.StatusCode.DEADLINE_EXCEEDED.name
                    raise ImError(
                        UNAVAILABLE, f"{self._remote.role} service did not answer in time"
                    ) from None
                except grpc.aio.AioRpcError as exc:
                    code = exc.code().name
                    if exc.code() == grpc.StatusCode.UNIMPLEMENTED:
                        if node.grpc_target in renewed:
                            raise StreamUnsupported(node.node_id) from None
                        renewed.add(node.grpc_target)
                        self._streams.pop(node.node_id, None)
                        self._renewals[node.grpc_target] = self._renewals.get(node.grpc_target, 0) + 1
                        self._remote.renew(node)
                        continue
                    if self._renewals.get(node.grpc_target, 0) != renewals:
                        continue  # closed by another request's renewal: it ran nowhere
                    if exc.code() not in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED):
                        raise
                    if exc.code() == grpc.StatusCode.UNAVAILABLE:
                        self._remote.suspect(node)
                    tried.add(node.node_id)
                    if idempotent or not_connected(exc):
                        log.info("%s node %s unavailable; trying another", self._remote.role, node.node_id)
                        continue
                    raise ImError(
                        UNAVAILABLE, f"{self._remote.role} service failed mid-call; retry"
                    ) from None
                except StreamClosed:
                    code = grpc.StatusCode.UNAVAILABLE.name
                    if self._renewals.get(node.grpc_target, 0) != renewals:
                        continue  # closed by another request's renewal: it ran nowhere
                    tried.add(node.node_id)
                    if idempotent:
                        continue
                    raise ImError(
                        UNAVAILABLE, f"{self._remote.role} service failed mid-call; retry"
                    ) from None
        finally:
            metrics.labelled(metrics.GRPC_CLIENT_SECONDS, self._method, code).observe(
                time.perf_counter() - started
            )


async def answers(
    requests: AsyncIterator[Any], serve: Callable[[Any], Awaitable[Any]], limit: int = 64
) -> AsyncIterator[Any]:
    """Server side of a tagged stream: serve each request read (at most `limit` at once) and yield each
    answer as it is ready (`serve` answers with the request's tag). When the client ends its side, or
    the server stops (`ServedStream.end_all`), the requests already read are still answered, then the
    stream ends."""
    done: asyncio.Queue[Any] = asyncio.Queue()
    slots = asyncio.Semaphore(limit)
    running: set[asyncio.Task[None]] = set()
    reading = True

    async def one(request: Any) -> None:
        try:
            await done.put(await serve(request))
        finally:
            slots.release()

    async def read() -> None:
        nonlocal reading
        try:
            async for request in requests:
                await slots.acquire()
                task = asyncio.get_running_loop().create_task(one(request))
                running.add(task)
                task.add_done_callback(running.discard)
        finally:
            reading = False
            done.put_nowait(None)  # wakes the writer to see that reading is over

    reader = asyncio.get_running_loop().create_task(read())
    served = ServedStream(reader)  # held here: the registry keeps it only while the stream lives
    try:
        while True:
            answer = await done.get()
            if answer is not None:
                yield answer
            elif not reading and not running and done.empty():
                break
            elif not reading and running:
                await asyncio.wait(set(running))
                await done.put(None)
        if not reader.cancelled() and (failure := reader.exception()) is not None:
            raise failure  # reading failed (e.g. an abort): the stream ends with that, not OK
    finally:
        reader.cancel()
        for task in list(running):
            task.cancel()
        del served


async def consume(requests: AsyncIterator[Any], handle: Callable[[Any], Awaitable[None]]) -> None:
    """Server side of a stream that is never answered one by one: `handle` each request in turn until
    the client ends its side or the server stops (`ServedStream.end_all`)."""

    async def read() -> None:
        async for request in requests:
            await handle(request)

    reader = asyncio.get_running_loop().create_task(read())
    served = ServedStream(reader)
    try:
        await reader
    except asyncio.CancelledError:
        current = asyncio.current_task()
        if served.ended and reader.cancelled() and (current is None or not current.cancelling()):
            return  # the server is stopping: end the stream normally
        raise
    finally:
        reader.cancel()
