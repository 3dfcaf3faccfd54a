"""Findings 3 and 4: the SDK after a silent disconnect, and the SDK under a fast conversation."""

from __future__ import annotations

import asyncio

import pytest
from websockets.exceptions import ConnectionClosedError

from tests.e2e.helpers import friend_pair, online
from tests.support.server import ServerProcess
from tinyim.client import ClientOptions

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    """A server with a tight per-connection rate limit: a fast conversation reaches it in a second."""
    env = {"IM_RATE_PER_SECOND": "20", "IM_RATE_BURST": "40"}
    proc = ServerProcess(tmp_path_factory.mktemp("tinyim"), env=env).start()
    yield proc
    proc.stop()


async def test_send_on_a_dead_socket_reconnects_instead_of_spinning(server: ServerProcess) -> None:
    alice, _, _bob, bob_id = await friend_pair(server.base_url)
    async with online(
        server.base_url, alice, options=ClientOptions(heartbeat_interval=5, backoff_initial=0.05)
    ) as a:
        ws = a.session._ws
        assert ws is not None
        calls = 0

        async def dead_send(_data: bytes) -> None:
            # The socket is closed but the reader has not noticed yet: a send fails at once.
            nonlocal calls
            calls += 1
            raise ConnectionClosedError(None, None)

        ws.send = dead_send  # type: ignore[method-assign,assignment]
        # (retry_for bounds the old busy loop, which no wait_for could interrupt)
        sent = await asyncio.wait_for(a.send(receiver_id=bob_id, content="after", retry_for=5), 15)
        assert sent.seq_id > 0
        assert calls <= 3, f"the SDK retried {calls} times on a dead socket"
        assert a.connects == 2


async def test_a_fast_conversation_never_trips_the_rate_limit(server: ServerProcess) -> None:
    """Both sides send as fast as they can (32 in flight each): the SDK paces itself to the server's limit."""
    alice, alice_id, bob, bob_id = await friend_pair(server.base_url)
    n = 120
    async with online(server.base_url, alice) as a, online(server.base_url, bob) as b:

        async def talk(me, peer_id: int, tag: str) -> None:
            gate = asyncio.Semaphore(32)

            async def one(i: int) -> None:
                async with gate:
                    await me.send_text(peer_id, f"{tag} {i}")

            await asyncio.gather(*(one(i) for i in range(n)))

        async def receive(me, tag: str) -> set[str]:
            got: set[str] = set()
            while len(got) < n:
                m = await me.next_message(30)
                if m.content.startswith(tag):
                    got.add(m.content)
            return got

        results = await asyncio.gather(
            talk(a, bob_id, "a"), talk(b, alice_id, "b"), receive(a, "b"), receive(b, "a")
        )
        assert results[2] == {f"b {i}" for i in range(n)} and results[3] == {f"a {i}" for i in range(n)}
        assert a.connects == 1 and b.connects == 1, "a client was disconnected (1008) on the way"
