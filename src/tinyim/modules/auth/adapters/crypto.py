"""Password hashing (argon2id via argon2-cffi) and tokens (JWT via PyJWT, algorithm pinned)."""

from __future__ import annotations

import asyncio

import jwt
from argon2 import PasswordHasher as _Argon2
from argon2.exceptions import InvalidHashError, VerificationError

from tinyim.modules.auth.domain import TokenClaims

ALGORITHM = "HS256"
ISSUER = "tinyim"


class Argon2Hasher:
    """argon2id with the library's RFC 9106 low-memory profile; hashing runs off the event loop."""

    def __init__(
        self, time_cost: int | None = None, memory_cost: int | None = None, max_concurrent: int = 2
    ) -> None:
        # None or 0: the profile's own (settings say 0 for "not set")
        kwargs = {k: v for k, v in (("time_cost", time_cost), ("memory_cost", memory_cost)) if v}
        self._ph = _Argon2(**kwargs)  # type: ignore[arg-type]
        # Each hash takes CPU and memory_cost KiB: a burst of logins queues here instead of piling up.
        self._slots = asyncio.Semaphore(max_concurrent)

    async def hash(self, password: str) -> str:
        async with self._slots:
            return await asyncio.to_thread(self._ph.hash, password)

    async def verify(self, password_hash: str, password: str) -> bool:
        def check() -> bool:
            try:
                return self._ph.verify(password_hash, password)
            except (VerificationError, InvalidHashError):
                return False

        async with self._slots:
            return await asyncio.to_thread(check)

    def needs_rehash(self, password_hash: str) -> bool:
        try:
            return self._ph.check_needs_rehash(password_hash)
        except InvalidHashError:
            return False


class JwtCodec:
    def __init__(self, secret: str) -> None:
        if len(secret) < 32:
            raise ValueError("the JWT secret must be at least 32 characters")
        self._secret = secret

    def issue(self, claims: TokenClaims) -> str:
        payload = {
            "iss": ISSUER,
            "sub": str(claims.user_id),
            "dev": claims.device_id,
            "jti": claims.token_id,
            "exp": claims.expires_at,
        }
        return jwt.encode(payload, self._secret, algorithm=ALGORITHM)

    def read(self, token: str) -> TokenClaims:
        if not isinstance(token, str) or not token or len(token) > 2048:
            raise ValueError("missing or oversized token")
        try:
            payload = jwt.decode(
                token,
                self._secret,
                algorithms=[ALGORITHM],
                issuer=ISSUER,
                options={"require": ["exp", "sub", "jti", "iss"]},
            )
            return TokenClaims(
                int(payload["sub"]), str(payload["dev"]), str(payload["jti"]), int(payload["exp"])
            )
        except (jwt.PyJWTError, KeyError, TypeError) as exc:
            raise ValueError(str(exc) or type(exc).__name__) from None
        except ValueError:
            raise ValueError("malformed claims") from None
