"""Seq allocator on Redis (`INCR im:seq:{uid}`, as the spec has it) instead of a locked row, for the SQL
timeline store, with what it takes to keep DESIGN §5.3:

- **Gapless prefix.** INCR hands out seqs outside the database's locks, so seq 6 may commit before seq 5,
  or 5 may never commit (its transaction failed: a permanent hole). Seqs are taken inside the
  transaction, after the body insert, so a retried client_msg_id never leaves a hole. A sync stops at a
  hole and reports has_more, unless the hole is older than `hole_timeout`: every transaction is cut off after
  `txn_timeout` (far shorter), so by then the seq's holder is known to be gone and the hole is skipped.
- **Rolled-back seqs are passed at once.** A transaction that took seqs and is known to have rolled back
  (it failed before its COMMIT was sent, or the database named it a deadlock victim) marks them gone
  (`abandon`), and a reader passes a hole made only of gone seqs without waiting. A seq may be marked only
  while nobody else can hold it, and a counter hands a seq out twice only after it went back: a re-seed
  (it leaves a marker that outlives any transaction, and drops the owner's marks), or a Redis restart or
  failover (an older snapshot or a lagging replica: a new run id). So nothing is marked after a
  collision, while the owner's re-seed marker is there, for seqs taken before this process saw the
  Redis it now talks to (run id and replication id: a restart or a promotion changes one) or within
  `hole_timeout` + `txn_timeout` (+ margin) after, once the transaction may have outlived the marker,
  or at all when Redis may evict keys (a marker could vanish) or is not a master. Otherwise the hole
  waits out `hole_timeout` as before.
- **Never backwards.** Counters are read only when they exist (one Lua script checks all of a message's
  owners, then INCRs them all). A missing counter (Redis restarted, FLUSHALL) is re-seeded from the
  largest committed seq with SET NX. A seq that an in-flight transaction took before the loss may be
  handed out again: the (owner_id, seq_id) unique key refuses the second one, whose append starts over
  with the counter raised past what the database holds.
"""

from __future__ import annotations

import asyncio
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
# markers' prefix, ARGV[4] the marks' lifetime (ms), ARGV[5] "owner:first-last,…", ARGV[6] the most marks
# a user keeps. An owner's seqs are marked only while its counter exists, has passed them and was not
# re-seeded lately.
_ABANDON = """
local marked = 0
for owner, first, last in string.gmatch(ARGV[5], '(%d+):(%d+)%-(%d+)') do
  local counter = tonumber(redis.call('GET', ARGV[1] .. owner) or '0')
  if counter >= tonumber(last) and redis.call('EXISTS', ARGV[3] .. owner) == 0 then
    local key, seqs = ARGV[2] .. owner, {}
    for seq = tonumber(first), tonumber(last) do seqs[#seqs + 1] = seq end
    redis.call('SADD', key, unpack(seqs))
    if redis.call('SCARD', key) > tonumber(ARGV[6]) then
      redis.call('DEL', key)  -- a user who keeps failing: marks only speed readers up, dropping is safe
    else
      redis.call('PEXPIRE', key, ARGV[4])
    end
    marked = marked + 1
  end
end
return marked
"""

# Gone marks live long (the hole's age is counted from the next message, which may come much later);
# only a re-seed, which may hand the seqs out again, drops them early.
GONE_MARK_SECONDS = 600
GONE_MARKS_KEPT = 4096  # per user
GONE_SEQS_CHECKED = 4096  # a reader asks about at most this many missing seqs per page (the rest wait)
GONE_CHECK_AFTER_MS = 50  # a younger hole is most likely a transaction still under way: not asked about
GONE_CHECK_SECONDS = 0.25  # Redis slow or away: the reader waits at the hole as before

