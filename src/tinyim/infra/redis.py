"""Redis connections for the adapters (created in lifespan) and the key layout of the spec.

Every key goes through `Keys`, so a deployment (or a test run) can put all of TinyIM's keys under one
prefix and remove them afterwards.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

from redis.asyncio import Redis


@dataclass(frozen=True, slots=True)
class Keys:
    prefix: str = ""

    def session(self, user_id: int) -> str:
        return f"{self.prefix}im:session:{user_id}"

    def seq(self, user_id: int) -> str:
        return f"{self.prefix}im:seq:{user_id}"

    def user(self, user_id: int) -> str:
        return f"{self.prefix}im:user:{user_id}"

    def gateway_info(self, gateway_id: str) -> str:
        return f"{self.prefix}im:gateway:info:{gateway_id}"

    @property
    def gateway_load(self) -> str:
        return f"{self.prefix}im:gateway:load"

    @property
    def kick_channel(self) -> str:
        return f"{self.prefix}im:kick"


async def redis_client(url: str) -> AsyncIterator[Redis]:
    client = Redis.from_url(url, decode_responses=True, health_check_interval=30, socket_timeout=5)
    try:
        yield client
    finally:
        await client.aclose()
