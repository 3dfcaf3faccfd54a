"""auth service with in-memory fakes (spec test plan C.1 and the session rules)."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator

import jwt
import pytest

from tests.support.grpc_loop import remote_if
from tests.unit.fakes import FakeHasher, RecordingKicker
from tinyim.kernel import CONFLICT, INVALID_ARGUMENT, UNAUTHENTICATED, ImError
from tinyim.modules.auth import AuthApi, AuthService
from tinyim.modules.auth.adapters.crypto import JwtCodec
from tinyim.modules.auth.adapters.memory import InMemoryAccounts, InMemoryDeviceSessions
from tinyim.modules.auth.adapters.memory_unit_of_work import InMemoryAuthUnits
from tinyim.modules.auth.adapters.rpc import GrpcAuthClient, auth_registrar
from tinyim.pb.im_internal_pb2_grpc import AuthServiceStub

SECRET = "s" * 40


class Env:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0
        self.accounts = InMemoryAccounts()
        self.sessions = InMemoryDeviceSessions()
        self.hasher = FakeHasher()
        self.kicker = RecordingKicker()
        self.auth: AuthApi = AuthService(
            self.accounts,
            self.sessions,
            self.hasher,
            JwtCodec(SECRET),
            self.kicker,
            600,
            clock=lambda: self.now,
            units=InMemoryAuthUnits(self.accounts, self.sessions),
        )


@pytest.fixture(params=["local", "grpc"])
async def env(request: pytest.FixtureRequest) -> AsyncIterator[Env]:
    """The AuthApi contract: the local service, and the gRPC client adapter in front of it."""
    env = Env()
    async with remote_if(request.param, "auth", auth_registrar(env.auth), AuthServiceStub) as remote:
        if remote is not None:
            env.auth = GrpcAuthClient(remote)
        yield env


async def test_register_stores_a_hash_not_the_password(env: Env) -> None:
    uid = await env.auth.register("alice", "password1", "  Alice ")
    account = env.accounts.rows[uid]
    assert account.username == "alice" and account.nickname == "Alice"
    assert account.password_hash != "password1" and await env.hasher.verify(
        account.password_hash, "password1"
    )


async def test_register_taken_username_is_a_conflict(env: Env) -> None:
    await env.auth.register("alice", "password1", "A")
    with pytest.raises(ImError) as exc:
        await env.auth.register("alice", "password2", "B")
    assert exc.value.code == CONFLICT
    assert len(env.accounts.rows) == 1


@pytest.mark.parametrize(
    ("username", "password", "nickname"),
    [
        ("al", "password1", "A"),
        ("a" * 33, "password1", "A"),
        ("bad name", "password1", "A"),
        ("alice", "short", "A"),
        ("alice", "p" * 129, "A"),
        ("alice", "password1", ""),
        ("alice", "password1", "x" * 65),
        ("alice", "password1", "a\u200bb"),
        (None, "password1", "A"),
    ],
)
async def test_register_rejects_invalid_input(
    env: Env, username: object, password: str, nickname: str
) -> None:
    with pytest.raises(ImError) as exc:
        await env.auth.register(username, password, nickname)  # type: ignore[arg-type]
    assert exc.value.code == INVALID_ARGUMENT
    assert env.accounts.rows == {}


async def test_login_success_returns_a_token_that_verifies(env: Env) -> None:
    uid = await env.auth.register("alice", "password1", "A")
    result = await env.auth.login("alice", "password1", "PC")
    claims = await env.auth.verify_token(result.token)
    assert (claims.user_id, claims.device_id, claims.token_id) == (uid, "PC", result.token_id)
    assert result.expires_at == int(env.now) + 600
    assert env.sessions.live == {(uid, "PC"): result.token_id}


async def test_login_wrong_password_and_unknown_user_fail_alike(env: Env) -> None:
    await env.auth.register("alice", "password1", "A")
    errors = []
    for user, pw in (("alice", "wrong-pass"), ("nobody", "password1")):
        with pytest.raises(ImError) as exc:
            await env.auth.login(user, pw, "PC")
        errors.append((exc.value.code, exc.value.message))
    assert errors[0] == errors[1] and errors[0][0] == UNAUTHENTICATED
    assert env.hasher.verified == 2  # the unknown user cost a verify too (no timing oracle)
    assert env.sessions.live == {}


async def test_login_rejects_unknown_device_types(env: Env) -> None:
    await env.auth.register("alice", "password1", "A")
    with pytest.raises(ImError) as exc:
        await env.auth.login("alice", "password1", "Fridge")
    assert exc.value.code == INVALID_ARGUMENT


async def test_tampered_token_fails(env: Env) -> None:
    await env.auth.register("alice", "password1", "A")
    token = (await env.auth.login("alice", "password1", "PC")).token
    head, payload, sig = token.split(".")
    for bad in (f"{head}.{payload}.{sig[:-1]}{'A' if sig[-1] != 'A' else 'B'}", token + "x", "", "a.b.c"):
        with pytest.raises(ImError) as exc:
            await env.auth.verify_token(bad)
        assert exc.value.code == UNAUTHENTICATED


async def test_token_signed_with_another_algorithm_or_secret_fails(env: Env) -> None:
    uid = await env.auth.register("alice", "password1", "A")
    result = await env.auth.login("alice", "password1", "PC")
    claims = {"iss": "tinyim", "sub": str(uid), "dev": "PC", "jti": result.token_id, "exp": int(env.now) + 60}
    for forged in (
        jwt.encode(claims, "x" * 40, algorithm="HS256"),
        jwt.encode(claims, SECRET * 2, algorithm="HS512"),
    ):
        with pytest.raises(ImError):
            await env.auth.verify_token(forged)


async def test_expired_token_fails(env: Env) -> None:
    await env.auth.register("alice", "password1", "A")
    token = (await env.auth.login("alice", "password1", "PC")).token
    codec = JwtCodec(SECRET)
    expired = codec.issue(dataclasses.replace(codec.read(token), expires_at=1_000))
    with pytest.raises(ImError) as exc:
        await env.auth.verify_token(expired)
    assert "expired" in exc.value.message.lower()


async def test_relogin_on_same_device_revokes_and_kicks_the_old_session(env: Env) -> None:
    uid = await env.auth.register("alice", "password1", "A")
    first = await env.auth.login("alice", "password1", "PC")
    web = await env.auth.login("alice", "password1", "Web")
    second = await env.auth.login("alice", "password1", "PC")
    with pytest.raises(ImError):
        await env.auth.verify_token(first.token)
    assert (await env.auth.verify_token(second.token)).token_id == second.token_id
    assert (await env.auth.verify_token(web.token)).device_id == "Web"  # other device types stay
    assert env.kicker.kicks[-1][:3] == (uid, "PC", second.token_id)


async def test_logout_revokes_only_that_session(env: Env) -> None:
    await env.auth.register("alice", "password1", "A")
    pc = await env.auth.login("alice", "password1", "PC")
    web = await env.auth.login("alice", "password1", "Web")
    await env.auth.logout(await env.auth.verify_token(pc.token))
    with pytest.raises(ImError):
        await env.auth.verify_token(pc.token)
    await env.auth.verify_token(web.token)


async def test_outdated_hash_is_upgraded_on_login(env: Env) -> None:
    uid = await env.auth.register("alice", "password1", "A")
    env.hasher.scheme = "v3"
    await env.auth.login("alice", "password1", "PC")
    assert env.accounts.rows[uid].password_hash == "v3$password1"


async def test_profiles_in_batch(env: Env) -> None:
    a = await env.auth.register("alice", "password1", "Alice")
    b = await env.auth.register("bob", "password1", "Bob")
    profiles = await env.auth.get_profiles([a, b, 999])
    assert {uid: p.nickname for uid, p in profiles.items()} == {a: "Alice", b: "Bob"}
