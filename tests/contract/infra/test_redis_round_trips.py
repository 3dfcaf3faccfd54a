"""tinyim_redis_round_trips_total counts requests sent to Redis, not the commands they carry."""

from __future__ import annotations

import contextlib
import uuid

from tests.support.services import delete_prefix, require_redis
from tinyim.infra import metrics
from tinyim.infra.redis import redis_client


def round_trips() -> float:
    return float(metrics.REDIS_ROUND_TRIPS._value.get())


async def test_a_command_a_pipeline_and_a_script_each_count_once() -> None:
    url = require_redis()
    prefix = f"tinyim-test-{uuid.uuid4().hex[:8]}:"
    async with contextlib.asynccontextmanager(redis_client)(url) as redis:
        await redis.ping()  # connected: the handshake is not what is measured
        before = round_trips()
        await redis.set(prefix + "a", 1)
        assert round_trips() - before == 1
        async with redis.pipeline(transaction=False) as pipe:
            for n in range(10):
                pipe.incr(prefix + f"k{n}")
            assert len(await pipe.execute()) == 10
        assert round_trips() - before == 2
        script = redis.register_script("return redis.call('INCRBY', KEYS[1], ARGV[1])")
        await script(keys=[prefix + "a"], args=[5])  # loaded on first use: EVALSHA, then SCRIPT LOAD, EVALSHA
        middle = round_trips()
        assert int(await script(keys=[prefix + "a"], args=[5])) == 11
        assert round_trips() - middle == 1
    await delete_prefix(url, prefix)
