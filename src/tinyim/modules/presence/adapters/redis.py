"""Redis presence: the session routing table `im:session:{uid}`.

One hash per user, one field per device type: "gateway_id|conn_id|deadline_ms". The key's TTL is twice
the heartbeat timeout and heartbeats refresh it; the per-field deadline retires a device whose gateway
died even while another device of the same user keeps the key alive (Redis 7.0 has no per-field TTL).
A bind or unbind is announced on `im:session-routes:changes` (the user id) for the route caches of the
processes that push (`RouteChangeFeed`, `route_cache`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping
from typing import Any, cast

from redis.asyncio import Redis
from redis.exceptions import WatchError

from tinyim.infra.redis import ChannelFeed, Keys
from tinyim.modules.presence.domain import DevicePresence, PresenceRecord, Status, StatusView, view
from tinyim.modules.presence.ports import Change, DeviceSession
from tinyim.modules.presence.route_cache import CachedRoutes

log = logging.getLogger(__name__)

# Delete the device's field only if it still names this connection (a newer login may have replaced it);
# then announce the user's routes changed (ARGV[3] the channel, ARGV[4] the user id).
_UNBIND = """
local v = redis.call('HGET', KEYS[1], ARGV[1])
if v and string.sub(v, 1, string.len(ARGV[2])) == ARGV[2] then
  redis.call('HDEL', KEYS[1], ARGV[1])
  redis.call('PUBLISH', ARGV[3], ARGV[4])
  return 1
