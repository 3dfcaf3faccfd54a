"""SQL relation store: im_relation, im_blacklist, im_friend_request, im_group, im_group_member,
im_group_member_history, im_group_join_request, and the notice outbox im_relation_outbox (SQLite, MySQL,
MariaDB)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence
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
    Text,
    UniqueConstraint,
    and_,
    delete,
    func,
    null,
    or_,
    select,
    union_all,
    update,
)
from sqlalchemy.ext.asyncio import AsyncConnection

from tinyim.infra.db import Database, insert_ignore, metadata, upsert
from tinyim.modules.relation.domain import (
    FriendRequest,
    Group,
    GroupRole,
    Member,
    PairState,
    RelationStatus,
    RequestStatus,
)
from tinyim.modules.relation.ports import GroupFull, GroupGone

_ID = BigInteger().with_variant(Integer, "sqlite")

im_relation = Table(
    "im_relation",
    metadata,
    Column("id", _ID, primary_key=True, autoincrement=True),
    Column("user_id", BigInteger, nullable=False),
    Column("friend_id", BigInteger, nullable=False),
    Column("status", SmallInteger, nullable=False),
    Column("remark", String(64)),
    Column("created_at", DateTime),
    Column("updated_at", DateTime),
    UniqueConstraint("user_id", "friend_id", name="uk_user_friend"),
    Index("idx_friend_id", "friend_id"),
)
im_blacklist = Table(
    "im_blacklist",
    metadata,
    Column("user_id", BigInteger, primary_key=True),
    Column("blocked_id", BigInteger, primary_key=True),
    Column("created_at", DateTime),
)
im_friend_request = Table(
    "im_friend_request",
    metadata,
    Column("id", _ID, primary_key=True, autoincrement=True),
    Column("from_user_id", BigInteger, nullable=False),
    Column("to_user_id", BigInteger, nullable=False),
    Column("reason", String(255), nullable=False),
    Column("status", SmallInteger, nullable=False),
    Column("created_at", DateTime),
    Column("updated_at", DateTime),
    UniqueConstraint("from_user_id", "to_user_id", name="uk_from_to"),
    Index("idx_to_status", "to_user_id", "status"),
)
im_group = Table(
    "im_group",
    metadata,
    Column("group_id", _ID, primary_key=True, autoincrement=True),
    Column("group_name", String(64), nullable=False),
    Column("owner_id", BigInteger, nullable=False),
    Column("announcement", String(255)),
    Column("status", SmallInteger),
    Column("created_at", DateTime),
    Column("updated_at", DateTime),
)
im_group_member = Table(
    "im_group_member",
    metadata,
    Column("id", _ID, primary_key=True, autoincrement=True),
    Column("group_id", BigInteger, nullable=False),
    Column("user_id", BigInteger, nullable=False),
    Column("role", SmallInteger),
    Column("created_at", DateTime),  # when the membership began (server default)
    UniqueConstraint("group_id", "user_id", name="uk_group_user"),
    Index("idx_user", "user_id"),
)
# ended memberships: copied from im_group_member when a member leaves, is removed or the group dissolves
im_group_member_history = Table(
    "im_group_member_history",
    metadata,
    Column("id", _ID, primary_key=True, autoincrement=True),
    Column("group_id", BigInteger, nullable=False),
    Column("user_id", BigInteger, nullable=False),
    Column("joined_at", DateTime),
    Column("left_at", DateTime),
    Index("idx_user_group", "user_id", "group_id"),
)
im_group_join_request = Table(
    "im_group_join_request",
    metadata,
    Column("id", _ID, primary_key=True, autoincrement=True),
    Column("group_id", BigInteger, nullable=False),
    Column("user_id", BigInteger, nullable=False),
    Column("status", SmallInteger, nullable=False),
    Column("created_at", DateTime),
    Column("updated_at", DateTime),
    UniqueConstraint("group_id", "user_id", name="uk_group_applicant"),
)
# notices of committed social changes not yet delivered to the timeline (see sql_unit_of_work.py)
im_relation_outbox = Table(
    "im_relation_outbox",
    metadata,
    Column("id", _ID, primary_key=True, autoincrement=True),
    Column("dedup_key", String(64), nullable=False),
    Column("sender_id", BigInteger, nullable=False),
    Column("group_id", BigInteger, nullable=False),  # 0: a 1:1 notice
    Column("receiver_ids", Text, nullable=False),  # JSON list: the receiver, or the group's members
    Column("friend_request", SmallInteger, nullable=False),
    Column("content", Text, nullable=False),
    Column("created_at", DateTime),
    UniqueConstraint("dedup_key", name="uk_dedup_key"),
)

_member_count = (
    select(func.count())
    .select_from(im_group_member)
    .where(im_group_member.c.group_id == im_group.c.group_id)
    .correlate(im_group)  # only the group: groups_of() joins im_group_member in the outer query too
    .scalar_subquery()
    .label("n")
)


def _group(row: object) -> Group:
    r = row
    return Group(r.group_id, r.group_name, r.owner_id, r.announcement or "", int(r.n))  # type: ignore[attr-defined]


def _end_memberships(which: Any) -> Any:
    """INSERT … SELECT: the memberships matched by `which` into the history, ended now."""
    m, h = im_group_member, im_group_member_history
    rows = select(m.c.group_id, m.c.user_id, m.c.created_at, func.now()).where(which)
    return h.insert().from_select([h.c.group_id, h.c.user_id, h.c.joined_at, h.c.left_at], rows)


def _stints(user_ids: Sequence[int]) -> Any:
    """Every membership of these users, current (left_at NULL) and ended: group, user, joined, left."""
    m, h = im_group_member, im_group_member_history
    return union_all(
        select(m.c.group_id, m.c.user_id, m.c.created_at.label("joined_at"), null().label("left_at")).where(
            m.c.user_id.in_(user_ids)
        ),
        select(h.c.group_id, h.c.user_id, h.c.joined_at, h.c.left_at).where(h.c.user_id.in_(user_ids)),
    )


class SqlRelationStore:
    """On its own every write is a transaction of its own; bound to a connection (`conn`: a unit of
    work's) every read and write runs in that connection's transaction and nothing commits here."""

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

    # ---------- friendship ----------
    async def pair_state(self, a: int, b: int) -> PairState:
        r, bl = im_relation, im_blacklist
        pair = or_(and_(r.c.user_id == a, r.c.friend_id == b), and_(r.c.user_id == b, r.c.friend_id == a))
        blocks = or_(
            and_(bl.c.user_id == a, bl.c.blocked_id == b), and_(bl.c.user_id == b, bl.c.blocked_id == a)
        )
        async with self._read(fresh=True) as conn:
            statuses = {
                row.user_id: RelationStatus(row.status)
                for row in await conn.execute(select(r.c.user_id, r.c.status).where(pair))
            }
            blockers = {row.user_id for row in await conn.execute(select(bl.c.user_id).where(blocks))}
        return PairState(statuses.get(a), statuses.get(b), a in blockers, b in blockers)

    async def make_friends(self, a: int, b: int) -> None:
        async with self._write() as conn:
            for owner, other in sorted([(a, b), (b, a)]):
                values = {
                    "user_id": owner,
                    "friend_id": other,
                    "status": RelationStatus.NORMAL,
                    "remark": "",
                    "updated_at": func.now(),
                }
                await conn.execute(upsert(conn, im_relation, ("user_id", "friend_id"), values))

    async def set_status(self, owner_id: int, other_id: int, status: int) -> None:
        async with self._write() as conn:
            values = {
                "user_id": owner_id,
                "friend_id": other_id,
                "status": status,
                "remark": "",
                "updated_at": func.now(),
            }
            await conn.execute(upsert(conn, im_relation, ("user_id", "friend_id"), values))

    async def friend_ids(self, owner_id: int) -> list[int]:
        query = (
            select(im_relation.c.friend_id)
            .where(im_relation.c.user_id == owner_id, im_relation.c.status == RelationStatus.NORMAL)
            .order_by(im_relation.c.friend_id)
        )
        async with self._read() as conn:
            return list((await conn.scalars(query)).all())

    async def listed_by(self, user_id: int, among: Sequence[int]) -> set[int]:
        if not among:
            return set()
        r = im_relation
        query = select(r.c.user_id).where(
            r.c.friend_id == user_id, r.c.status == RelationStatus.NORMAL, r.c.user_id.in_(sorted(set(among)))
        )
        async with self._read() as conn:
            return set((await conn.scalars(query)).all())

    async def blockers_of(self, user_id: int, among: Sequence[int]) -> set[int]:
        if not among:
            return set()
        query = select(im_blacklist.c.user_id).where(
            im_blacklist.c.blocked_id == user_id, im_blacklist.c.user_id.in_(sorted(set(among)))
        )
        async with self._read(fresh=True) as conn:
            return set((await conn.scalars(query)).all())

    async def block(self, owner_id: int, blocked_id: int) -> None:
        async with self._write() as conn:
            await conn.execute(
                insert_ignore(conn, im_blacklist).values(user_id=owner_id, blocked_id=blocked_id)
            )

    async def unblock(self, owner_id: int, blocked_id: int) -> None:
        async with self._write() as conn:
            await conn.execute(
                delete(im_blacklist).where(
                    im_blacklist.c.user_id == owner_id, im_blacklist.c.blocked_id == blocked_id
                )
            )

    async def blocked_ids(self, owner_id: int) -> list[int]:
        query = (
            select(im_blacklist.c.blocked_id)
            .where(im_blacklist.c.user_id == owner_id)
            .order_by(im_blacklist.c.blocked_id)
        )
        async with self._read() as conn:
            return list((await conn.scalars(query)).all())

    # ---------- friend requests ----------
    async def friend_request(self, from_id: int, to_id: int) -> FriendRequest | None:
        fr = im_friend_request
        query = select(fr.c.reason, fr.c.status).where(fr.c.from_user_id == from_id, fr.c.to_user_id == to_id)
        async with self._read(fresh=True) as conn:
            row = (await conn.execute(query)).first()
        return FriendRequest(from_id, to_id, row.reason, RequestStatus(row.status)) if row else None

    async def put_friend_request(self, from_id: int, to_id: int, reason: str) -> None:
        async with self._write() as conn:
            values = {
                "from_user_id": from_id,
                "to_user_id": to_id,
                "reason": reason,
                "status": RequestStatus.PENDING,
                "updated_at": func.now(),
            }
            await conn.execute(upsert(conn, im_friend_request, ("from_user_id", "to_user_id"), values))

    async def settle_friend_request(self, from_id: int, to_id: int, status: RequestStatus) -> bool:
        fr = im_friend_request
        return await self._settle(fr, (fr.c.from_user_id == from_id, fr.c.to_user_id == to_id), status)

    async def _settle(self, table: Table, key: tuple[Any, ...], status: RequestStatus) -> bool:
        """PENDING -> status in one conditional UPDATE: of racing settlers exactly one wins."""
        async with self._write() as conn:
            result = await conn.execute(
                update(table)
                .where(*key, table.c.status == RequestStatus.PENDING)
                .values(status=status, updated_at=func.now())
            )
        return result.rowcount == 1

    # ---------- groups ----------
    async def create_group(self, name: str, owner_id: int, member_ids: Sequence[int]) -> int:
        async with self._write() as conn:
            result = await conn.execute(
                im_group.insert().values(group_name=name, owner_id=owner_id, announcement="", status=1)
            )
            group_id = int(result.inserted_primary_key[0])  # type: ignore[index]
            rows = [{"group_id": group_id, "user_id": owner_id, "role": GroupRole.OWNER}]
            rows += [{"group_id": group_id, "user_id": m, "role": GroupRole.MEMBER} for m in member_ids]
            await conn.execute(im_group_member.insert(), rows)
        return group_id

    async def group(self, group_id: int) -> Group | None:
        g = im_group
        query = select(g.c.group_id, g.c.group_name, g.c.owner_id, g.c.announcement, _member_count).where(
            g.c.group_id == group_id, g.c.status == 1
        )
        async with self._read(fresh=True) as conn:
            row = (await conn.execute(query)).first()
        return _group(row) if row else None

    async def members(self, group_id: int) -> list[Member]:
        m = im_group_member
        query = select(m.c.user_id, m.c.role).where(m.c.group_id == group_id).order_by(m.c.user_id)
        async with self._read(fresh=True) as conn:
            return [Member(row.user_id, GroupRole(row.role)) for row in await conn.execute(query)]

    async def member_ids(self, group_id: int) -> list[int]:
        m = im_group_member
        query = select(m.c.user_id).where(m.c.group_id == group_id).order_by(m.c.user_id)
        # Fresh: a member who just left must not get the next post, a newcomer must.
        async with self._read(fresh=True) as conn:
            return list((await conn.scalars(query)).all())

    async def role(self, group_id: int, user_id: int) -> int | None:
        m = im_group_member
        query = select(m.c.role).where(m.c.group_id == group_id, m.c.user_id == user_id)
        async with self._read(fresh=True) as conn:
            value = await conn.scalar(query)
        return int(value) if value is not None else None

    async def add_member(self, group_id: int, user_id: int, limit: int) -> None:
        g, m = im_group, im_group_member
        async with self._write() as conn:
            # Lock the group row so concurrent joins cannot overshoot the limit together, nor join a group
            # a concurrent dissolve ends (its UPDATE waits for this lock, or this read sees it dissolved).
            status = await conn.scalar(select(g.c.status).where(g.c.group_id == group_id).with_for_update())
            if status != 1:
                raise GroupGone(group_id)
            count = await conn.scalar(select(func.count()).where(m.c.group_id == group_id))
            exists = await conn.scalar(select(m.c.id).where(m.c.group_id == group_id, m.c.user_id == user_id))
            if exists is not None:
                return
            if int(count or 0) >= limit:
                raise GroupFull(group_id)
            await conn.execute(m.insert().values(group_id=group_id, user_id=user_id, role=GroupRole.MEMBER))

    async def remove_member(self, group_id: int, user_id: int) -> bool:
        m = im_group_member
        which = and_(m.c.group_id == group_id, m.c.user_id == user_id)
        async with self._write() as conn:
            await conn.execute(_end_memberships(which))
            result = await conn.execute(delete(m).where(which))
        return result.rowcount == 1

    async def past_co_members(self, user_id: int, others: Sequence[int]) -> set[int]:
        if not others:
            return set()
        mine, theirs = _stints([user_id]).subquery("mine"), _stints(others).subquery("theirs")
        query = (
            select(theirs.c.user_id)
            .distinct()
            .select_from(mine.join(theirs, mine.c.group_id == theirs.c.group_id))
            .where(
                or_(theirs.c.left_at.is_(None), mine.c.joined_at <= theirs.c.left_at),
                or_(mine.c.left_at.is_(None), theirs.c.joined_at <= mine.c.left_at),
            )
        )
        async with self._read() as conn:
            return {int(u) for u in (await conn.scalars(query))}

    async def groups_of(self, user_id: int) -> list[Group]:
        g, m = im_group, im_group_member
        query = (
            select(g.c.group_id, g.c.group_name, g.c.owner_id, g.c.announcement, _member_count)
            .join(m, m.c.group_id == g.c.group_id)
            .where(m.c.user_id == user_id, g.c.status == 1)
            .order_by(g.c.group_id)
        )
        async with self._read() as conn:
            return [_group(row) for row in await conn.execute(query)]

    async def join_request(self, group_id: int, user_id: int) -> RequestStatus | None:
        j = im_group_join_request
        query = select(j.c.status).where(j.c.group_id == group_id, j.c.user_id == user_id)
        async with self._read(fresh=True) as conn:
            value = await conn.scalar(query)
        return RequestStatus(value) if value is not None else None

    async def put_join_request(self, group_id: int, user_id: int) -> None:
        async with self._write() as conn:
            values = {
                "group_id": group_id,
                "user_id": user_id,
                "status": RequestStatus.PENDING,
                "updated_at": func.now(),
            }
            await conn.execute(upsert(conn, im_group_join_request, ("group_id", "user_id"), values))

    async def settle_join_request(self, group_id: int, user_id: int, status: RequestStatus) -> bool:
        j = im_group_join_request
        return await self._settle(j, (j.c.group_id == group_id, j.c.user_id == user_id), status)

    # ---------- group owner actions ----------
    async def transfer_owner(self, group_id: int, old_owner_id: int, new_owner_id: int) -> bool:
        g, m = im_group, im_group_member
        async with self._write() as conn:
            # the group row is locked: a concurrent transfer (or dissolve) waits, then sees the new owner
            owner = await conn.scalar(
                select(g.c.owner_id).where(g.c.group_id == group_id, g.c.status == 1).with_for_update()
            )
            member = await conn.scalar(
                select(m.c.id).where(m.c.group_id == group_id, m.c.user_id == new_owner_id)
            )
            if owner != old_owner_id or member is None:
                return False
            await conn.execute(
                update(g).where(g.c.group_id == group_id).values(owner_id=new_owner_id, updated_at=func.now())
            )
            await conn.execute(
                update(m)
                .where(m.c.group_id == group_id, m.c.user_id == old_owner_id)
                .values(role=GroupRole.MEMBER)
            )
            await conn.execute(
                update(m)
                .where(m.c.group_id == group_id, m.c.user_id == new_owner_id)
                .values(role=GroupRole.OWNER)
            )
        return True

    async def set_role(self, group_id: int, user_id: int, role: int) -> None:
        m = im_group_member
        async with self._write() as conn:
            await conn.execute(
                update(m)
                .where(m.c.group_id == group_id, m.c.user_id == user_id, m.c.role != GroupRole.OWNER)
                .values(role=role)
            )

    async def update_group(self, group_id: int, name: str | None, announcement: str | None) -> None:
        values: dict[str, Any] = {"updated_at": func.now()}
        if name is not None:
            values["group_name"] = name
        if announcement is not None:
            values["announcement"] = announcement
        async with self._write() as conn:
            await conn.execute(update(im_group).where(im_group.c.group_id == group_id).values(**values))

    async def dissolve_group(self, group_id: int) -> list[int] | None:
        g, m = im_group, im_group_member
        async with self._write() as conn:
            result = await conn.execute(
                update(g)
                .where(g.c.group_id == group_id, g.c.status == 1)
                .values(status=0, updated_at=func.now())
            )
            if result.rowcount != 1:
                return None
            # A locking read sees the latest members, not the transaction's snapshot: a join that committed
            # after this transaction's first read (it held the group row's lock) is among them.
            members = await conn.execute(
                select(m.c.user_id).where(m.c.group_id == group_id).order_by(m.c.user_id).with_for_update()
            )
            removed = [int(u) for (u,) in members]
            await conn.execute(_end_memberships(m.c.group_id == group_id))
            await conn.execute(delete(m).where(m.c.group_id == group_id))
        return removed

    async def count_groups(self) -> int:
        query = select(func.count()).select_from(im_group).where(im_group.c.status == 1)
        async with self._read() as conn:
            return int((await conn.execute(query)).scalar_one())
