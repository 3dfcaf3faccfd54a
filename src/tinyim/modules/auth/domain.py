"""Accounts and sessions: validation rules and value objects. No I/O."""

from __future__ import annotations

import re
from dataclasses import dataclass

from tinyim.kernel import INVALID_ARGUMENT, ImError, check_display_text

USERNAME_RE = re.compile(r"^[A-Za-z0-9_.-]{3,32}$")
PASSWORD_MIN, PASSWORD_MAX = 8, 128
NICKNAME_MAX = 64
# One live session per (user, device type): these are the device types a client may claim.
DEVICE_TYPES = frozenset({"PC", "Web", "Mobile", "Pad"})


@dataclass(frozen=True, slots=True)
class Account:
    user_id: int
    username: str
    password_hash: str
    nickname: str


@dataclass(frozen=True, slots=True)
class TokenClaims:
    user_id: int
    device_id: str
    token_id: str
    expires_at: int  # Unix seconds


@dataclass(frozen=True, slots=True)
class LoginResult:
    user_id: int
    token: str
    expires_at: int
    token_id: str
    refresh_token: str = ""  # exchanged for a new token (and a new refresh token) without the password
    refresh_expires_at: int = 0


@dataclass(frozen=True, slots=True)
class RefreshRecord:
    """A stored refresh token (by hash): whose, which family, and whether it was used or revoked."""

    user_id: int
    device_id: str
    family_id: str
    expires_at: int
    used: bool
    revoked: bool


def check_username(username: object) -> str:
    if not isinstance(username, str) or not USERNAME_RE.fullmatch(username):
        raise ImError(
            INVALID_ARGUMENT, "username must be 3-32 characters of letters, digits, '_', '.' or '-'"
        )
    return username


def check_password(password: object) -> str:
    if not isinstance(password, str) or not PASSWORD_MIN <= len(password) <= PASSWORD_MAX:
        raise ImError(INVALID_ARGUMENT, f"password must be {PASSWORD_MIN}-{PASSWORD_MAX} characters")
    return password


def check_nickname(nickname: object) -> str:
    return check_display_text(nickname, "nickname", NICKNAME_MAX)


def check_device(device_id: object) -> str:
    if not isinstance(device_id, str) or device_id not in DEVICE_TYPES:
        raise ImError(INVALID_ARGUMENT, f"device_id must be one of {sorted(DEVICE_TYPES)}")
    return device_id
