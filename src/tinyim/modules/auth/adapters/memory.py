"""In-memory auth stores: the fakes of unit tests and a reference for the contract suites."""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from dataclasses import replace

from tinyim.kernel import Privacy, UserProfile
from tinyim.modules.auth.domain import REGISTRATION_OPEN, Account, Invite, RefreshRecord
from tinyim.modules.auth.ports import UsernameTaken


class InMemoryAccounts:
    def __init__(self) -> None:
        self.rows: dict[int, Account] = {}
        self.privacies: dict[int, Privacy] = {}  # user search settings; absent = defaults
        self._next_id = 1

    async def add(self, username: str, password_hash: str, nickname: str) -> int:
        if any(a.username == username for a in self.rows.values()):
            raise UsernameTaken(username)
        user_id, self._next_id = self._next_id, self._next_id + 1
        self.rows[user_id] = Account(user_id, username, password_hash, nickname)
        return user_id

    async def by_username(self, username: str) -> Account | None:
        return next((a for a in self.rows.values() if a.username == username), None)

    async def by_ids(self, user_ids: Iterable[int]) -> Mapping[int, Account]:
        return {uid: self.rows[uid] for uid in user_ids if uid in self.rows}

    async def set_password_hash(self, user_id: int, password_hash: str) -> None:
        self.rows[user_id] = replace(self.rows[user_id], password_hash=password_hash)

    async def set_nickname(self, user_id: int, nickname: str) -> None:
        self.rows[user_id] = replace(self.rows[user_id], nickname=nickname)

    # admin API
    async def set_disabled(self, user_id: int, disabled: bool) -> bool:
        if user_id not in self.rows:
            return False
        self.rows[user_id] = replace(self.rows[user_id], disabled=disabled)
        return True

    async def list_accounts(self, query: str, after_user_id: int, limit: int) -> list[Account]:
        wanted = _fold(query)
        found = [
            a
            for uid, a in sorted(self.rows.items())
            if uid > after_user_id
            and (_fold(a.username).startswith(wanted) or _fold(a.nickname).startswith(wanted))
        ]
        return found[:limit]

    async def count(self) -> int:
        return len(self.rows)

    # user search
    async def search_nickname(self, prefix: str, after_user_id: int, limit: int) -> list[UserProfile]:
        wanted = _fold(prefix)
        found = [
            UserProfile(a.user_id, a.username, a.nickname)
            for uid, a in sorted(self.rows.items())
            if uid > after_user_id
            and _fold(a.nickname).startswith(wanted)
            and not self.privacies.get(uid, Privacy()).hide_from_nickname_search
        ]
        return found[:limit]

    async def privacy(self, user_id: int) -> Privacy | None:
        return self.privacies.get(user_id, Privacy()) if user_id in self.rows else None

    async def set_privacy(self, user_id: int, privacy: Privacy) -> None:
        if user_id in self.rows:
            self.privacies[user_id] = privacy


def _fold(text: str) -> str:
    """Latin letters case-insensitively, as SQL LIKE compares them on SQLite and MariaDB."""
    return "".join(ch.lower() if ch.isascii() else ch for ch in text)


class InMemoryProfileCache:
    """Bounded process-local profile cache with a TTL (the Redis one is shared by every process)."""

    def __init__(self, ttl_seconds: float = 300.0, max_entries: int = 100_000) -> None:
        self._ttl = ttl_seconds
        self._max = max_entries
        self.entries: dict[int, tuple[float, UserProfile]] = {}

    async def get_many(self, user_ids: Iterable[int]) -> dict[int, UserProfile]:
        now = time.monotonic()
        found = {}
        for uid in user_ids:
            entry = self.entries.get(uid)
            if entry is not None and entry[0] > now:
                found[uid] = entry[1]
        return found

    async def put_many(self, profiles: Iterable[UserProfile]) -> None:
        expires = time.monotonic() + self._ttl
        for p in profiles:
            if len(self.entries) >= self._max:
                self.entries.pop(next(iter(self.entries)))  # oldest insertion first
            self.entries[p.user_id] = (expires, p)

    async def drop(self, user_id: int) -> None:
        self.entries.pop(user_id, None)