end
return 0
"""

# Every user's hash in one command (a pipeline of HGETALLs costs the client far more per user). ARGV[1] is
# the hashes' key prefix, ARGV[2] "uid,uid,…" (two arguments, not a key per user: redis-py packs each
# argument in Python; TinyIM runs on one Redis, not a Cluster). Only users with a session come back:
# {i, fields, j, fields, …}, i the 1-based position in ARGV[2], fields the flat field/value list.
_LOOKUP = """
local out = {}
local i = 0
for uid in string.gmatch(ARGV[2], '%d+') do
  i = i + 1
  local fields = redis.call('HGETALL', ARGV[1] .. uid)
  if #fields > 0 then
    out[#out + 1] = i
    out[#out + 1] = fields
  end
end
return out
"""


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


class RedisSessionDirectory:
    def __init__(self, redis: Redis, keys: Keys, ttl_seconds: float) -> None:
        self._redis = redis
        self._keys = keys
        self._ttl_ms = int(ttl_seconds * 1000)
        self._unbind = redis.register_script(_UNBIND)
        self._lookup = redis.register_script(_LOOKUP)

    def _value(self, s: DeviceSession) -> str:
        return f"{s.gateway_id}|{s.conn_id}|{_now_ms() + self._ttl_ms}"

    async def bind(self, session: DeviceSession) -> None:
        await self._store(session, announce=True)

    async def unbind(self, session: DeviceSession) -> None:
        owner = f"{session.gateway_id}|{session.conn_id}|"
        await self._unbind(
            keys=[self._keys.session(session.user_id)],
            args=[session.device_id, owner, self._keys.route_changes(), str(session.user_id)],
        )

    async def refresh(self, session: DeviceSession) -> None:
        # A heartbeat re-creates the entry too: after Redis lost its data, sessions come back this way.
        # Not announced (the route is the one bound): route caches re-read it within their TTL.
        await self._store(session, announce=False)

    async def _store(self, session: DeviceSession, announce: bool) -> None:
        key = self._keys.session(session.user_id)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hset(key, session.device_id, self._value(session))
            pipe.pexpire(key, self._ttl_ms)
            if announce:  # in the same round trip: route caches forget the user (route_cache)
                pipe.publish(self._keys.route_changes(), str(session.user_id))
            await pipe.execute()

    async def lookup(self, user_ids: Iterable[int]) -> Mapping[int, list[DeviceSession]]:
        ids = list(dict.fromkeys(user_ids))
        if not ids:
            return {}
        reply = cast(
            list[Any], await self._lookup(args=[self._keys.session_prefix(), ",".join(map(str, ids))])
        )
        now = _now_ms()
        found: dict[int, list[DeviceSession]] = {}
        for position, flat in zip(reply[::2], reply[1::2], strict=True):
            uid = ids[int(position) - 1]
            for device, value in zip(flat[::2], flat[1::2], strict=True):
                gateway_id, conn_id, deadline = value.rsplit("|", 2)
                if int(deadline) > now:
                    found.setdefault(uid, []).append(DeviceSession(uid, device, gateway_id, conn_id))
        return found


class RouteChangeFeed:
    """Tells route caches (`route_cache.CachedRoutes`) of the users whose sessions were bound or unbound
    in any process: the channel carries one user id per message."""

    def __init__(self, redis: Redis, keys: Keys) -> None:
        self._caches: list[CachedRoutes] = []
        self.feed = ChannelFeed(redis, keys.route_changes(), "session route feed", self._apply, self._clear)

    def subscribe(self, cache: CachedRoutes) -> None:
        self._caches.append(cache)

    def live(self) -> bool:
        return self.feed.live()

    async def run(self) -> None:
        """Listen until cancelled; while the subscription is down, caches are emptied and bypassed."""
        await self.feed.run()

    def _apply(self, message: str) -> None:
        try:
            user_id = int(message)
        except ValueError:
            log.warning("unknown session route change", extra={"change": message})
            self._clear()  # not understood: forget everything rather than route by what may have changed
            return
        for cache in self._caches:
            cache.user_changed(user_id)

    def _clear(self) -> None:
        for cache in self._caches:
            cache.clear()


# Online status. `im:presence:{uid}` hash: "d:{device}" -> "conn_id|seen_ms|deadline_ms|idle",
# "away" -> "1" (set by the user), "seen" -> last seen ms, "shown" -> what watchers were last told.
# `im:presence:due` zset: user id scored by the earliest device deadline of the record (reap reads it).
RECORD_TTL_MS = 30 * 24 * 3600 * 1000  # "last seen" is kept for 30 days after the last change
_DEVICE = "d:"


def _decode(fields: Mapping[str, str]) -> PresenceRecord:
    record = PresenceRecord(
        manual_away=fields.get("away") == "1",
        last_seen_ms=int(fields.get("seen", 0)),
        shown=Status(int(fields.get("shown", Status.OFFLINE))),
    )
    for name, value in fields.items():
        if name.startswith(_DEVICE):
            conn_id, seen, deadline, idle = value.rsplit("|", 3)
            record.devices[name[len(_DEVICE) :]] = DevicePresence(
                conn_id, int(seen), int(deadline), idle == "1"
            )
    return record


def _encode(record: PresenceRecord) -> dict[str, str]:
    fields = {"seen": str(record.last_seen_ms), "shown": str(int(record.shown))}
    if record.manual_away:
        fields["away"] = "1"
    for device_id, d in record.devices.items():
        fields[_DEVICE + device_id] = f"{d.conn_id}|{d.seen_ms}|{d.deadline_ms}|{1 if d.idle else 0}"
    return fields


class RedisPresenceStore:
    def __init__(self, redis: Redis, keys: Keys) -> None:
        self._redis = redis
        self._keys = keys

    async def update(self, user_id: int, change: Change, now_ms: int) -> tuple[StatusView, bool]:
        key, due = self._keys.presence(user_id), self._keys.presence_due()
        async with self._redis.pipeline(transaction=True) as pipe:
            while True:
                try:
                    # optimistic: a concurrent update of this user makes EXEC fail, and we go again
                    await pipe.watch(key)
                    record = _decode(cast(dict[str, str], await pipe.hgetall(key)))
                    record.prune(now_ms)
                    change(record, now_ms)
                    status = record.status(now_ms)
                    changed, record.shown = status != record.shown, status
                    pipe.multi()  # type: ignore[no-untyped-call]
                    pipe.delete(key)
                    pipe.hset(key, mapping=cast(Any, _encode(record)))
                    pipe.pexpire(key, RECORD_TTL_MS)
                    deadline = record.next_deadline()
                    if deadline is None:
                        pipe.zrem(due, str(user_id))
                    else:
                        pipe.zadd(due, {str(user_id): deadline})
                    await pipe.execute()
                    return view(user_id, record, now_ms), changed
                except WatchError:
                    continue

    async def records(self, user_ids: Iterable[int]) -> Mapping[int, PresenceRecord]:
        ids = list(dict.fromkeys(user_ids))
        if not ids:
            return {}
        async with self._redis.pipeline(transaction=False) as pipe:
            for uid in ids:
                pipe.hgetall(self._keys.presence(uid))
            rows = await pipe.execute()
        return {uid: _decode(fields) for uid, fields in zip(ids, rows, strict=True) if fields}

    async def due(self, now_ms: int, limit: int) -> list[int]:
        found = await self._redis.zrangebyscore(self._keys.presence_due(), "-inf", now_ms, start=0, num=limit)
        return [int(u) for u in cast(list[str], found)]
