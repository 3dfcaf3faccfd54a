"""auth: accounts, password hashes, tokens, one live session per (user, device type)."""

from tinyim.kernel import UserProfile
from tinyim.modules.auth.domain import DEVICE_TYPES, Account, LoginResult, TokenClaims
from tinyim.modules.auth.ports import (
    AccountRepository,
    AuthApi,
    DeviceSessions,
    PasswordHasher,
    ProfileCache,
    RefreshTokenStore,
    SessionKicker,
    TokenCodec,
    UsernameTaken,
)
from tinyim.modules.auth.service import AuthService

__all__ = [
    "DEVICE_TYPES",
    "Account",
    "AccountRepository",
    "AuthApi",
    "AuthService",
    "DeviceSessions",
    "LoginResult",
    "PasswordHasher",
    "ProfileCache",
    "RefreshTokenStore",
    "SessionKicker",
    "TokenClaims",
    "TokenCodec",
    "UserProfile",
    "UsernameTaken",
]