# Raise a counter to at least ARGV[1] (never lower it). A missing one is left to `_allocate`'s re-seed,
# which leaves the re-seed marker.
_RAISE = """
local v = redis.call('GET', KEYS[1])
if v and tonumber(v) < tonumber(ARGV[1]) then redis.call('SET', KEYS[1], ARGV[1]) end
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
        # txn_timeout), and a re-seed's marker far outlives that: a seq handed out again is never marked.
        # (txn_timeout is the client's: a COMMIT already sent may still land later, as hole_timeout
        # allows for; the marker and the settling time below do too.)
        self._abandon_window = txn_timeout + 1.0
        outlives = hole_timeout + txn_timeout + 5.0
        self._reseed_marker_ms = int(outlives * 1000)
        # The Redis seqs come from (see `_identity`) and when this process first saw it: transactions
        # that took seqs from an earlier run, or from another server before a failover, may still hold
        # seqs this one hands out again; seqs taken before `settle` seconds after that are not marked.
        self._run: tuple[str | None, float] | None = None
        self._settle = outlives
        self._warned = -1e9  # when a failed INFO or gone-seq read was last logged

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
        if self._run is None:  # once: what `abandon` compares with
            self._run = (await self._identity(), time.monotonic())
        owners = list(counts)
        packed = ",".join(f"{o}:{counts[o]}" for o in owners)
        for _ in range(3):
            result = [int(v) for v in await self._incr_all(args=[self._keys.seq_prefix(), packed])]
            if not result or result[0] != -1:
                return dict(zip(owners, result, strict=True))
            missing = [owners[i - 1] for i in result[1:]]
            committed = await self._committed_max(missing)
            # one MULTI: no seq is taken from a re-seeded counter before its marker is there and its
            # owner's gone marks are dropped (those seqs may be handed out again)
            k = self._keys
            async with self._redis.pipeline(transaction=True) as pipe:
                for owner in missing:
                    pipe.set(k.seq(owner), committed.get(owner, 0), nx=True)
                    pipe.set(f"{k.seq_reseeded_prefix()}{owner}", 1, px=self._reseed_marker_ms)
                    pipe.delete(f"{k.seq_gone_prefix()}{owner}")
                await pipe.execute()
        raise SeqCollision("seq counters keep disappearing")

    async def _identity(self) -> str | None:
        """The Redis that hands out the seqs: its run id (a restart changes it) and replication id (a
        promotion changes it). None, and then nothing is marked gone, when INFO is refused, when it is
        not a master, or when it may evict keys (a re-seed marker could vanish with its counter)."""
        try:
            info = await self._redis.info("server", "replication", "memory")
        except RedisError:
            self._warn("cannot read Redis's INFO: rolled-back seqs wait out the hole timeout")
            return None
        if info.get("role") != "master" or not info.get("run_id"):
            return None
        if int(info.get("maxmemory") or 0) > 0 and info.get("maxmemory_policy") != "noeviction":
            return None
        return f"{info['run_id']}/{info.get('master_replid', '')}"

    def _warn(self, message: str, *args: object) -> None:
        """At most once a minute (a Redis outage would otherwise log on every sync)."""
        if time.monotonic() - self._warned > 60:
            self._warned = time.monotonic()
            log.warning(message, *args, exc_info=True)

    async def abandon(self, taken: Mapping[int, range], taken_at: float) -> None:
        if not taken or self._run is None or time.monotonic() - taken_at > self._abandon_window:
            return
        identity = await self._identity()
        if identity is None or identity != self._run[0]:
            self._run = (identity, time.monotonic())  # restarted, or failed over: counters may have gone back
            return
        if taken_at < self._run[1] + self._settle:
            return  # a transaction from before this run may hold the same seqs
        k = self._keys
        packed = ",".join(f"{o}:{r.start}-{r.stop - 1}" for o, r in taken.items() if len(r))
        prefixes = [k.seq_prefix(), k.seq_gone_prefix(), k.seq_reseeded_prefix()]
        await self._abandon(args=[*prefixes, GONE_MARK_SECONDS * 1000, packed, GONE_MARKS_KEPT])

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
        holes: list[tuple[int, range]] = []  # holes that may still fill: (where in the page, their seqs)
        asked: list[int] = []  # the missing seqs worth asking about (not the youngest holes')
        expected = after_seq + 1
        for i, m in enumerate(page):
            age = now_ms - m.created_ms
            if m.seq_id != expected and age < self._hole_timeout_ms:
                holes.append((i, range(expected, m.seq_id)))
                if age >= GONE_CHECK_AFTER_MS:
                    room = max(0, GONE_SEQS_CHECKED - len(asked))
                    asked.extend(range(expected, min(m.seq_id, expected + room)))
            expected = m.seq_id + 1
        if not holes:
            return page, more
        gone = await self._gone(owner_id, asked) if asked else set()
        for i, missing in holes:
            if not gone.issuperset(missing):
                return page[:i], True  # the hole may still fill: stop before it; the client asks again
        return page, more

    async def _gone(self, owner_id: int, seqs: list[int]) -> set[int]:
        """Which of the owner's seqs a rolled-back transaction left (one round trip); none when Redis
        does not answer soon (the reader then waits at the hole)."""
        key = f"{self._keys.seq_gone_prefix()}{owner_id}"
        try:
            async with asyncio.timeout(GONE_CHECK_SECONDS):
                flags = await self._redis.smismember(key, seqs)
        except (RedisError, TimeoutError):
            self._warn("could not read the gone seqs of user %s", owner_id)
            return set()
        return {seq for seq, flag in zip(seqs, flags, strict=True) if flag}

    async def max_seq(self, owner_id: int) -> int:
        return (await self._committed_max([owner_id])).get(owner_id, 0)
