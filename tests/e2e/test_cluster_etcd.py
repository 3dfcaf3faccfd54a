"""The multi-process topology with the registry in etcd (IM_ETCD_ENDPOINTS) instead of Redis."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager

import httpx
import pytest

from tests.e2e.conftest import running_cluster
from tests.e2e.helpers import online
from tests.e2e.test_cluster import bearer, friends, gateway_url, next_text
from tinyim.client import Client
from tinyim.cluster import Cluster
from tinyim.infra.etcd import etcd_client

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def etcd_cluster(tmp_path_factory: pytest.TempPathFactory, etcd_endpoints: str) -> Iterator[Cluster]:
    with running_cluster(tmp_path_factory.mktemp("cluster"), IM_ETCD_ENDPOINTS=etcd_endpoints) as c:
        yield c


@asynccontextmanager
async def online_elsewhere(base_url: str, username: str, taken_ws_url: str) -> AsyncIterator[Client]:
    """`online` on a gateway other than `taken_ws_url`. Dispatch balances by loads up to a renewal old (the
    helpers' logins of a moment ago included), so a login may land beside another: it logs in again."""
    for _ in range(20):
        async with online(base_url, username) as client:
            if client.ws_url != taken_ws_url:
                yield client
                return
        await asyncio.sleep(0.5)
    raise AssertionError(f"{username} never got a gateway other than {taken_ws_url}")


async def test_roles_find_each_other_in_etcd_and_a_dead_gateway_drops_out(
    etcd_cluster: Cluster, etcd_endpoints: str
) -> None:
    cluster = etcd_cluster
    prefix = cluster.env["IM_REDIS_PREFIX"]
    async for etcd in etcd_client(etcd_endpoints):
        found = await etcd.get_prefix(f"/tinyim/{prefix}nodes/".encode())
        keys = [kv.key.decode() for kv in found]
        roles = sorted(k.split("/")[-2] for k in keys)
        # every process that others reach (dispatch is only called by clients)
        assert roles == ["auth", "filegw", "filegw", "filemeta", "gateway", "gateway", "msg", "msg", "user"]
    alice, _, bob, bob_id = await friends(cluster)
    async with (
        online(cluster.dispatch_url, alice) as a,
        online_elsewhere(cluster.dispatch_url, bob, a.ws_url) as b,
    ):
        await a.send_text(bob_id, "found through etcd")
        assert (await next_text(b)).content == "found through etcd"
        victim = "gateway-1" if a.ws_url == gateway_url(cluster, "gateway-1") else "gateway-2"
        survivor = ({"gateway-1", "gateway-2"} - {victim}).pop()
        cluster.kill(victim)
        live = cluster.members[survivor].http_port
        try:
            async with httpx.AsyncClient(base_url=cluster.dispatch_url, headers=bearer(b)) as http:
                ports = set()
                for _ in range(24):  # the lease (5 s) runs out; the watch tells dispatch at once
                    ports = {(await http.get("/api/allocate_gateway")).json()["port"] for _ in range(3)}
                    if ports == {live}:
                        break
                    await asyncio.sleep(0.5)
                assert ports == {live}
            await a.send_text(bob_id, "after the failover")  # a re-dispatched to the survivor
            assert (await next_text(b)).content == "after the failover"
            assert a.ws_url == gateway_url(cluster, survivor)
        finally:
            cluster.start(victim)
