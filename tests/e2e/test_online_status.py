"""Online status and typing end to end, on one process and on the multi-process topology (dispatch,
2 gateways, auth, user, 2 msg; status records and routing in Redis): a friend's changes are pushed
(online -> away -> online -> offline), strangers and blocked users see nothing, typing reaches only the
peer's devices, and a killed gateway's users go offline once their devices expire.

Both deployments here run with IM_AWAY_AFTER_SECONDS=3 (and the cluster with a 4 s presence TTL), so
the module starts its own server and cluster rather than sharing the suite's defaults."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.e2e.conftest import running_cluster
from tests.e2e.helpers import PASSWORD, befriend, new_user
from tests.support.server import ServerProcess
from tinyim.client import Client, ClientOptions, ServerError, UserStatus
from tinyim.cluster import Cluster
from tinyim.wire import ErrorCode

pytestmark = pytest.mark.e2e

AWAY_AFTER = "3"
PRESENCE_TTL = "4"


@dataclass
class Deployment:
    base_url: str
    cluster: Cluster | None = None

    def gateway_url(self, index: int) -> str | None:
        """The WebSocket URL of gateway-<index> (cluster only): pins a client's first connection."""
        if self.cluster is None:
            return None
        return f"ws://127.0.0.1:{self.cluster.members[f'gateway-{index}'].http_port}/ws"


