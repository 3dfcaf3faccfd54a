"""Findings 3 and 4: the SDK after a silent disconnect, and the SDK under a fast conversation."""

from __future__ import annotations

import asyncio

import pytest
from websockets.exceptions import ConnectionClosedError

from tests.e2e.helpers import friend_pair, online
from tests.support.server import ServerProcess

pytestmark = pytest.mark.e2e


async def test_send_on_a_dead_socket_reconnects_instead_of_spinning(server: ServerProcess) -> None:
    alice, _, bob, bob_id = await friend_pair(server.base_url)
    async with online(server.base_url, alice, backoff_initial=0.05) as a:
        ws = a._ws
        assert ws is not None
        calls = 0

        async def dead_send(_data: bytes) -> None:
            # The socket is closed but the reader has not noticed yet: a send fails at once.
            nonlocal calls
            calls += 1
            raise ConnectionClosedError(None, None)

        ws.send = dead_send  # type: ignore[method-assign]
        # (retry_for bounds the old busy loop, which no wait_for could interrupt)
        sent = await asyncio.wait_for(a.send(receiver_id=bob_id, content="after", retry_for=5), 15)
        assert sent.seq_id > 0
        assert calls <= 3, f"the SDK retried {calls} times on a dead socket"
        assert a.connects == 2
