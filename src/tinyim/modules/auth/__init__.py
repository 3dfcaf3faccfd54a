"""auth: accounts, password hashes, tokens, one live session per (user, device type)."""

from tinyim.kernel import UserProfile
from tinyim.modules.auth.domain import (
    DEVICE_TYPES,
    REGISTRATION_MODES,
    Account,
    AccountSummary,
    Invite,
    LoginResult,
    TokenClaims,
)
from tinyim.modules.auth.ports import (
    AccountRepository,
    AuthAdminApi,
    AuthApi,
    AuthUnitOfWork,
    AuthUnits,
    DeviceSessions,
    LostRace,
    PasswordHasher,
    ProfileCache,
    RefreshTokenStore,
    RegistrationStore,
    SessionKicker,
    TokenCodec,
    UsernameTaken,
)
from tinyim.modules.auth.service import AuthService

__all__ = [
    "DEVICE_TYPES",
    "REGISTRATION_MODES",
    "Account",
    "AccountRepository",
    "AccountSummary",
    "AuthAdminApi",
    "AuthApi",
    "AuthService",
    "AuthUnitOfWork",
    "AuthUnits",
    "DeviceSessions",
    "Invite",
    "LoginResult",
    "LostRace",
    "PasswordHasher",
    "ProfileCache",
    "RefreshTokenStore",
    "RegistrationStore",
    "SessionKicker",
    "TokenClaims",
    "TokenCodec",
    "UserProfile",
    "UsernameTaken",
]
