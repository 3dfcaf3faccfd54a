"""Heartbeats keep a connection; silence closes it after IM_HEARTBEAT_TIMEOUT_SECONDS."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from tests.e2e.helpers import PASSWORD, new_user, recv_bytes
from tests.support.server import ServerProcess
from tinyim.client import Client, ClientOptions
from tinyim.wire import Cmd, decode, encode

pytestmark = pytest.mark.e2e
TIMEOUT = 1.5


@pytest.fixture(scope="module")
def short_heartbeat_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    proc = ServerProcess(
        Path(tmp_path_factory.mktemp("hb")), env={"IM_HEARTBEAT_TIMEOUT_SECONDS": str(TIMEOUT)}
    )
    yield proc.start()
    proc.stop()


async def test_silent_connection_is_closed_and_a_beating_one_stays(
    short_heartbeat_server: ServerProcess,
) -> None:
    server = short_heartbeat_server
    quiet, _ = await new_user(server.base_url, "quiet")
    chatty, _ = await new_user(server.base_url, "chatty")
    q, c = Client(server.base_url, quiet, PASSWORD, "PC"), Client(server.base_url, chatty, PASSWORD, "PC")
    await q.login()
    await c.login()
    async with (
        connect(f"{q.ws_url}?token={q.token}&device_id=PC") as silent,
        connect(f"{c.ws_url}?token={c.token}&device_id=PC") as beating,
    ):
        started = time.monotonic()
        while time.monotonic() - started < TIMEOUT * 2.5:
            await beating.send(encode(Cmd.CMD_HEARTBEAT_REQ, b""))
            assert decode(await recv_bytes(beating)).cmd == Cmd.CMD_HEARTBEAT_RESP
            await asyncio.sleep(TIMEOUT / 3)
        with pytest.raises(ConnectionClosed) as closed:
            await asyncio.wait_for(silent.recv(), 2)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 4408


async def test_the_sdk_heartbeat_keeps_a_session_alive(short_heartbeat_server: ServerProcess) -> None:
    server = short_heartbeat_server
    name, _ = await new_user(server.base_url, "sdk")
    client = Client(
        server.base_url, name, PASSWORD, "Web", options=ClientOptions(heartbeat_interval=TIMEOUT / 3)
    )
    await client.start()
    try:
        await asyncio.sleep(TIMEOUT * 2.5)
        assert client.connects == 1 and client.connected.is_set()
    finally:
        await client.close()
