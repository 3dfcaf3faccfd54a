"""S1: the cost of online status on the heartbeat path.

Every heartbeat of every connection refreshes its device in the user's status record: in Redis one
optimistic transaction (WATCH, HGETALL, MULTI, DEL + HSET + PEXPIRE + ZADD, EXEC). Measured here
straight against the store at the given concurrency, next to what the session routing table already
does per heartbeat (one HSET + PEXPIRE pipeline) on the same Redis, and the in-memory store of one
process. A gateway writes a connection's device at most every third of the presence TTL (40 s by
default), so C connections need C/40 updates/s: the figure says how many connections one Redis serves
before status becomes the bottleneck.
"""

from __future__ import annotations

import asyncio
import resource
import time
import uuid
from collections.abc import Awaitable, Callable

from redis.asyncio import Redis

from bench.common import write_result
from bench.measure import cpu_of, pids_named
from tests.support.services import REDIS_URL, delete_prefix
from tinyim.infra.redis import Keys
from tinyim.modules.presence import PresenceStore
from tinyim.modules.presence.adapters.memory import InMemoryPresenceStore
from tinyim.modules.presence.adapters.redis import RedisPresenceStore
from tinyim.modules.presence.ports import Change

TTL_MS = 120_000


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


REDIS_CPU: dict[str, float] = {}  # operation label -> Redis server CPU µs per op (from /proc)


async def _rate(
    concurrency: int, total: int, op: Callable[[int], Awaitable[object]], label: str = ""
) -> tuple[float, float]:
    """ops/s and CPU ms per op of this process (the client side, the gateway's cost); the Redis server's
    own CPU per op is recorded in REDIS_CPU[label] (shared box: indicative)."""
    counter = iter(range(total))

    async def worker() -> None:
        for i in counter:
            await op(i)

    redis_pids = pids_named("redis-server")
    cpu, redis_cpu, started = _cpu(), cpu_of(redis_pids), time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    if label:
        REDIS_CPU[label] = round((cpu_of(redis_pids) - redis_cpu) * 1e6 / total, 1)
    return total / elapsed, (_cpu() - cpu) * 1000 / total


async def _heartbeats(
    store: PresenceStore, users: int, concurrency: int, total: int, label: str = ""
) -> tuple[float, float]:
    def up(user: int, idle: bool | None) -> Change:
        return lambda r, now: r.device_up("PC", f"c{user}", now, TTL_MS, idle)

    for u in range(users):
        await store.update(u, up(u, False), 1)

    async def beat(i: int) -> None:
        await store.update(i % users, up(i % users, None), 2 + i)  # a heartbeat keeps the idle flag

    return await _rate(concurrency, total, beat, label)


async def _scenario(users: int, concurrency: int, total: int) -> dict[str, float]:
    keys = Keys(f"bench-s1-{uuid.uuid4().hex[:8]}:")
    redis = Redis.from_url(REDIS_URL, decode_responses=True)
    try:
        redis_rate, redis_cpu = await _heartbeats(
            RedisPresenceStore(redis, keys), users, concurrency, total, "status"
        )
        memory_rate, memory_cpu = await _heartbeats(InMemoryPresenceStore(), users, concurrency, total)

        async def session_refresh(i: int) -> None:  # what RedisSessionDirectory.refresh does
            key = keys.session(i % users)
            async with redis.pipeline(transaction=True) as pipe:
                pipe.hset(key, "PC", f"gw|c|{i}")
                pipe.pexpire(key, TTL_MS)
                await pipe.execute()

        raw_rate, raw_cpu = await _rate(concurrency, total, session_refresh, "session")
    finally:
        await redis.aclose()
        await delete_prefix(REDIS_URL, keys.prefix)
    return {
        "status_updates_per_s_redis": round(redis_rate),
        "client_cpu_ms_per_update_redis": round(redis_cpu, 3),
        "redis_server_cpu_us_per_update": REDIS_CPU.get("status", 0.0),
        "redis_server_cpu_us_per_session_refresh": REDIS_CPU.get("session", 0.0),
        "session_refreshes_per_s_redis": round(raw_rate),
        "client_cpu_ms_per_refresh_redis": round(raw_cpu, 3),
        "ratio_status_to_session_refresh": round(redis_rate / raw_rate, 2),
        "status_updates_per_s_memory": round(memory_rate),
        "client_cpu_ms_per_update_memory": round(memory_cpu, 4),
        # a gateway writes a connection's device at most every third of the presence TTL (40 s by default)
        "connections_per_redis_at_one_write_per_40s": round(redis_rate * 40),
    }


def run_s1(users: int = 1000, concurrency: int = 50, total: int = 20_000) -> dict[str, float]:
    figures = asyncio.run(_scenario(users, concurrency, total))
    write_result(
        "s1-online-status",
        {"users": users, "concurrency": concurrency, "updates": total, **figures},
    )
    return figures