@pytest.fixture(scope="module", params=["one-process", "cluster"])
def d(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    workdir: Path = tmp_path_factory.mktemp("status")
    if request.param == "one-process":
        proc = ServerProcess(workdir, env={"IM_AWAY_AFTER_SECONDS": AWAY_AFTER}).start()
        try:
            yield Deployment(proc.base_url)
        finally:
            proc.stop()
        return
    env = {
        "IM_AWAY_AFTER_SECONDS": AWAY_AFTER,
        "IM_PRESENCE_TTL_SECONDS": PRESENCE_TTL,
        "IM_HEARTBEAT_TIMEOUT_SECONDS": "10",
    }
    with running_cluster(workdir, **env) as cluster:
        yield Deployment(cluster.dispatch_url, cluster)


@asynccontextmanager
async def connected(
    d: Deployment, username: str, device: str = "PC", gateway: int = 1, reconnect: bool = True
) -> AsyncIterator[Client]:
    client = Client(
        d.base_url,
        username,
        PASSWORD,
        device,
        options=ClientOptions(heartbeat_interval=1, reconnect=reconnect),
    )
    await client.login()
    client.ws_url = d.gateway_url(gateway) or client.ws_url
    await client.start()
    try:
        yield client
    finally:
        await client.close()


async def status_of(client: Client, user_id: int, timeout: float = 10.0, skip: str = "") -> UserStatus:
    """The next pushed status of user_id (pushes about others, and `skip` statuses, are skipped)."""
    async with asyncio.timeout(timeout):
        while True:
            s = await client.next_status(timeout)
            if s.user_id == user_id and s.status != skip:
                return s


async def friends(d: Deployment, a: str, b: str) -> tuple[str, int, str, int]:
    a_name, a_id = await new_user(d.base_url, a)
    b_name, b_id = await new_user(d.base_url, b)
    await befriend(d.base_url, a_name, b_name)
    return a_name, a_id, b_name, b_id


async def test_a_friends_status_changes_are_pushed_and_strangers_see_nothing(d: Deployment) -> None:
    alice, alice_id, bob, bob_id = await friends(d, "alice", "bob")
    dave, dave_id = await new_user(d.base_url, "dave")
    await befriend(d.base_url, dave, bob)
    async with connected(d, bob, "Pad") as b:
        await b.block(dave_id)  # blocked: never sees Bob's status, though still a friend on paper
    carol, _ = await new_user(d.base_url, "carol")
    async with (
        connected(d, alice, gateway=2) as a,
        connected(d, carol, gateway=1) as c,
        connected(d, dave, gateway=1) as dv,
    ):
        async with connected(d, bob, gateway=1) as b:
            assert (await status_of(a, bob_id)).status == "online"  # across gateways on the cluster
            assert [s.status for s in await a.query_statuses([bob_id])] == ["online"]
            assert await c.query_statuses([bob_id]) == [] and await dv.query_statuses([bob_id]) == []
            away = await status_of(a, bob_id)  # Bob made no request for 3 s
            assert away.status == "away"
            await b.send_text(alice_id, "back at the keyboard")
            assert (await status_of(a, bob_id)).status == "online"
            assert (await b.set_status("away")).status == "away"
            assert (await status_of(a, bob_id)).status == "away"
            await b.set_status("online")
            assert (await status_of(a, bob_id)).status == "online"
        gone = await status_of(a, bob_id)
        assert gone.status == "offline" and gone.last_seen > away.last_seen
        assert [(s.status, s.last_seen) for s in await a.query_statuses([bob_id])] == [
            ("offline", gone.last_seen)
        ]
        await asyncio.sleep(0.5)
        assert bob_id not in c.statuses and bob_id not in dv.statuses  # no push ever reached them


async def test_a_client_that_reconnects_learns_the_changes_it_missed(d: Deployment) -> None:
    alice, _, bob, bob_id = await friends(d, "alice", "bob")
    async with connected(d, alice, gateway=2) as a, connected(d, bob, gateway=1) as b:
        assert (await status_of(a, bob_id)).status == "online"
        a.session._backoff = (1.0, 2.0)  # reconnect after 0.5-1.5 s
        connects = a.connects
        await a.drop_connection()
        await b.set_status("away")  # pushed while Alice is not connected
        missed = await status_of(a, bob_id)
        assert missed.status == "away" and a.connects == connects + 1
        assert a.statuses[bob_id].status == "away"


async def test_a_block_hides_the_status_at_once_as_if_gone_offline(d: Deployment) -> None:
    alice, alice_id, bob, bob_id = await friends(d, "alice", "bob")
    async with connected(d, alice, gateway=2) as a, connected(d, bob, gateway=1) as b:
        assert (await status_of(a, bob_id)).status == "online"
        await a.query_statuses([bob_id])  # now both hold each other's status
        await b.query_statuses([alice_id])
        await b.block(alice_id)
        # both stay connected: only the block can show either of them offline to the other
        # (an idle "away" may come first on a slow machine)
        assert (await status_of(a, bob_id, skip="away")).status == "offline"  # Alice no longer sees Bob
        assert (await status_of(b, alice_id, skip="away")).status == "offline"  # nor Bob Alice
        assert await a.query_statuses([bob_id]) == [] and await b.query_statuses([alice_id]) == []


async def test_typing_reaches_only_the_peers_devices(d: Deployment) -> None:
    alice, alice_id, bob, bob_id = await friends(d, "alice", "bob")
    carol, _ = await new_user(d.base_url, "carol")
    async with (
        connected(d, alice, "PC", gateway=1) as a_pc,
        connected(d, alice, "Web", gateway=2) as a_web,
        connected(d, bob, "PC", gateway=1) as b_pc,
        connected(d, bob, "Web", gateway=2) as b_web,
        connected(d, carol, gateway=2) as c,
    ):
        await a_pc.typing(bob_id)
        for device in (b_pc, b_web):
            got = await device.next_typing(5)
            assert (got.user_id, got.stopped) == (alice_id, False)
        await a_pc.typing(bob_id, stopped=True)
        assert (await b_web.next_typing(5)).stopped
        with pytest.raises(ServerError) as exc:
            await c.typing(bob_id)
        assert exc.value.code == ErrorCode.ERR_NOT_FRIENDS
        with pytest.raises(ServerError) as exc:
            for _ in range(10):
                await a_web.typing(bob_id)
        assert exc.value.code == ErrorCode.ERR_RATE_LIMITED
        await asyncio.sleep(0.3)
        for other in (a_pc, a_web, c):  # the typist's own devices and strangers get nothing
            assert other._typing_queue.empty()
        history, _ = await b_pc.history(peer_id=alice_id)
        assert [m for m in history if m.type == 0] == []  # nothing was stored


async def test_a_killed_gateways_users_go_offline_once_their_devices_expire(d: Deployment) -> None:
    if d.cluster is None:
        pytest.skip("one process: killing its gateway kills everything")
    alice, _, bob, bob_id = await friends(d, "alice", "bob")
    try:
        async with connected(d, alice, gateway=2) as a:
            async with connected(d, bob, gateway=1, reconnect=False):
                assert (await status_of(a, bob_id)).status == "online"
                d.cluster.kill("gateway-1")  # kill -9: no disconnect is ever reported
                killed = asyncio.get_running_loop().time()
                gone = await status_of(a, bob_id, timeout=float(PRESENCE_TTL) + 10)
                waited = asyncio.get_running_loop().time() - killed
            assert gone.status == "offline" and waited > 1  # at expiry, not at once
            assert [s.status for s in await a.query_statuses([bob_id])] == ["offline"]
    finally:
        d.cluster.start("gateway-1")
