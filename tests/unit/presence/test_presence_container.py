"""The presence module's container: its inputs, its one selector (how signals reach gateways), and the
root's wiring of it (the hub and presence share one session table; the local link is the hub's)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path

from dependency_injector import providers

from tests.unit.fakes import RecordingGatewayLink
from tinyim.bootstrap.container import wired
from tinyim.edges.gateway.connection import CLOSE_KICKED, Connection, TokenBucket
from tinyim.infra.redis import Keys
from tinyim.kernel import PushTarget
from tinyim.modules.presence import DeviceSession, Status
from tinyim.modules.presence.adapters.grpc_client import GrpcGatewayLink
from tinyim.modules.presence.adapters.memory import InMemorySessionDirectory
from tinyim.modules.presence.container import PresenceContainer
from tinyim.settings import Settings


class Friends:
    """StatusAudience: 1 and 2 watch each other."""

    async def watchers(self, user_id: int) -> list[int]:
        return [{1: 2, 2: 1}[user_id]]

    async def visible(self, viewer_id: int, user_ids: Sequence[int]) -> list[int]:
        return list(user_ids)

    async def check_typing(self, sender_id: int, peer_id: int) -> None:
        return None


def presence(settings: Settings, local: RecordingGatewayLink) -> PresenceContainer:
    return PresenceContainer(
        settings=settings,
        redis=providers.Object(None),
        keys=Keys("t:"),
        directory=providers.Object(object()),  # only the gRPC link holds them; no call is made here
        channels=providers.Object(object()),
        discovery="none",
        local_gateway=providers.Object(local),
        audience=providers.Object(Friends()),
    )


async def test_a_gateway_process_routes_pushes_and_status_through_its_local_gateway(tmp_path: Path) -> None:
    local = RecordingGatewayLink()
    container = presence(Settings(data_dir=tmp_path, jwt_secret="s" * 32), local)
    container.check_dependencies()
    sessions = container.sessions()
    assert isinstance(sessions, InMemorySessionDirectory)
    assert container.other_gateways() is None  # one process: no other gateway to reach
    await sessions.bind(DeviceSession(2, "PC", "gw-a", "c2"))

    await container.router().notify([PushTarget(2, 7)])
    await container.status().connected(1, "PC", "c1")  # 1 comes online; 2 watches 1

    assert local.pushes == [("gw-a", [PushTarget(2, 7)])]
    assert [(g, users, s.user_id, s.status) for g, users, s in local.statuses] == [
        ("gw-a", [2], 1, Status.ONLINE)
    ]
    assert container.router() is container.router() and container.sessions() is sessions


def test_a_process_without_the_gateway_role_reaches_every_gateway_over_grpc(tmp_path: Path) -> None:
    settings = Settings(
        data_dir=tmp_path,
        jwt_secret="s" * 32,
        roles="msg",
        redis_url="redis://127.0.0.1:6379/0",
        database_url="mysql+asyncmy://root@127.0.0.1/x",
    )
    container = presence(settings, RecordingGatewayLink())
    assert isinstance(container.gateways(), GrpcGatewayLink)
    assert container.gateways() is container.remote_gateways()


async def test_the_root_wires_the_hub_and_presence_on_one_session_table(tmp_path: Path) -> None:
    """One process: a login elsewhere kicks the connection the hub holds, found in the table it filled."""
    container = wired(Settings(data_dir=tmp_path, jwt_secret="s" * 32))
    closed: list[int] = []

    async def send(data: bytes) -> None:
        return None

    async def close(code: int, reason: str) -> None:
        closed.append(code)

    conn = Connection(send, close, 1, "PC", "old", "c-1", TokenBucket(10, 10), TokenBucket(0.2, 20))
    await container.hub().attach(conn)
    assert [s.gateway_id for s in (await container.presence.sessions().lookup([1]))[1]] == [
        container.hub().gateway_id
    ]

    await container.presence.router().kick(1, "PC", "new-token", "logged in elsewhere")

    await asyncio.sleep(0.05)  # the kick's frames go out in the background
    assert closed == [CLOSE_KICKED]
