"""NodeStream on a fake call: a write that fails because the call is ending breaks the stream cleanly."""

from __future__ import annotations

import asyncio
from typing import Any

import grpc
import pytest

from tinyim.infra.streams import NodeStream, StreamClosed


class Tagged:
    def __init__(self) -> None:
        self.batch_id = 0


class DyingCall:
    """A stream call whose node died: writes fail as grpc.aio reports it (INTERNAL from Core), and the
    read side has not noticed yet."""

    def __init__(self) -> None:
        self.ended = asyncio.Event()
        self.writes = 0

    async def write(self, request: Any) -> None:
        self.writes += 1
        raise grpc.aio.AioRpcError(
            grpc.StatusCode.INTERNAL,
            grpc.aio.Metadata(),
            grpc.aio.Metadata(),
            details="Internal error from Core",
            debug_error_string='Failed "execute_batch"',
        )

    async def read(self) -> Any:
        await self.ended.wait()
        return grpc.aio.EOF


async def test_a_failed_write_breaks_the_stream_with_stream_closed() -> None:
    call = DyingCall()
    stream: NodeStream[Tagged, Tagged] = NodeStream(call, "/im.Test/Stream")  # type: ignore[arg-type]
    with pytest.raises(StreamClosed, match="broke while writing"):
        await stream.request(Tagged(), timeout=1.0)
    assert stream.broken  # the next request to that node opens a new stream
    with pytest.raises(StreamClosed):  # and this one is not written at all
        await stream.request(Tagged(), timeout=1.0)
    assert call.writes == 1
    call.ended.set()
    await asyncio.sleep(0)
