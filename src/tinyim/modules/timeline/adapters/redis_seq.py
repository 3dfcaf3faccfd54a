"""Seq allocator on Redis (`INCR im:seq:{uid}`, as the spec has it) instead of a locked row, for the SQL
timeline store, with what it takes to keep DESIGN §5.3:

- **Gapless prefix.** INCR hands out seqs outside the database's locks, so seq 6 may commit before seq 5,
  or 5 may never commit (its transaction failed: a permanent hole). Seqs are taken inside the
  transaction, after the body insert, so a retried client_msg_id never leaves a hole. A sync stops at a
  hole and reports has_more, unless the hole is older than `hole_timeout`: every transaction is cut off after
  `txn_timeout` (far shorter), so by then the seq's holder is known to be gone and the hole is skipped.
- **Rolled-back seqs are passed at once.** A transaction that took seqs and is known to have rolled back
  (it failed before its COMMIT was sent, or the database refused it) marks them gone (`abandon`), and a
  reader passes a hole made only of gone seqs without waiting. A seq is marked only while nobody else can
  hold it: not after a collision, not when the owner's counter was re-seeded since the seq was taken (a
  re-seed may hand it out again; it leaves a marker for longer than a transaction lives), not when Redis
  restarted meanwhile (its run id changed: a snapshot may have brought an older counter back), and not
  once the transaction may have outlived that marker. Otherwise the hole waits out `hole_timeout` as before.
- **Never backwards.** Counters are read only when they exist (one Lua script checks all of a message's
  owners, then INCRs them all). A missing counter (Redis restarted, FLUSHALL) is re-seeded from the
  largest committed seq with SET NX. A seq that an in-flight transaction took before the loss may be
  handed out again: the (owner_id, seq_id) unique key refuses the second one, whose append starts over
  with the counter raised past what the database holds.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence

from redis.asyncio import Redis
from redis.exceptions import RedisError
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from tinyim.infra.db import Database
from tinyim.infra.redis import Keys
from tinyim.modules.timeline.adapters.sql import SeqCollision, im_message_index
from tinyim.modules.timeline.domain import StoredMessage
from tinyim.modules.timeline.ports import SeqStatement

log = logging.getLogger(__name__)

# INCRBY every owner's counter by its count, or none: {-1, i, j, …} names the missing ones (1-based, in the
# order given), changes nothing. ARGV[1] is the counters' key prefix, ARGV[2] "owner:count,owner:count,…":
# two arguments instead of a key and a count per owner (redis-py packed 1,000 arguments of a 500-member
# message in Python, ~0.3 ms). The keys are not declared in KEYS: TinyIM runs on one Redis, not a Cluster.
_INCR_ALL = """
local keys, counts = {}, {}
for owner, n in string.gmatch(ARGV[2], '(%d+):(%d+)') do
  keys[#keys + 1] = ARGV[1] .. owner
  counts[#counts + 1] = n
end
local missing = {}
for i, k in ipairs(keys) do
  if redis.call('EXISTS', k) == 0 then table.insert(missing, i) end
end
if #missing > 0 then
  table.insert(missing, 1, -1)
  return missing
end
local out = {}
for i, k in ipairs(keys) do out[i] = redis.call('INCRBY', k, counts[i]) end
return out
"""

# Mark seqs gone: ARGV[1] the counters' key prefix, ARGV[2] the gone sets' prefix, ARGV[3] the re-seed
# markers' prefix, ARGV[4] the marks' lifetime (ms), ARGV[5] "owner:first-last,…". An owner's seqs are
# marked only while its counter exists, has passed them and was not re-seeded lately.
_ABANDON = """
local marked = 0
for owner, first, last in string.gmatch(ARGV[5], '(%d+):(%d+)%-(%d+)') do
  local counter = tonumber(redis.call('GET', ARGV[1] .. owner) or '0')
  if counter >= tonumber(last) and redis.call('EXISTS', ARGV[3] .. owner) == 0 then
    local key = ARGV[2] .. owner
    for seq = tonumber(first), tonumber(last) do redis.call('SADD', key, seq) end
    redis.call('PEXPIRE', key, ARGV[4])
    marked = marked + 1
  end
end
return marked
"""

GONE_SEQS_CHECKED = 4096  # a reader asks about at most this many missing seqs per page (the rest wait)

# Raise a counter to at least ARGV[1] (never lower it).
_RAISE = """
local v = tonumber(redis.call('GET', KEYS[1]) or '0')
if v < tonumber(ARGV[1]) then redis.call('SET', KEYS[1], ARGV[1]) end
return 0
"""


class RedisSeqAllocator:
    # A batch takes each owner's block of seqs with one INCRBY (one script for all owners), after the
    # bodies are written; the batch transaction is cut off after txn_timeout like a single one.
    batches = True

    def __init__(
        self,
        db: Database,
        redis: Redis,
        keys: Keys,
        txn_timeout: float = 3.0,
        hole_timeout: float = 10.0,
    ) -> None:
        self._db = db
        self._redis = redis
        self._keys = keys
        self._incr_all = redis.register_script(_INCR_ALL)
        self._raise = redis.register_script(_RAISE)
        self._abandon = redis.register_script(_ABANDON)
        self.txn_timeout: float | None = txn_timeout
        self._hole_timeout_ms = int(hole_timeout * 1000)
        # A transaction's seqs are marked gone only this soon after they were taken (it is cut off after
        # txn_timeout), and a re-seed's marker outlives that: a seq handed out again is never marked.
        self._abandon_window = txn_timeout + 1.0
        self._reseed_marker_ms = int((txn_timeout + 2.0) * 1000)
        self._server_run_id: str | None = None  # Redis's run id, as last seen (a restart changes it)
        self._run_id_read = False

    async def take(self, tx: AsyncConnection, owners: Sequence[int]) -> dict[int, int]:
        # outside the database's locks: see the module's doc
        return await self._allocate({owner: 1 for owner in owners})

    async def take_many(self, tx: AsyncConnection, counts: Mapping[int, int]) -> dict[int, int]:
        tops = await self._allocate(counts)
        return {owner: top - counts[owner] for owner, top in tops.items()}

    async def take_many_statement(
        self, tx: AsyncConnection, counts: Mapping[int, int]
    ) -> SeqStatement | None:
        return None  # the seqs come from Redis

    async def collided(self, owners: Sequence[int]) -> bool:
        # (owner, seq) taken already: the counter was re-seeded below an in-flight seq.
        await self._raise_to_committed(list(owners))
        return True

    async def _allocate(self, counts: Mapping[int, int]) -> dict[int, int]:
        """Each owner's counter raised by counts[owner], in one round trip; the new tops."""
        if not self._run_id_read:  # once: what `abandon` compares with
            self._run_id_read = True
            self._server_run_id = await self._run_id()
        owners = list(counts)
        packed = ",".join(f"{o}:{counts[o]}" for o in owners)
        for _ in range(3):
            result = [int(v) for v in await self._incr_all(args=[self._keys.seq_prefix(), packed])]
            if not result or result[0] != -1:
                return dict(zip(owners, result, strict=True))
            missing = [owners[i - 1] for i in result[1:]]
            committed = await self._committed_max(missing)
            # one MULTI: no seq is taken from a re-seeded counter before its marker is there
            async with self._redis.pipeline(transaction=True) as pipe:
                for owner in missing:
                    pipe.set(self._keys.seq(owner), committed.get(owner, 0), nx=True)
                    pipe.set(f"{self._keys.seq_reseeded_prefix()}{owner}", 1, px=self._reseed_marker_ms)
                await pipe.execute()
        raise SeqCollision("seq counters keep disappearing")

    async def _run_id(self) -> str | None:
        """Redis's run id; None when it cannot be read (INFO refused): then nothing is marked gone."""
        try:
            run_id = (await self._redis.info("server")).get("run_id")
        except RedisError:
            log.warning("cannot read Redis's run id: rolled-back seqs wait out the hole timeout")
            return None
        return str(run_id) if run_id else None

    async def abandon(self, taken: Mapping[int, range], taken_at: float) -> None:
        if not taken or time.monotonic() - taken_at > self._abandon_window:
            return
        run_id = await self._run_id()
        if run_id is None or run_id != self._server_run_id:  # restarted: its counters may have gone back
            self._server_run_id = run_id
            return
        k = self._keys
        packed = ",".join(f"{o}:{r.start}-{r.stop - 1}" for o, r in taken.items() if len(r))
        prefixes = [k.seq_prefix(), k.seq_gone_prefix(), k.seq_reseeded_prefix()]
        await self._abandon(args=[*prefixes, self._hole_timeout_ms, packed])

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

    async def visible(
        self, owner_id: int, page: list[StoredMessage], after_seq: int, more: bool
    ) -> tuple[list[StoredMessage], bool]:
        now_ms = time.time_ns() // 1_000_000
        # m's seq was taken just after m's id, so a hole's seqs were taken before m.created_ms.
        young: list[int] = []  # the seqs of holes that may still fill
        expected = after_seq + 1
        for m in page:
            if m.seq_id != expected and now_ms - m.created_ms < self._hole_timeout_ms:
                young.extend(range(expected, min(m.seq_id, expected + GONE_SEQS_CHECKED)))
            expected = m.seq_id + 1
        gone = await self._gone(owner_id, young[:GONE_SEQS_CHECKED]) if young else set()
        expected = after_seq + 1
        seen: list[StoredMessage] = []
        for m in page:
            young_hole = m.seq_id != expected and now_ms - m.created_ms < self._hole_timeout_ms
            if young_hole and not gone.issuperset(range(expected, m.seq_id)):
                return seen, True  # the hole may still fill: stop before it; the client asks again
            seen.append(m)
            expected = m.seq_id + 1
        return seen, more

    async def _gone(self, owner_id: int, seqs: list[int]) -> set[int]:
        """Which of the owner's seqs a rolled-back transaction left (one round trip)."""
        key = f"{self._keys.seq_gone_prefix()}{owner_id}"
        flags = await self._redis.smismember(key, seqs)
        return {seq for seq, flag in zip(seqs, flags, strict=True) if flag}

    async def max_seq(self, owner_id: int) -> int:
        return (await self._committed_max([owner_id])).get(owner_id, 0)
