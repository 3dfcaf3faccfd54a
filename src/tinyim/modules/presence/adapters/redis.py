"""Redis presence: the session routing table `im:session:{uid}`.

One hash per user, one field per device type: "gateway_id|conn_id|deadline_ms". The key's TTL is twice
the heartbeat timeout and heartbeats refresh it; the per-field deadline retires a device whose gateway
died even while another device of the same user keeps the key alive (Redis 7.0 has no per-field TTL).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping

from redis.asyncio import Redis

from tinyim.infra.redis import Keys
from tinyim.modules.presence.ports import DeviceSession

log = logging.getLogger(__name__)

# Delete the device's field only if it still names this connection (a newer login may have replaced it).
_UNBIND = """
local v = redis.call('HGET', KEYS[1], ARGV[1])
if v and string.sub(v, 1, string.len(ARGV[2])) == ARGV[2] then
  return redis.call('HDEL', KEYS[1], ARGV[1])
end
return 0
"""


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


class RedisSessionDirectory:
    def __init__(self, redis: Redis, keys: Keys, ttl_seconds: float) -> None:
        self._redis = redis
        self._keys = keys
        self._ttl_ms = int(ttl_seconds * 1000)
        self._unbind = redis.register_script(_UNBIND)

    def _value(self, s: DeviceSession) -> str:
        return f"{s.gateway_id}|{s.conn_id}|{_now_ms() + self._ttl_ms}"

    async def bind(self, session: DeviceSession) -> None:
        key = self._keys.session(session.user_id)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hset(key, session.device_id, self._value(session))
            pipe.pexpire(key, self._ttl_ms)
            await pipe.execute()

    async def unbind(self, session: DeviceSession) -> None:
        owner = f"{session.gateway_id}|{session.conn_id}|"
        await self._unbind(keys=[self._keys.session(session.user_id)], args=[session.device_id, owner])

    async def refresh(self, session: DeviceSession) -> None:
        # A heartbeat re-creates the entry too: after Redis lost its data, sessions come back this way.
        await self.bind(session)

    async def lookup(self, user_ids: Iterable[int]) -> Mapping[int, list[DeviceSession]]:
        ids = list(dict.fromkeys(user_ids))
        if not ids:
            return {}
        async with self._redis.pipeline(transaction=False) as pipe:
            for uid in ids:
                pipe.hgetall(self._keys.session(uid))
            rows = await pipe.execute()
        now = _now_ms()
        found: dict[int, list[DeviceSession]] = {}
        for uid, fields in zip(ids, rows, strict=True):
            for device, value in fields.items():
                gateway_id, conn_id, deadline = value.rsplit("|", 2)
                if int(deadline) > now:
                    found.setdefault(uid, []).append(DeviceSession(uid, device, gateway_id, conn_id))
        return found
