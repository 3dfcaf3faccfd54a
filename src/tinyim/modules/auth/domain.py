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
    disabled: bool = False  # admin API: a disabled account cannot log in or refresh


# ---------- admin API ----------
# Who may register: everyone, nobody (an administrator creates nothing either: closed means closed), or
# whoever holds an unused invite code.
REGISTRATION_OPEN, REGISTRATION_CLOSED, REGISTRATION_INVITE = "open", "closed", "invite"
REGISTRATION_MODES = (REGISTRATION_OPEN, REGISTRATION_CLOSED, REGISTRATION_INVITE)
ADMIN_PAGE_MAX = 200
INVITE_NOTE_MAX = 128


@dataclass(frozen=True, slots=True)
class AccountSummary:
    """An account as an administrator sees it (never its password hash)."""

    user_id: int
    username: str
    nickname: str
    disabled: bool


@dataclass(frozen=True, slots=True)
class Invite:
    """An invite code's record; the code itself is shown once, at creation, and stored as a hash."""

    invite_id: int
    note: str
    created_at: int  # Unix seconds
    expires_at: int  # 0 = never
    used_by: int  # the user who registered with it; 0 = unused
    revoked: bool


def check_registration_mode(mode: object) -> str:
    if mode not in REGISTRATION_MODES:
        raise ImError(INVALID_ARGUMENT, f"registration mode must be one of {list(REGISTRATION_MODES)}")
    return str(mode)


def check_invite_note(note: object) -> str:
    """An optional label for whom the code is meant."""
    if note == "":
        return ""
    return check_display_text(note, "note", INVITE_NOTE_MAX)


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
