"""The auth module's admin API (disable, password reset, registration modes, invite codes, listing),
on the local service and through its gRPC client adapter, with in-memory stores."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.support.grpc_loop import remote_if
from tests.unit.fakes import FakeHasher, RecordingKicker
from tinyim.kernel import INVALID_ARGUMENT, NOT_FOUND, PERMISSION_DENIED, UNAUTHENTICATED, ImError
from tinyim.modules.auth import AuthService
from tinyim.modules.auth.adapters.crypto import JwtCodec
from tinyim.modules.auth.adapters.memory import (
    InMemoryAccounts,
    InMemoryDeviceSessions,
    InMemoryRefreshTokens,
    InMemoryRegistration,
)
from tinyim.modules.auth.adapters.memory_unit_of_work import InMemoryAuthUnits
from tinyim.modules.auth.adapters.rpc import GrpcAuthClient, auth_registrar
from tinyim.pb.im_internal_pb2_grpc import AuthServiceStub

PASSWORD = "password1"


class Env:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0
        self.accounts = InMemoryAccounts()
        self.sessions = InMemoryDeviceSessions()
        self.refresh = InMemoryRefreshTokens()
        self.registration = InMemoryRegistration()
        self.kicker = RecordingKicker()
        self.hasher = FakeHasher()
        self.service = AuthService(
            self.accounts,
            self.sessions,
            self.hasher,
            JwtCodec("s" * 40),
            self.kicker,
            600,
            clock=lambda: self.now,
            refresh_tokens=self.refresh,
            registration=self.registration,
            units=InMemoryAuthUnits(self.accounts, self.sessions, self.refresh, self.registration),
        )
        self.auth: Any = self.service  # AuthApi + AuthAdminApi


@pytest.fixture(params=["local", "grpc"])
async def env(request: pytest.FixtureRequest) -> AsyncIterator[Env]:
    env = Env()
    registrar = auth_registrar(env.service, env.service)
    async with remote_if(request.param, "auth", registrar, AuthServiceStub) as remote:
        if remote is not None:
            env.auth = GrpcAuthClient(remote)
        yield env


async def expect(code: str, coro: Any) -> str:
    with pytest.raises(ImError) as exc:
        await coro
    assert exc.value.code == code, exc.value.message
    return exc.value.message


async def test_disable_ends_every_session_and_refuses_login_and_refresh(env: Env) -> None:
    uid = await env.auth.register("alice", PASSWORD, "Alice")
    pc = await env.auth.login("alice", PASSWORD, "PC")
    web = await env.auth.login("alice", PASSWORD, "Web")
    env.kicker.kicks.clear()
    user = await env.auth.admin_set_disabled(uid, True)
    assert (user.user_id, user.username, user.disabled) == (uid, "alice", True)
    assert env.kicker.kicks == [(uid, "", "", "account disabled by an administrator")]  # every device
    assert env.sessions.live == {}
    for token in (pc.token, web.token):
        await expect(UNAUTHENTICATED, env.auth.verify_token(token))
    assert "disabled" in await expect(PERMISSION_DENIED, env.auth.login("alice", PASSWORD, "PC"))
    assert "disabled" in await expect(PERMISSION_DENIED, env.auth.refresh(web.refresh_token))
    # a wrong password still says only that
    await expect(UNAUTHENTICATED, env.auth.login("alice", "wrong-password", "PC"))

    assert not (await env.auth.admin_set_disabled(uid, False)).disabled
    again = await env.auth.login("alice", PASSWORD, "PC")
    assert (await env.auth.verify_token(again.token)).user_id == uid
    await expect(NOT_FOUND, env.auth.admin_set_disabled(uid + 100, True))


async def test_password_reset_revokes_sessions_and_refresh_tokens(env: Env) -> None:
    uid = await env.auth.register("alice", PASSWORD, "Alice")
    old = await env.auth.login("alice", PASSWORD, "PC")
    await expect(INVALID_ARGUMENT, env.auth.admin_reset_password(uid, "short"))
    await env.auth.admin_reset_password(uid, "new password 2")
    await expect(UNAUTHENTICATED, env.auth.verify_token(old.token))
    await expect(UNAUTHENTICATED, env.auth.refresh(old.refresh_token))
    await expect(UNAUTHENTICATED, env.auth.login("alice", PASSWORD, "PC"))
    assert (await env.auth.login("alice", "new password 2", "PC")).user_id == uid
    await expect(NOT_FOUND, env.auth.admin_reset_password(uid + 100, "new password 3"))


async def test_registration_closed_then_by_invitation(env: Env) -> None:
    assert await env.auth.registration_mode() == "open"
    await expect(INVALID_ARGUMENT, env.auth.set_registration_mode("maybe"))
    assert await env.auth.set_registration_mode("closed") == "closed"
    assert "closed" in await expect(PERMISSION_DENIED, env.auth.register("alice", PASSWORD, "A"))

    await env.auth.set_registration_mode("invite")
    assert "invite" in await expect(PERMISSION_DENIED, env.auth.register("alice", PASSWORD, "A"))
    await expect(PERMISSION_DENIED, env.auth.register("alice", PASSWORD, "A", "made-up-code"))
    invite, code = await env.auth.create_invite("for Alice", 3600)
    assert (invite.note, invite.expires_at, invite.used_by) == ("for Alice", int(env.now) + 3600, 0)
    # bad input does not spend the code; a taken name gives it back
    await expect(INVALID_ARGUMENT, env.auth.register("a", PASSWORD, "A", code))
    await env.registration.set_mode("open")
    await env.auth.register("taken", PASSWORD, "T")
    await env.registration.set_mode("invite")
    await expect("conflict", env.auth.register("taken", PASSWORD, "A", code))
    uid = await env.auth.register("alice", PASSWORD, "A", code)
    await expect(PERMISSION_DENIED, env.auth.register("bob", PASSWORD, "B", code))  # used once only
    listed = {i.invite_id: i for i in await env.auth.invites()}
    assert listed[invite.invite_id].used_by == uid

    revoked, revoked_code = await env.auth.create_invite("", 0)
    await env.auth.revoke_invite(revoked.invite_id)
    await expect(PERMISSION_DENIED, env.auth.register("bob", PASSWORD, "B", revoked_code))
    _, expiring_code = await env.auth.create_invite("", 60)
    env.now += 61
    await expect(PERMISSION_DENIED, env.auth.register("bob", PASSWORD, "B", expiring_code))
    await expect(NOT_FOUND, env.auth.revoke_invite(999))
    assert await env.auth.user_count() == 2


async def test_a_bad_invite_code_is_refused_before_the_password_is_hashed(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    hashed: list[str] = []

    async def counting_hash(password: str) -> str:
        hashed.append(password)
        return f"v2${password}"

    monkeypatch.setattr(env.hasher, "hash", counting_hash)
    await env.auth.set_registration_mode("invite")
    _, code = await env.auth.create_invite("", 0)
    await env.auth.register("first", PASSWORD, "F", code)
    assert hashed == [PASSWORD]
    for bad in (code, "x" * 40):  # used, unknown
        assert "invite" in await expect(PERMISSION_DENIED, env.auth.register("second", "other-pw1", "S", bad))
    assert hashed == [PASSWORD]


async def test_invite_codes_are_stored_as_hashes_only(env: Env) -> None:
    _, code = await env.auth.create_invite("x", 0)
    assert len(code) >= 20 and code not in env.registration.hashes
    assert all(code not in str(i) for i in await env.auth.invites())


async def test_list_users_by_prefix_in_pages(env: Env) -> None:
    ids = [await env.auth.register(f"user{i}", PASSWORD, f"Nick{i}") for i in range(5)]
    await env.auth.register("zed", PASSWORD, "Apple")
    page = await env.auth.admin_users("user", 0, 3)
    assert [u.user_id for u in page] == ids[:3]
    rest = await env.auth.admin_users("user", page[-1].user_id, 3)
    assert [u.user_id for u in rest] == ids[3:]
    assert [u.username for u in await env.auth.admin_users("app", 0, 10)] == ["zed"]  # nickname, any case
    assert len(await env.auth.admin_users("", 0, 100)) == 6
    assert await env.auth.admin_users("%", 0, 10) == []  # wildcards are literal
