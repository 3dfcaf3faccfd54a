"""Redis connections for the adapters (created in lifespan) and the key layout of the spec.

Every key goes through `Keys`, so a deployment (or a test run) can put all of TinyIM's keys under one
prefix and remove them afterwards.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tinyim.infra import metrics
from tinyim.infra.extras import REDIS, require

if TYPE_CHECKING:
    from redis.asyncio import Redis  # the [redis] extra: imported when IM_REDIS_URL is set

log = logging.getLogger(__name__)
RESUBSCRIBE_SECONDS = 1.0


@dataclass(frozen=True, slots=True)
class Keys:
    prefix: str = ""

    def session(self, user_id: int) -> str:
        return f"{self.session_prefix()}{user_id}"

    def session_prefix(self) -> str:
        """What a Lua script puts before a user id (it builds many users' keys from one argument)."""
        return f"{self.prefix}im:session:"

    def seq(self, user_id: int) -> str:
        return f"{self.seq_prefix()}{user_id}"

    def seq_prefix(self) -> str:
        return f"{self.prefix}im:seq:"

    def seq_gone_prefix(self) -> str:
        """Before a user id: that user's seqs a rolled-back transaction took (readers pass them)."""
        return f"{self.prefix}im:seqgone:"

    def seq_reseeded_prefix(self) -> str:
        """Before a user id: the user's seq counter was re-seeded lately (it may hand out a seq again)."""
        return f"{self.prefix}im:seqreseed:"

    def user(self, user_id: int) -> str:
        return f"{self.prefix}im:user:{user_id}"

    # online status: one hash per user, and a zset of users by their next device deadline
    def presence(self, user_id: int) -> str:
        return f"{self.prefix}im:presence:{user_id}"

    def presence_due(self) -> str:
        return f"{self.prefix}im:presence:due"

    # user search, typing: fixed-window rate counters
    def rate(self, key: str) -> str:
        return f"{self.prefix}im:rate:{key}"

    def route_changes(self) -> str:
        """Pub/sub channel: a user id whose session routes changed (a device bound or unbound)."""
        return f"{self.prefix}im:session-routes:changes"

    def relation_changes(self) -> str:
        """Pub/sub channel: friendship, blocking and group membership changes (messaging-rules caches)."""
        return f"{self.prefix}im:relation:changes"

    # login throttling (dispatch): failures per account or address, and the block they earned
    def login_failures(self, key: str) -> str:
        return f"{self.prefix}im:login:fail:{key}"

    def login_block(self, key: str) -> str:
        return f"{self.prefix}im:login:block:{key}"

    def file_slots(self, user_id: int) -> str:
        """Zset of a user's transfer leases (slot id -> expiry, ms of the Redis clock)."""
        return f"{self.prefix}im:file:slots:{user_id}"

    def node_info(self, role: str, node_id: str) -> str:
        """Registry entry with a TTL (spec: `im:gateway:info:{id}`, the same for every role)."""
        return f"{self.prefix}im:{role}:info:{node_id}"

    def node_load(self, role: str) -> str:
        """Registry zset of a role's node ids by load (spec: `im:gateway:load`)."""
        return f"{self.prefix}im:{role}:load"


async def redis_client(url: str) -> AsyncIterator[Redis]:
    require(REDIS, "IM_REDIS_URL")
    from redis.asyncio import ConnectionPool, Redis
    from redis.asyncio.connection import Connection, parse_url

    options = parse_url(url)
    options["connection_class"] = counted(options.get("connection_class", Connection))
    pool = ConnectionPool(decode_responses=True, health_check_interval=30, socket_timeout=5, **options)
    client = Redis.from_pool(pool)
    try:
        yield client
    finally:
        await client.aclose()


_COUNTED: dict[type, type] = {}


def counted(connection_class: type) -> type:
    """The connection class, counting what it sends in `tinyim_redis_round_trips_total`: one per
    command, or per pipeline or script call however many commands it carries (each is one write
    followed by reading the replies)."""
    sub = _COUNTED.get(connection_class)
    if sub is None:
        send = connection_class.send_packed_command  # type: ignore[attr-defined]

        async def send_packed_command(self: Any, command: Any, check_health: bool = True) -> None:
            metrics.REDIS_ROUND_TRIPS.inc()
            await send(self, command, check_health)

        sub = type(
            f"Counted{connection_class.__name__}",
            (connection_class,),
            {"send_packed_command": send_packed_command},
        )
        _COUNTED[connection_class] = sub
    return sub


class ChannelFeed:
    """A Redis pub/sub channel that keeps this process's caches honest: each message goes to `on_message`.
    The feed is live while subscribed, and only then may the caches answer from memory; every change of
    state first calls `clear` (subscribed: what was published before was not heard; lost: nor is what
    comes now). After a loss it subscribes again a second later."""

    def __init__(
        self,
        redis: Redis,
        channel: str,
        what: str,
        on_message: Callable[[str], None],
        clear: Callable[[], None],
    ) -> None:
        self._redis = redis
        self.channel = channel
        self._what = what  # for the log
        self._on_message = on_message
        self._clear = clear
        self._live = False
        self.on_state: Callable[[bool], None] | None = None  # tests: told when the subscription comes or goes

    def live(self) -> bool:
        return self._live

    async def publish(self, message: str) -> None:
        await self._redis.publish(self.channel, message)

    async def run(self) -> None:
        """Listen until cancelled."""
        while True:
            pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(self.channel)
                self._set_live(True)
                while True:
                    message = await pubsub.get_message(timeout=1.0)
                    if message is not None:
                        self._on_message(str(message["data"]))
            except asyncio.CancelledError:
                raise
            except Exception:
                log.warning("%s lost; caches bypassed until it is back", self._what, exc_info=True)
            finally:
                self._set_live(False)
                try:
                    await pubsub.aclose()  # type: ignore[no-untyped-call]
                except Exception:
                    log.debug("pubsub close failed", exc_info=True)
            await asyncio.sleep(RESUBSCRIBE_SECONDS)

    def _set_live(self, live: bool) -> None:
        self._clear()
        if live != self._live:
            self._live = live
            if self.on_state is not None:
                self.on_state(live)
