"""Timeline store whose seqs come from Redis (`INCR im:seq:{uid}`, as the spec has it) instead of a
locked row, with what it takes to keep DESIGN §5.3:

- **Gapless prefix.** INCR hands out seqs outside the database's locks, so seq 6 may commit before seq 5,
  or 5 may never commit (its transaction failed: a permanent hole). Seqs are taken inside the
  transaction, after the body insert, so a retried client_msg_id never leaves a hole. A sync stops at a
  hole and reports has_more, unless the hole is older than `hole_timeout`: every transaction is cut off after
  `txn_timeout` (far shorter), so by then the seq's holder is known to be gone and the hole is skipped.
- **Never backwards.** Counters are read only when they exist (one Lua script checks all of a message's
  owners, then INCRs them all). A missing counter (Redis restarted, FLUSHALL) is re-seeded from the
  largest committed seq with SET NX. A seq that an in-flight transaction took before the loss may be
  handed out again: the (owner_id, seq_id) unique key refuses the second one, whose append starts over
  with the counter raised past what the database holds.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

from redis.asyncio import Redis
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from tinyim.infra.db import Database, is_unique_violation
from tinyim.infra.redis import Keys
from tinyim.modules.timeline.adapters.sql import SqlTimelineStore, im_message_index
from tinyim.modules.timeline.domain import Appended, MessageBody, StoredMessage, TimelineSlot

# INCR every key, or none: {-1, i, j, …} names the missing ones (1-based) and changes nothing.
_INCR_ALL = """
local missing = {}
for i, k in ipairs(KEYS) do
  if redis.call('EXISTS', k) == 0 then table.insert(missing, i) end
end
if #missing > 0 then
  table.insert(missing, 1, -1)
  return missing
end
local out = {}
for i, k in ipairs(KEYS) do out[i] = redis.call('INCR', k) end
return out
"""

# Raise a counter to at least ARGV[1] (never lower it).
_RAISE = """
local v = tonumber(redis.call('GET', KEYS[1]) or '0')
if v < tonumber(ARGV[1]) then redis.call('SET', KEYS[1], ARGV[1]) end
return 0
"""


class SeqCollision(Exception):
    pass


class RedisSeqTimelineStore(SqlTimelineStore):
    def __init__(
        self,
        db: Database,
        redis: Redis,
        keys: Keys,
        txn_timeout: float = 3.0,
        hole_timeout: float = 10.0,
        conversations: bool = True,
    ) -> None:
        # Seqs from Redis commit in any order: no group commit here (a batch would hold many INCRs).
        super().__init__(db, conversations, group_commit=False)
        self._redis = redis
        self._keys = keys
        self._incr_all = redis.register_script(_INCR_ALL)
        self._raise = redis.register_script(_RAISE)
        self._txn_timeout = txn_timeout
        self._hole_timeout_ms = int(hole_timeout * 1000)

    async def _run(
        self, body: MessageBody, slots: Sequence[TimelineSlot], recall: tuple[int, int] | None
    ) -> Appended:
        owners: list[int] = []
        for _ in range(5):
            try:
                async with asyncio.timeout(self._txn_timeout):
                    async with self._db.write() as conn:
                        # The body goes first (see _write_message): a retried client_msg_id fails there,
                        # before any seq is taken (a seq taken and never written is a hole readers must
                        # wait out).
                        seqs = await self._write_message(conn, body, slots, recall, owners)
                return Appended(body.msg_id, seqs)
            except IntegrityError as exc:
                if not is_unique_violation(exc):
                    raise
                if body.client_msg_id:
                    first = await self._find_sent(body.sender_id, body.client_msg_id)
                    if first is not None:
                        return first
                # (owner, seq) taken already: the counter was re-seeded below an in-flight seq.
                await self._raise_to_committed(owners)
        raise SeqCollision(f"could not take fresh seqs for {owners}")

    async def _take_seqs(self, conn: AsyncConnection, owners: list[int]) -> dict[int, int]:
        return await self._allocate(owners)

    async def _allocate(self, owners: list[int]) -> dict[int, int]:
        keys = [self._keys.seq(o) for o in owners]
        for _ in range(3):
            result = [int(v) for v in await self._incr_all(keys=keys)]
            if not result or result[0] != -1:
                return dict(zip(owners, result, strict=True))
            missing = [owners[i - 1] for i in result[1:]]
            committed = await self._committed_max(missing)
            async with self._redis.pipeline(transaction=False) as pipe:
                for owner in missing:
                    pipe.set(self._keys.seq(owner), committed.get(owner, 0), nx=True)
                await pipe.execute()
        raise SeqCollision("seq counters keep disappearing")

    async def _raise_to_committed(self, owners: list[int]) -> None:
        committed = await self._committed_max(owners)
        for owner in owners:
            await self._raise(keys=[self._keys.seq(owner)], args=[committed.get(owner, 0)])

    async def _committed_max(self, owners: list[int]) -> dict[int, int]:
        i = im_message_index
        query = (
            select(i.c.owner_id, func.max(i.c.seq_id)).where(i.c.owner_id.in_(owners)).group_by(i.c.owner_id)
        )
        async with self._db.read(fresh=True) as conn:
            return {int(owner): int(top) for owner, top in await conn.execute(query)}

    async def read(
        self, owner_id: int, after_seq: int, limit: int, min_seq: int = 0
    ) -> tuple[list[StoredMessage], bool]:
        rows, more = await super().read(owner_id, after_seq, limit, min_seq)
        now_ms = time.time_ns() // 1_000_000
        expected = after_seq + 1
        page: list[StoredMessage] = []
        for m in rows:
            # m's seq was taken just after m's id, so the hole's seq was taken before m.created_ms.
            if m.seq_id != expected and now_ms - m.created_ms < self._hole_timeout_ms:
                return page, True  # the hole may still fill: stop before it; the client asks again
            page.append(m)
            expected = m.seq_id + 1
        return page, more

    async def max_seq(self, owner_id: int) -> int:
        return (await self._committed_max([owner_id])).get(owner_id, 0)
