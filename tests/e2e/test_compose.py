"""The docker-compose topology, running for real (make compose-e2e; skipped without TINYIM_E2E_COMPOSE).

The skeleton and social scenarios (test_chat.py, test_social.py) run against it through the `deployment`
fixture; these check what only the containers have: health and limits as the compose file asks, GTID
replication to the replica, a gateway added with `--scale` getting clients, and failover when a gateway
and a msg node container are killed. Everything goes from the host to the project's own containers.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.e2e.helpers import PASSWORD, befriend, new_user, online
from tests.e2e.test_cluster import _collect, _send_stream, audit, next_text
from tests.support import compose
from tests.support.compose import ComposeStack
from tinyim.client import Client, ClientOptions

FAST_BEATS = ClientOptions(heartbeat_interval=3)

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not compose.enabled(), reason="needs the compose stack (make compose-e2e)"),
]

ROLES = (
    "dispatch",
    "gateway-1",
    "gateway-2",
    "filegw-1",
    "filegw-2",
    "auth",
    "user",
    "msg-1",
    "msg-2",
    "filemeta",
)


@pytest.fixture(scope="module")
def stack() -> Iterator[ComposeStack]:
    yield ComposeStack.from_env()


async def start_pinned(client: Client, ws_url: str) -> Client:
    await client.login()
    client.ws_url = ws_url  # the first connection goes here; reconnects follow dispatch
    await client.start()
    client.take_delivered()
    return client


def test_every_role_is_healthy_restartable_and_limited(stack: ComposeStack) -> None:
    for service in (*ROLES, "mysql-primary", "mysql-replica", "redis", "etcd"):
        [container] = stack.wait_healthy(service, timeout=60)
        host = stack.inspect(container)["HostConfig"]
        assert host["RestartPolicy"]["Name"] == "unless-stopped", service
        assert host["Memory"] > 0 and host["NanoCpus"] > 0, service  # mem_limit and cpus are applied


def test_dispatch_serves_the_web_client_built_into_the_image(stack: ComposeStack) -> None:
    page = httpx.get(f"{stack.dispatch_url}/", timeout=10)
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert "<script" in page.text  # the bundle from the image's Web build stage


async def test_the_replica_follows_the_primary_by_gtid(stack: ComposeStack) -> None:
    username, user_id = await new_user(stack.dispatch_url, "repl")
    query = f"SELECT user_id FROM tinyim.im_user WHERE username = '{username}'"
    assert stack.sql("mysql-primary", query).split() == [str(user_id)]
    for _ in range(40):  # replication is asynchronous: the row arrives within moments
        if stack.sql("mysql-replica", query).split() == [str(user_id)]:
            break
        await asyncio.sleep(0.25)
    else:
        pytest.fail("the user never reached the replica")
    status = stack.sql_row("mysql-replica", "SHOW REPLICA STATUS")
    assert (status["Slave_IO_Running"], status["Slave_SQL_Running"]) == ("Yes", "Yes")
    assert status["Using_Gtid"] == "Slave_Pos" and status["Master_Host"] == "mysql-primary"
    # the replica refuses writes from the application's user
    refused = stack.run(
        "exec", "-T", "mysql-replica", "mysql", "-utinyim", f"-p{stack.env['DB_PASSWORD']}", "tinyim",
        "-e", "DELETE FROM im_user", check=False,
    )  # fmt: skip
    assert refused.returncode != 0 and "read-only" in refused.stderr


async def test_a_gateway_added_with_scale_gets_clients(stack: ComposeStack) -> None:
    started = time.monotonic()
    stack.run("--profile", "scale", "up", "-d", "--no-build", "--scale", "gateway=1", "gateway")
    [container] = stack.wait_healthy("gateway", timeout=90)
    new_ip = stack.ip(container)
    print(f"scaled gateway {container[:12]} at {new_ip}, healthy after {time.monotonic() - started:.1f}s")
    on_ws = f"ws://127.0.0.1:{stack.gateway_ports['gateway-1']}/ws"
    peer_name, peer_id = await new_user(stack.dispatch_url, "peer")
    clients: list[Client] = []
    try:
        peer = await start_pinned(
            Client(stack.dispatch_url, peer_name, PASSWORD, "PC", options=FAST_BEATS), on_ws
        )
        clients.append(peer)
        # least connections: with clients on the old gateways, dispatch soon hands out the new one
        newcomer: Client | None = None
        for _ in range(20):
            name, _ = await new_user(stack.dispatch_url, "scaled")
            await befriend(stack.dispatch_url, name, peer_name)
            c = Client(stack.dispatch_url, name, PASSWORD, "PC", options=FAST_BEATS)
            await c.start()
            clients.append(c)
            if f"//{new_ip}:" in c.ws_url:
                newcomer = c
                break
            await asyncio.sleep(0.5)
        assert newcomer is not None, "dispatch never handed out the scaled gateway"
        sent = await newcomer.send_text(peer_id, "from the new gateway")
        got = await next_text(peer)
        assert (got.msg_id, got.content) == (sent.msg_id, "from the new gateway")
        await peer.send_text(newcomer.user_id, "back to it")
        assert (await next_text(newcomer)).content == "back to it"
    finally:
        for c in clients:
            await c.close()
        stack.run("--profile", "scale", "up", "-d", "--no-build", "--scale", "gateway=0", "gateway")


async def test_killed_gateway_and_msg_containers_fail_over_and_lose_nothing(stack: ComposeStack) -> None:
    alice, alice_id = await new_user(stack.dispatch_url, "alice")
    bob, bob_id = await new_user(stack.dispatch_url, "bob")
    await befriend(stack.dispatch_url, alice, bob)
    gw1 = f"ws://127.0.0.1:{stack.gateway_ports['gateway-1']}/ws"
    gw2 = f"ws://127.0.0.1:{stack.gateway_ports['gateway-2']}/ws"
    a = await start_pinned(Client(stack.dispatch_url, alice, PASSWORD, "PC", options=FAST_BEATS), gw2)
    b = await start_pinned(Client(stack.dispatch_url, bob, PASSWORD, "PC", options=FAST_BEATS), gw1)
    try:
        # a gateway container dies under load: bob reconnects through dispatch to the live one
        sender = asyncio.create_task(_send_stream(a, bob_id, 40, "gwkill"))
        await asyncio.sleep(0.4)
        stack.run("kill", "gateway-1")
        assert not sender.done()
        sent = await asyncio.wait_for(sender, 90)
        received = await _collect(b, len(sent), timeout=90)
        assert b.ws_url == gw2 and b.connects >= 2
        assert audit(sent, received) == {"lost": 0, "duplicated": 0, "out_of_order": 0, "unexpected": 0}
        # a msg node container dies while both send: the other msg node takes over
        a_to_b = asyncio.create_task(_send_stream(a, bob_id, 40, "a2b"))
        b_to_a = asyncio.create_task(_send_stream(b, alice_id, 40, "b2a"))
        await asyncio.sleep(0.4)
        stack.run("kill", "msg-1")
        sent_ab, sent_ba = await asyncio.wait_for(asyncio.gather(a_to_b, b_to_a), 120)
        got_b, got_a = await asyncio.gather(_collect(b, 40, 90), _collect(a, 40, 90))
        clean = {"lost": 0, "duplicated": 0, "out_of_order": 0, "unexpected": 0}
        assert audit(sent_ab, [m for m in got_b if not m.is_mine]) == clean
        assert audit(sent_ba, [m for m in got_a if not m.is_mine]) == clean
        # new users still log in and chat with one gateway and one msg node left
        async with online(stack.dispatch_url, alice, "Pad") as pad:
            assert pad.ws_url == gw2
    finally:
        await a.close()
        await b.close()
    # the killed containers come back with `up`, healthy
    stack.run("up", "-d", "--no-build", "gateway-1", "msg-1")
    stack.wait_healthy("gateway-1", timeout=90)
    stack.wait_healthy("msg-1", timeout=90)
