"""End-to-end fixtures: the multi-process topology, shared by every module that runs on it.

`served` parametrizes a module over the one-process server and the cluster, for the scenarios that
must behave the same on both (skeleton, social graph).
"""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Protocol

import pytest

from tests.support import compose
from tests.support.server import ServerProcess, free_port, is_free
from tests.support.services import delete_prefix, require_redis, throwaway_mariadb
from tinyim.cluster import Cluster


class Served(Protocol):
    """What the scenario tests need of a deployment: dispatch's URL, a gateway port, the logs."""

    @property
    def base_url(self) -> str: ...
    @property
    def port(self) -> int: ...
    def log(self) -> str: ...


class ClusterAsServer:
    """The cluster seen as one server: clients start at dispatch; raw WebSocket tests use gateway-1."""

    def __init__(self, cluster: Cluster) -> None:
        self._cluster = cluster

    @property
    def base_url(self) -> str:
        return self._cluster.dispatch_url

    @property
    def port(self) -> int:
        return self._cluster.members["gateway-1"].http_port

    def log(self) -> str:
        return "\n".join(
            Path(m.log).read_text(errors="replace") for m in self._cluster.members.values() if m.log
        )


def free_port_block() -> int:
    """A base port with base..base+11 (HTTP, file gateways' TCP) and gRPC twins (+1000) free."""
    for _ in range(50):
        base = random.randrange(20000, 30000)
        if all(is_free(base + i) and is_free(base + 1000 + i) for i in range(12)):
            return base
    return free_port()


# Registry timings of the test cluster: a killed node's entry expires in 3 s instead of 5 s, and loads are
# reported every 0.75 s; a process would have to stall 2.25 s to drop out (a shared, loaded test machine).
CLUSTER_REGISTRY = {"IM_REGISTRY_TTL_SECONDS": "3", "IM_REGISTRY_RENEW_SECONDS": "0.75"}


@contextmanager
def running_cluster(workdir: Path, **extra_env: str) -> Iterator[Cluster]:
    """dispatch, 2 gateways, auth, user, 2 msg nodes on loopback; MariaDB (throwaway) + Redis (prefix)."""
    redis_url = require_redis()
    prefix = f"test-{uuid.uuid4().hex[:8]}:"
    with throwaway_mariadb() as db_url:
        env = {"IM_DATABASE_URL": db_url, "IM_REDIS_URL": redis_url, "IM_REDIS_PREFIX": prefix, **extra_env}
        c = Cluster(workdir, env, free_port_block(), die_with_parent=True).up()
        try:
            yield c
        finally:
            c.down()
            asyncio.run(delete_prefix(redis_url, prefix))


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    with running_cluster(
        tmp_path_factory.mktemp("cluster"), IM_HEARTBEAT_TIMEOUT_SECONDS="10", **CLUSTER_REGISTRY
    ) as c:
        yield c


# compose-e2e: with TINYIM_E2E_COMPOSE set (make compose-e2e), the same scenarios run against docker-compose
DEPLOYMENTS = ["compose"] if compose.enabled() else ["one-process", "cluster"]


@pytest.fixture(scope="module", params=DEPLOYMENTS)
def deployment(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    if request.param == "compose":
        yield compose.ComposeStack.from_env()
        return
    if request.param == "cluster":
        yield ClusterAsServer(request.getfixturevalue("cluster"))
        return
    proc = ServerProcess(tmp_path_factory.mktemp("tinyim")).start()
    yield proc
    proc.stop()
