"""Interceptors on every internal call: the request id crosses the wire, calls are timed by method/status."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Iterable, Mapping

import pytest
from prometheus_client import REGISTRY

from tests.support.grpc_loop import StaticRegistry
from tests.support.server import free_port
from tinyim.infra import tracing
from tinyim.infra.node_directory import NodeDirectory
from tinyim.infra.registry import Node
from tinyim.infra.rpc import Channels, RoleChannels, grpc_server
from tinyim.kernel import NOT_FOUND, ImError, UserProfile
from tinyim.modules.auth.adapters.rpc import GrpcAuthClient, auth_registrar
from tinyim.pb.im_internal_pb2_grpc import AuthServiceStub

from .test_rpc import NamedAuth

GET_PROFILES = "/im.AuthService/GetUserInfo"
UPDATE_NICKNAME = "/im.AuthService/UpdateNickname"
SIDES = ("tinyim_grpc_client_seconds", "tinyim_grpc_server_seconds")


class RecordingAuth(NamedAuth):
    """Remembers the request id it saw while serving, and logs a line."""

    def __init__(self) -> None:
        super().__init__("served")
        self.seen: list[str] = []

    async def get_profiles(self, user_ids: Iterable[int]) -> Mapping[int, UserProfile]:
        self.seen.append(tracing.current())
        logging.getLogger("tinyim.test.served").warning("serving profiles")
        return await super().get_profiles(user_ids)


def samples(name: str, method: str, code: str) -> float:
    return REGISTRY.get_sample_value(f"{name}_count", {"method": method, "code": code}) or 0.0


@contextlib.asynccontextmanager
async def auth_node(service: NamedAuth) -> AsyncIterator[GrpcAuthClient]:
    port = free_port()
    serve = contextlib.asynccontextmanager(grpc_server)
    channels = Channels()
    try:
        async with serve("127.0.0.1", port, [auth_registrar(service)]):
            directory = NodeDirectory(StaticRegistry([Node("auth", "a1", "127.0.0.1", grpc_port=port)]))
            yield GrpcAuthClient(RoleChannels("auth", directory, channels, AuthServiceStub, 2.0))
    finally:
        await channels.close()


async def test_the_request_id_reaches_the_server_and_its_log_lines(caplog: pytest.LogCaptureFixture) -> None:
    service = RecordingAuth()
    caplog.handler.addFilter(tracing.RequestIdFilter())
    async with auth_node(service) as auth:
        rid = tracing.new_request()
        await auth.get_profiles([7])
        tracing.new_request()
        await auth.get_profiles([8])
    assert service.seen[0] == rid and service.seen[1] not in ("", rid)
    served = [r for r in caplog.records if r.name == "tinyim.test.served"]
    assert [getattr(r, "request_id", "") for r in served] == service.seen


async def test_calls_are_counted_by_method_and_status_on_both_sides() -> None:
    before = {
        side: (samples(side, GET_PROFILES, "OK"), samples(side, UPDATE_NICKNAME, "NOT_FOUND"))
        for side in SIDES
    }
    async with auth_node(NamedAuth("one")) as auth:
        await auth.get_profiles([1])
        await auth.get_profiles([2])
        with pytest.raises(ImError) as exc:
            await auth.update_nickname(42, "x")
        assert exc.value.code == NOT_FOUND
    for side, (ok, not_found) in before.items():
        assert samples(side, GET_PROFILES, "OK") == ok + 2, side
        assert samples(side, UPDATE_NICKNAME, "NOT_FOUND") == not_found + 1, side
