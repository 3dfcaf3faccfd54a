"""SQL auth stores (SQLite, MySQL, MariaDB): accounts, device sessions, refresh tokens, registration.

Each store on its own runs every write as a transaction of its own; bound to a connection (a unit of
work's, see `sql_unit_of_work.py`) it runs every read and write in that connection's transaction and
commits nothing.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterable, Mapping
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Index,
    Integer,
    SmallInteger,
    String,
    Table,
    UniqueConstraint,
    delete,
    func,
    or_,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from tinyim.infra.db import Database, is_unique_violation, metadata, upsert
from tinyim.kernel import Privacy, UserProfile
from tinyim.modules.auth.domain import REGISTRATION_OPEN, Account, Invite, RefreshRecord
from tinyim.modules.auth.ports import UsernameTaken

im_user = Table(
    "im_user",
    metadata,
    Column("user_id", BigInteger, primary_key=True, autoincrement=True),
    Column("username", String(32), nullable=False),
    Column("password", String(128), nullable=False),
    Column("nickname", String(64), nullable=False),
    Column("created_at", DateTime),
    Column("updated_at", DateTime),
    Column("nickname_searchable", SmallInteger, nullable=False),  # user search: 0 = opted out
    Column("disabled", SmallInteger, nullable=False, server_default="0"),  # admin API: 1 = may not log in
    UniqueConstraint("username", name="uk_username"),
    Index("idx_nickname", "nickname"),
)

im_device_session = Table(
    "im_device_session",
    metadata,
    Column("user_id", BigInteger, primary_key=True),
    Column("device_id", String(16), primary_key=True),
    Column("token_id", String(64), nullable=False),
    Column("updated_at", DateTime),
)


im_refresh_token = Table(
    "im_refresh_token",
    metadata,
    Column("token_hash", String(64), primary_key=True),
    Column("user_id", BigInteger, nullable=False),
    Column("device_id", String(16), nullable=False),
    Column("family_id", String(32), nullable=False),
    Column("expires_at", BigInteger, nullable=False),
    Column("used", SmallInteger, nullable=False),
    Column("revoked", SmallInteger, nullable=False),
    Column("created_at", DateTime, nullable=False),
    Index("ix_refresh_token_device", "user_id", "device_id"),
    Index("ix_refresh_token_family", "family_id"),
)


# admin API: registration mode (and any later server-wide switch) and invite codes
im_setting = Table(
    "im_setting",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("value", String(255), nullable=False),
)

im_invite = Table(
    "im_invite",
    metadata,
    Column("invite_id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("code_hash", String(64), nullable=False, unique=True),
    Column("note", String(128), nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("expires_at", BigInteger, nullable=False),  # 0 = never
    Column("claimed", SmallInteger, nullable=False),  # 1 from the moment a registration takes it
    Column("used_by", BigInteger, nullable=False),  # 0 = unused
    Column("revoked", SmallInteger, nullable=False),
)

REGISTRATION_MODE = "registration_mode"


def _account(row: object) -> Account:
    r: Any = row
    return Account(r.user_id, r.username, r.password, r.nickname, bool(r.disabled))


def _like_prefix(prefix: str) -> str:
    """A LIKE pattern for `prefix%` with the wildcards of prefix taken literally (escape '!')."""
    return prefix.replace("!", "!!").replace("%", "!%").replace("_", "!_") + "%"


class _SqlStore:
    def __init__(self, db: Database, conn: AsyncConnection | None = None) -> None:
        self._db = db
        self._conn = conn

    @contextlib.asynccontextmanager
    async def _write(self) -> AsyncIterator[AsyncConnection]:
        if self._conn is not None:
            yield self._conn
            return
        async with self._db.write() as conn:
            yield conn

    @contextlib.asynccontextmanager
    async def _read(self, fresh: bool = False) -> AsyncIterator[AsyncConnection]:
        if self._conn is not None:  # inside a unit of work: it sees its own writes
            yield self._conn
            return
        async with self._db.read(fresh) as conn:
            yield conn


class SqlAccounts(_SqlStore):
    async def add(self, username: str, password_hash: str, nickname: str) -> int:
        try:
            async with self._write() as conn:
                result = await conn.execute(
                    im_user.insert().values(
                        username=username, password=password_hash, nickname=nickname, updated_at=func.now()
                    )
                )
                return int(result.inserted_primary_key[0])  # type: ignore[index]
        except IntegrityError as exc:
            if is_unique_violation(exc):
                raise UsernameTaken(username) from None
            raise

    async def by_username(self, username: str) -> Account | None:
        # Login checks a password against this row: read it from the primary, never a lagging replica.
        async with self._read(fresh=True) as conn:
            row = (await conn.execute(select(im_user).where(im_user.c.username == username))).first()
        return _account(row) if row else None

    async def by_ids(self, user_ids: Iterable[int]) -> Mapping[int, Account]:
        ids = sorted(set(user_ids))
        if not ids:
            return {}
        async with self._read() as conn:
            rows = (await conn.execute(select(im_user).where(im_user.c.user_id.in_(ids)))).all()
        return {row.user_id: _account(row) for row in rows}

    async def set_password_hash(self, user_id: int, password_hash: str) -> None:
        async with self._write() as conn:
            await conn.execute(
                update(im_user)
                .where(im_user.c.user_id == user_id)
                .values(password=password_hash, updated_at=func.now())
            )

    async def set_nickname(self, user_id: int, nickname: str) -> None:
        async with self._write() as conn:
            await conn.execute(
                update(im_user)
                .where(im_user.c.user_id == user_id)
                .values(nickname=nickname, updated_at=func.now())
            )

    # ---------- user search ----------
    async def search_nickname(self, prefix: str, after_user_id: int, limit: int) -> list[UserProfile]:
        u = im_user
        pattern = _like_prefix(prefix)
        query = (
            select(u.c.user_id, u.c.username, u.c.nickname)
            # LIKE compares Latin letters case-insensitively on SQLite and on MySQL/MariaDB's utf8mb4
            # collations, and uses the nickname index
            .where(
                u.c.nickname.like(pattern, escape="!"),
                u.c.nickname_searchable == 1,
                u.c.user_id > after_user_id,
            )
            .order_by(u.c.user_id)
            .limit(limit)
        )
        async with self._read() as conn:
            rows = (await conn.execute(query)).all()
        return [UserProfile(r.user_id, r.username, r.nickname) for r in rows]

    async def privacy(self, user_id: int) -> Privacy | None:
        query = select(im_user.c.nickname_searchable).where(im_user.c.user_id == user_id)
        async with self._read(fresh=True) as conn:
            row = (await conn.execute(query)).first()
        return None if row is None else Privacy(hide_from_nickname_search=row.nickname_searchable == 0)

    async def set_privacy(self, user_id: int, privacy: Privacy) -> None:
        async with self._write() as conn:
            await conn.execute(
                update(im_user)
                .where(im_user.c.user_id == user_id)
                .values(nickname_searchable=0 if privacy.hide_from_nickname_search else 1)
            )

    # ---------- admin API ----------
    async def set_disabled(self, user_id: int, disabled: bool) -> bool:
        async with self._write() as conn:
            result = await conn.execute(
                update(im_user)
                .where(im_user.c.user_id == user_id)
                .values(disabled=1 if disabled else 0, updated_at=func.now())
            )
        # MySQL counts changed rows: setting the value it already has reports 0
        return result.rowcount == 1 or await self._exists(user_id)

    async def _exists(self, user_id: int) -> bool:
        async with self._read(fresh=True) as conn:
            found = await conn.execute(select(im_user.c.user_id).where(im_user.c.user_id == user_id))
            return found.first() is not None

    async def list_accounts(self, query: str, after_user_id: int, limit: int) -> list[Account]:
        u = im_user
        conditions = [u.c.user_id > after_user_id]
        if query:
            pattern = _like_prefix(query)
            conditions.append(
                or_(u.c.username.like(pattern, escape="!"), u.c.nickname.like(pattern, escape="!"))
            )
        statement = select(u).where(*conditions).order_by(u.c.user_id).limit(limit)
        async with self._read(fresh=True) as conn:
            rows = (await conn.execute(statement)).all()
        return [_account(r) for r in rows]

    async def count(self) -> int:
        async with self._read() as conn:
            return int((await conn.execute(select(func.count()).select_from(im_user))).scalar_one())


class SqlRegistration(_SqlStore):
    """admin API: the registration mode in `im_setting`, invite codes in `im_invite` (hashes only)."""

    async def mode(self) -> str:
        query = select(im_setting.c.value).where(im_setting.c.name == REGISTRATION_MODE)
        async with self._read(fresh=True) as conn:
            row = (await conn.execute(query)).first()
        return str(row.value) if row else REGISTRATION_OPEN

    async def set_mode(self, mode: str) -> None:
        async with self._write() as conn:
            values = {"name": REGISTRATION_MODE, "value": mode}
            await conn.execute(upsert(conn, im_setting, ("name",), values))

    async def add_invite(self, code_hash: str, note: str, created_at: int, expires_at: int) -> Invite:
        async with self._write() as conn:
            result = await conn.execute(
                im_invite.insert().values(
                    code_hash=code_hash,
                    note=note,
                    created_at=created_at,
                    expires_at=expires_at,
                    claimed=0,
                    used_by=0,
                    revoked=0,
                )
            )
            invite_id = int(result.inserted_primary_key[0])  # type: ignore[index]
        return Invite(invite_id, note, created_at, expires_at, 0, False)

    async def invites(self) -> list[Invite]:
        async with self._read(fresh=True) as conn:
            rows = (await conn.execute(select(im_invite).order_by(im_invite.c.invite_id))).all()
        return [
            Invite(r.invite_id, r.note, r.created_at, r.expires_at, r.used_by, bool(r.revoked)) for r in rows
        ]

    async def usable_invite(self, code_hash: str, now: int) -> bool:
        i = im_invite
        query = select(i.c.invite_id).where(
            i.c.code_hash == code_hash,
            i.c.claimed == 0,
            i.c.revoked == 0,
            or_(i.c.expires_at == 0, i.c.expires_at > now),
        )
        async with self._read(fresh=True) as conn:
            return (await conn.execute(query)).first() is not None

    async def claim_invite(self, code_hash: str, now: int) -> int | None:
        i = im_invite
        async with self._write() as conn:
            row = (await conn.execute(select(i.c.invite_id).where(i.c.code_hash == code_hash))).first()
            if row is None:
                return None
            # one UPDATE decides: of two registrations with the same code, one gets rowcount 1
            taken = await conn.execute(
                update(i)
                .where(
                    i.c.invite_id == row.invite_id,
                    i.c.claimed == 0,
                    i.c.revoked == 0,
                    or_(i.c.expires_at == 0, i.c.expires_at > now),
                )
                .values(claimed=1)
            )
        return int(row.invite_id) if taken.rowcount == 1 else None

    async def finish_invite(self, invite_id: int, user_id: int) -> None:
        async with self._write() as conn:
            await conn.execute(
                update(im_invite).where(im_invite.c.invite_id == invite_id).values(used_by=user_id)
            )

    async def release_invite(self, invite_id: int) -> None:
        async with self._write() as conn:
            await conn.execute(
                update(im_invite)
                .where(im_invite.c.invite_id == invite_id, im_invite.c.used_by == 0)
                .values(claimed=0)
            )

    async def revoke_invite(self, invite_id: int) -> bool:
        async with self._write() as conn:
            await conn.execute(update(im_invite).where(im_invite.c.invite_id == invite_id).values(revoked=1))
            found = await conn.execute(
                select(im_invite.c.invite_id).where(im_invite.c.invite_id == invite_id)
            )
            return found.first() is not None


class SqlDeviceSessions(_SqlStore):
    async def activate(self, user_id: int, device_id: str, token_id: str) -> None:
        async with self._write() as conn:
            values = {
                "user_id": user_id,
                "device_id": device_id,
                "token_id": token_id,
                "updated_at": func.now(),
            }
            await conn.execute(upsert(conn, im_device_session, ("user_id", "device_id"), values))

    async def current(self, user_id: int, device_id: str) -> str | None:
        async with self._read(fresh=True) as conn:
            row = (
                await conn.execute(
                    select(im_device_session.c.token_id).where(
                        im_device_session.c.user_id == user_id, im_device_session.c.device_id == device_id
                    )
                )
            ).first()
        return row.token_id if row else None

    async def revoke(self, user_id: int, device_id: str, token_id: str) -> None:
        async with self._write() as conn:
            await conn.execute(
                delete(im_device_session).where(
                    im_device_session.c.user_id == user_id,
                    im_device_session.c.device_id == device_id,
                    im_device_session.c.token_id == token_id,
                )
            )

    async def revoke_user(self, user_id: int) -> None:
        async with self._write() as conn:
            await conn.execute(delete(im_device_session).where(im_device_session.c.user_id == user_id))


class SqlRefreshTokens(_SqlStore):
    async def add(
        self, token_hash: str, user_id: int, device_id: str, family_id: str, expires_at: int
    ) -> None:
        async with self._write() as conn:
            await conn.execute(
                im_refresh_token.insert().values(
                    token_hash=token_hash,
                    user_id=user_id,
                    device_id=device_id,
                    family_id=family_id,
                    expires_at=expires_at,
                    used=0,
                    revoked=0,
                )
            )

    async def consume(self, token_hash: str) -> RefreshRecord | None:
        t = im_refresh_token
        async with self._write() as conn:
            # Only one of two concurrent refreshes with the same token gets used=0 back.
            marked = await conn.execute(
                update(t).where(t.c.token_hash == token_hash, t.c.used == 0).values(used=1)
            )
            row = (await conn.execute(select(t).where(t.c.token_hash == token_hash))).first()
        if row is None:
            return None
        return RefreshRecord(
            row.user_id, row.device_id, row.family_id, row.expires_at, marked.rowcount == 0, bool(row.revoked)
        )

    async def revoke_family(self, family_id: str) -> None:
        async with self._write() as conn:
            t = im_refresh_token
            await conn.execute(update(t).where(t.c.family_id == family_id).values(revoked=1))

    async def revoke_device(self, user_id: int, device_id: str) -> None:
        async with self._write() as conn:
            t = im_refresh_token
            await conn.execute(
                update(t)
                .where(t.c.user_id == user_id, t.c.device_id == device_id, t.c.revoked == 0)
                .values(revoked=1)
            )

    async def revoke_user(self, user_id: int) -> None:
        async with self._write() as conn:
            t = im_refresh_token
            await conn.execute(update(t).where(t.c.user_id == user_id, t.c.revoked == 0).values(revoked=1))
