"""Calls to a role over gRPC: balancing, failover to a live node, deadlines, and errors that stay errors."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable, Mapping
from typing import Any

import grpc
import pytest

from tests.support.grpc_loop import StaticRegistry, listening
from tinyim.infra.node_directory import NodeDirectory
from tinyim.infra.registry import Node
from tinyim.infra.rpc import Channels, RoleChannels
from tinyim.kernel import NOT_FOUND, UNAVAILABLE, ImError, Privacy, UserProfile
from tinyim.modules.auth import LoginResult, TokenClaims
from tinyim.modules.auth.adapters.rpc import GrpcAuthClient, auth_registrar
from tinyim.pb.im_internal_pb2_grpc import AuthServiceStub


class NamedAuth:
    """An AuthApi that says which node answered (in the nickname) and can be slow or fail."""

    def __init__(self, name: str, delay: float = 0.0) -> None:
        self.name = name
        self.delay = delay
        self.calls = 0

    async def get_profiles(self, user_ids: Iterable[int]) -> Mapping[int, UserProfile]:
        self.calls += 1
        await asyncio.sleep(self.delay)
        return {uid: UserProfile(uid, "u", self.name) for uid in user_ids}

    async def update_nickname(self, user_id: int, nickname: str) -> None:
        raise ImError(NOT_FOUND, f"no user {user_id}")

    async def register(self, username: str, password: str, nickname: str, invite_code: str = "") -> int:
        raise RuntimeError("a bug on the server side")

    async def login(self, username: str, password: str, device_id: str) -> LoginResult:
        raise NotImplementedError

    async def verify_token(self, token: str) -> TokenClaims:
        raise NotImplementedError

    async def logout(self, claims: TokenClaims) -> None:
        raise NotImplementedError

    async def refresh(self, refresh_token: str) -> LoginResult:
        raise NotImplementedError

    # user search
    async def search_profiles(
        self, username: str, nickname_prefix: str, after_user_id: int, limit: int
    ) -> list[UserProfile]:
        raise NotImplementedError

    async def privacy(self, user_id: int) -> Privacy:
        raise NotImplementedError

    async def set_privacy(self, user_id: int, privacy: Privacy) -> Privacy:
        raise NotImplementedError


def client(nodes: list[Node], channels: Channels, deadline: float = 2.0) -> GrpcAuthClient:
    directory = NodeDirectory(StaticRegistry(nodes), refresh_seconds=60)
    return GrpcAuthClient(RoleChannels("auth", directory, channels, AuthServiceStub, deadline))


@pytest.fixture
async def channels() -> AsyncIterator[Channels]:
    pool = Channels()
    yield pool
    await pool.close()


async def test_calls_are_balanced_over_live_nodes_and_skip_a_dead_one(channels: Channels) -> None:
    one, two = NamedAuth("one"), NamedAuth("two")
    async with listening(auth_registrar(one)) as p1, listening(auth_registrar(two)) as p2:
        dead = Node("auth", "auth-dead", "127.0.0.1", grpc_port=1)  # nothing listens on port 1
        auth = client([Node("auth", "a1", "127.0.0.1", grpc_port=p1), dead,
                       Node("auth", "a2", "127.0.0.1", grpc_port=p2)], channels)  # fmt: skip
        answers = [(await auth.get_profiles([7]))[7].nickname for _ in range(10)]
        assert set(answers) == {"one", "two"} and one.calls + two.calls == 10


async def test_module_errors_come_back_as_the_same_errors(channels: Channels) -> None:
    async with listening(auth_registrar(NamedAuth("one"))) as port:
        auth = client([Node("auth", "a1", "127.0.0.1", grpc_port=port)], channels)
        with pytest.raises(ImError) as exc:
            await auth.update_nickname(42, "x")
        assert (exc.value.code, exc.value.message) == (NOT_FOUND, "no user 42")
        with pytest.raises(Exception) as bug:  # a server bug is an internal error, never an ImError
            await auth.register("name", "password", "nick")
        assert not isinstance(bug.value, ImError)


async def test_a_slow_node_costs_the_deadline_not_forever(channels: Channels) -> None:
    async with listening(auth_registrar(NamedAuth("slow", delay=5))) as port:
        auth = client([Node("auth", "a1", "127.0.0.1", grpc_port=port)], channels, deadline=0.3)
        with pytest.raises(ImError) as exc:
            await asyncio.wait_for(auth.get_profiles([1]), 3)
        assert exc.value.code == UNAVAILABLE


async def test_no_live_node_is_unavailable(channels: Channels) -> None:
    with pytest.raises(ImError) as exc:
        await client([], channels).get_profiles([1])
    assert exc.value.code == UNAVAILABLE
    dead = [Node("auth", "auth-dead", "127.0.0.1", grpc_port=1)]
    with pytest.raises(ImError) as exc:
        await client(dead, channels).get_profiles([1])
    assert exc.value.code == UNAVAILABLE


class MovedAddressChannels(Channels):
    """Channels whose name resolution changed under them: the first channel to a target still goes to
    the address a dead node left to another service; a renewed one resolves to where the node is now."""

    def __init__(self, first: dict[str, str], now: dict[str, str]) -> None:
        super().__init__()
        self._first, self._now = first, now
        self.opened: list[str] = []

    def get(self, target: str) -> Any:
        if target not in self._channels:
            address = self._first.pop(target, None) or self._now[target]
            self.opened.append(address)
            self._channels[target] = grpc.aio.insecure_channel(address)
        return self._channels[target]


async def test_a_channel_that_reached_another_service_is_renewed_and_the_call_retried() -> None:
    """A killed container's address taken by a container of another role (compose, Kubernetes): the old
    channel reconnects there and gets UNIMPLEMENTED; the call must not fail for it."""
    async with listening(auth_registrar(NamedAuth("right"))) as right, listening(lambda _s: ()) as wrong:
        node = Node("auth", "a1", "auth-host", grpc_port=7)
        channels = MovedAddressChannels(
            {node.grpc_target: f"127.0.0.1:{wrong}"}, {node.grpc_target: f"127.0.0.1:{right}"}
        )
        try:
            profile = (await client([node], channels).get_profiles([3]))[3]
            assert profile.nickname == "right"
            assert channels.opened == [f"127.0.0.1:{wrong}", f"127.0.0.1:{right}"]
        finally:
            await channels.close()