class InMemoryDeviceSessions:
    def __init__(self) -> None:
        self.live: dict[tuple[int, str], str] = {}

    async def activate(self, user_id: int, device_id: str, token_id: str) -> None:
        self.live[(user_id, device_id)] = token_id

    async def current(self, user_id: int, device_id: str) -> str | None:
        return self.live.get((user_id, device_id))

    async def revoke(self, user_id: int, device_id: str, token_id: str) -> None:
        if self.live.get((user_id, device_id)) == token_id:
            del self.live[(user_id, device_id)]

    async def revoke_user(self, user_id: int) -> None:
        for key in [k for k in self.live if k[0] == user_id]:
            del self.live[key]


class InMemoryRefreshTokens:
    def __init__(self) -> None:
        self.rows: dict[str, RefreshRecord] = {}

    async def add(
        self, token_hash: str, user_id: int, device_id: str, family_id: str, expires_at: int
    ) -> None:
        self.rows[token_hash] = RefreshRecord(user_id, device_id, family_id, expires_at, False, False)

    async def consume(self, token_hash: str) -> RefreshRecord | None:
        record = self.rows.get(token_hash)
        if record is not None:
            self.rows[token_hash] = replace(record, used=True)
        return record

    async def revoke_family(self, family_id: str) -> None:
        for h, r in self.rows.items():
            if r.family_id == family_id:
                self.rows[h] = replace(r, revoked=True)

    async def revoke_device(self, user_id: int, device_id: str) -> None:
        for h, r in self.rows.items():
            if (r.user_id, r.device_id) == (user_id, device_id):
                self.rows[h] = replace(r, revoked=True)

    async def revoke_user(self, user_id: int) -> None:
        for h, r in self.rows.items():
            if r.user_id == user_id:
                self.rows[h] = replace(r, revoked=True)


class InMemoryRegistration:
    """admin API: the registration mode and invites of one process (tests; SQL in every deployment)."""

    def __init__(self) -> None:
        self.current = REGISTRATION_OPEN
        self.rows: dict[int, Invite] = {}
        self.hashes: dict[str, int] = {}  # code hash -> invite id
        self.claimed: set[int] = set()

    async def mode(self) -> str:
        return self.current

    async def set_mode(self, mode: str) -> None:
        self.current = mode

    async def add_invite(self, code_hash: str, note: str, created_at: int, expires_at: int) -> Invite:
        invite = Invite(len(self.rows) + 1, note, created_at, expires_at, 0, False)
        self.rows[invite.invite_id] = invite
        self.hashes[code_hash] = invite.invite_id
        return invite

    async def invites(self) -> list[Invite]:
        return [self.rows[i] for i in sorted(self.rows)]

    async def usable_invite(self, code_hash: str, now: int) -> bool:
        invite_id = self.hashes.get(code_hash)
        if invite_id is None or invite_id in self.claimed:
            return False
        invite = self.rows[invite_id]
        return not invite.revoked and not (invite.expires_at and invite.expires_at <= now)

    async def claim_invite(self, code_hash: str, now: int) -> int | None:
        if not await self.usable_invite(code_hash, now):
            return None
        invite_id = self.hashes[code_hash]
        self.claimed.add(invite_id)
        return invite_id

    async def finish_invite(self, invite_id: int, user_id: int) -> None:
        self.rows[invite_id] = replace(self.rows[invite_id], used_by=user_id)

    async def release_invite(self, invite_id: int) -> None:
        if self.rows[invite_id].used_by == 0:
            self.claimed.discard(invite_id)

    async def revoke_invite(self, invite_id: int) -> bool:
        if invite_id not in self.rows:
            return False
        self.rows[invite_id] = replace(self.rows[invite_id], revoked=True)
        return True
