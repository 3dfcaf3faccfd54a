"""Fast benchmark accounts: users and live sessions written to the database, tokens minted with the secret.

Registering through the API costs one argon2 hash per user (and one per login): minutes of CPU for a few
hundred users, none of it what a benchmark measures. Here every user shares one password hash (computed
once, so `tinyim chat` can still log in as them), each gets a `PC` session row and a token signed with the
server's JWT secret, exactly what a login would have written and returned. Friendships are made over the
protocol by the load generator itself (the relation module owns how they are stored and cached).
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass

from sqlalchemy import insert

from tinyim.infra.db import Database
from tinyim.modules.auth import TokenClaims
from tinyim.modules.auth.adapters.crypto import JwtCodec
from tinyim.modules.auth.adapters.sql import im_device_session, im_user

PASSWORD = "benchmark-password"
DEVICE = "PC"


@dataclass(frozen=True)
class Account:
    user_id: int
    username: str
    token: str
    expires_at: int


def _password_hash() -> str:
    from argon2 import PasswordHasher

    return PasswordHasher().hash(PASSWORD)


async def seed_accounts(database_url: str, secret: str, count: int, first_id: int = 1) -> list[Account]:
    """`count` users with ids first_id… (a fresh database: nothing else holds them), each with a token."""
    codec = JwtCodec(secret)
    expires = int(time.time()) + 6 * 3600
    password = _password_hash()
    users, sessions, accounts = [], [], []
    tag = secrets.token_hex(3)
    for user_id in range(first_id, first_id + count):
        token_id = secrets.token_hex(8)
        username = f"b{tag}_{user_id}"
        users.append({"user_id": user_id, "username": username, "password": password, "nickname": "bench"})
        sessions.append({"user_id": user_id, "device_id": DEVICE, "token_id": token_id})
        token = codec.issue(TokenClaims(user_id, DEVICE, token_id, expires))
        accounts.append(Account(user_id, username, token, expires))
    db = Database(database_url)
    try:
        for start in range(0, count, 1000):
            async with db.write() as conn:
                await conn.execute(insert(im_user), users[start : start + 1000])
                await conn.execute(insert(im_device_session), sessions[start : start + 1000])
    finally:
        await db.dispose()
    return accounts


def session_body(account: Account, http_base: str, rate: float = 0, burst: float = 0) -> dict[str, object]:
    """What POST /api/login would have answered, for `Session._take_session` (the SDK then skips login);
    rate/burst: the server's per-connection limit the SDK paces itself to."""
    return {
        "user_id": account.user_id,
        "token": account.token,
        "expires_at": account.expires_at,
        "gateway": {"ws_url": http_base.replace("http://", "ws://") + "/ws"},
        "limits": {"rate_per_second": rate, "rate_burst": burst},
    }
