"""Finding 2: a client that stops reading loses its own connection, never its user's next login."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest
from websockets.asyncio.client import connect

from tests.e2e.helpers import PASSWORD, friend_pair, online
from tests.support.server import ServerProcess
from tinyim.pb import im_protocol_pb2 as pb
from tinyim.wire import Cmd, encode

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    env = {"IM_WS_SEND_TIMEOUT_SECONDS": "2"}
    proc = ServerProcess(tmp_path_factory.mktemp("tinyim"), env=env).start()
    yield proc
    proc.stop()


async def test_stalled_reader_is_closed_and_relogin_answers(server: ServerProcess) -> None:
    base = server.base_url
    alice, alice_id, bob, bob_id = await friend_pair(base)
    big = "x" * 15_000
    async with online(base, bob) as b:
        for i in range(100):
            await b.send_text(alice_id, f"{i} {big}")
    async with httpx.AsyncClient(base_url=base, timeout=30) as http:
        login = (
            await http.post("/api/login", json={"username": alice, "password": PASSWORD, "device_id": "PC"})
        ).json()
        raw = await connect(
            f"{login['gateway']['ws_url']}?token={login['token']}&device_id=PC", max_size=None
        )
        raw.transport.pause_reading()  # the hostile client stops reading from its socket
        sync = encode(Cmd.CMD_MSG_SYNC_REQ, pb.MsgSyncReq(local_max_seq=0, limit=200).SerializeToString())
        for _ in range(30):  # each answer is ~1.5 MB: far more than the socket buffers hold
            await raw.send(sync)
        await asyncio.sleep(1)
        started = time.monotonic()
        relogin = await http.post(
            "/api/login", json={"username": alice, "password": PASSWORD, "device_id": "PC"}
        )
        assert relogin.status_code == 200
        assert time.monotonic() - started < 10
    # The stalled connection is gone (closed after the send deadline); the new session works.
    async with online(base, alice) as a, online(base, bob) as b:
        await b.send_text(alice_id, "after the stall")
        assert (await a.next_message()).content == "after the stall"
        assert a.user_id == alice_id and b.user_id == bob_id
    raw.transport.abort()
