"""dependency-injector containers: settings -> resources -> adapters -> services.

The only place that decides which adapter serves a port. `providers.Selector` picks memory or Redis for
presence, the profile cache and gateway allocation (IM_REDIS_URL), and the locked-row or Redis seq
allocator (IM_SEQ_ALLOCATOR). One process (`IM_ROLES=all`) wires every module to its local service;
roles over gRPC (the distributed-roles issue) add a Selector per module between the local service and
its gRPC client adapter, here and nowhere else.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
from collections.abc import AsyncIterator
from pathlib import Path

from dependency_injector import containers, providers
from redis.asyncio import Redis

from tinyim.edges.dispatch.ports import GatewayAddress, RegistryGatewayAllocator, StaticGatewayAllocator
from tinyim.edges.gateway.hub import GatewayHub, LocalGatewayLink
from tinyim.edges.gateway.router import CommandRouter
from tinyim.edges.gateway.ws import GatewayLimits, WebSocketGateway
from tinyim.infra.db import Database
from tinyim.infra.redis import Keys, redis_client
from tinyim.infra.registry import RedisGatewayRegistry
from tinyim.infra.snowflake import Snowflake
from tinyim.modules.auth import AuthService
from tinyim.modules.auth.adapters.crypto import Argon2Hasher, JwtCodec
from tinyim.modules.auth.adapters.memory import InMemoryProfileCache
from tinyim.modules.auth.adapters.redis import RedisProfileCache
from tinyim.modules.auth.adapters.sql import SqlAccounts, SqlDeviceSessions
from tinyim.modules.presence import PresenceRouter
from tinyim.modules.presence.adapters.memory import InMemorySessionDirectory
from tinyim.modules.presence.adapters.redis import RedisSessionDirectory
from tinyim.modules.relation import RelationService
from tinyim.modules.relation.adapters.sql import SqlRelationStore
from tinyim.modules.timeline import TimelineService, TimelineWriter
from tinyim.modules.timeline.adapters.redis_seq import RedisSeqTimelineStore
from tinyim.modules.timeline.adapters.sql import SqlTimelineStore
from tinyim.settings import Settings

from .bridges import AuthAsUserDirectory, TimelineNotices

log = logging.getLogger(__name__)


async def redis(settings: Settings) -> AsyncIterator[Redis | None]:
    if not settings.redis_url:
        yield None
        return
    async for client in redis_client(settings.redis_url):
        yield client


async def database(settings: Settings) -> AsyncIterator[Database]:
    replicas = [u.strip() for u in settings.database_replica_urls.split(",") if u.strip()]
    db = Database(settings.effective_database_url, replicas)
    watcher = asyncio.create_task(db.watch_replicas()) if replicas else None
    try:
        yield db
    finally:
        if watcher is not None:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
        await db.dispose()


async def register_gateway(
    settings: Settings, registry: RedisGatewayRegistry, hub: GatewayHub
) -> AsyncIterator[asyncio.Task[None] | None]:
    """With Redis: keep this gateway's registry entry alive (every 1.5 s, TTL 5 s) with its load."""
    if not settings.redis_url:
        yield None
        return

    async def announce() -> None:
        await registry.heartbeat(
            hub.gateway_id, settings.public_host, settings.http_port, hub.connection_count
        )

    async def renew() -> None:
        while True:
            await asyncio.sleep(1.5)
            try:
                await announce()
            except Exception:
                log.warning("gateway registry renewal failed; retrying", exc_info=True)

    await announce()  # registered before the process reports itself up
    task = asyncio.create_task(renew())
    try:
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        with contextlib.suppress(Exception):
            await registry.unregister(hub.gateway_id)  # a clean stop leaves at once, not after the TTL


def jwt_secret(settings: Settings) -> str:
    """IM_JWT_SECRET, else a random secret kept in the data dir so tokens survive a restart."""
    if settings.jwt_secret:
        return settings.jwt_secret
    path = Path(settings.data_dir) / "jwt.secret"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_urlsafe(48))
    return path.read_text().strip()


class Container(containers.DeclarativeContainer):
    settings = providers.Dependency(instance_of=Settings)

    db = providers.Resource(database, settings)
    redis = providers.Resource(redis, settings)
    keys = providers.Singleton(Keys, settings.provided.redis_prefix)
    ids = providers.Singleton(Snowflake, worker_id=settings.provided.worker_id)
    shared_state = settings.provided.shared_state

    # presence: in memory for one process, in Redis when IM_REDIS_URL is set
    session_directory = providers.Selector(
        shared_state,
        memory=providers.Singleton(InMemorySessionDirectory),
        redis=providers.Singleton(
            RedisSessionDirectory,
            redis,
            keys,
            ttl_seconds=providers.Callable(lambda s: 2 * s.heartbeat_timeout_seconds, settings),
        ),
    )
    hub = providers.Singleton(GatewayHub, gateway_id=settings.provided.gateway_id, sessions=session_directory)
    presence = providers.Singleton(
        PresenceRouter, session_directory, providers.Singleton(LocalGatewayLink, hub)
    )

    # auth
    auth = providers.Singleton(
        AuthService,
        accounts=providers.Singleton(SqlAccounts, db),
        sessions=providers.Singleton(SqlDeviceSessions, db),
        hasher=providers.Singleton(Argon2Hasher),
        tokens=providers.Singleton(JwtCodec, providers.Callable(jwt_secret, settings)),
        kicker=presence,
        token_ttl_seconds=settings.provided.token_ttl_seconds,
        profiles=providers.Selector(
            shared_state,
            memory=providers.Singleton(InMemoryProfileCache),
            redis=providers.Singleton(RedisProfileCache, redis, keys),
        ),
    )

    # timeline writing (used by relation for notices: no dependency cycle), relation, timeline
    timeline_store = providers.Selector(
        settings.provided.seq_allocator,
        sql=providers.Singleton(SqlTimelineStore, db),
        redis=providers.Singleton(RedisSeqTimelineStore, db, redis, keys),
    )
    timeline_writer = providers.Singleton(TimelineWriter, timeline_store, ids, presence)
    relation = providers.Singleton(
        RelationService,
        store=providers.Singleton(SqlRelationStore, db),
        users=providers.Singleton(AuthAsUserDirectory, auth),
        notices=providers.Singleton(TimelineNotices, timeline_writer),
    )
    timeline = providers.Singleton(
        TimelineService,
        store=timeline_store,
        writer=timeline_writer,
        policy=relation,
        notifier=presence,
        max_content_bytes=settings.provided.max_content_bytes,
        sync_page_default=settings.provided.sync_page_default,
        sync_page_max=settings.provided.sync_page_max,
    )

    # edges
    # With Redis, gateways register themselves (TTL 5 s) and dispatch picks the least loaded live one.
    registry = providers.Singleton(RedisGatewayRegistry, redis, keys, ttl_seconds=5.0)
    gateway_allocator = providers.Selector(
        shared_state,
        memory=providers.Singleton(
            StaticGatewayAllocator,
            providers.Factory(GatewayAddress, settings.provided.public_host, settings.provided.http_port),
        ),
        redis=providers.Singleton(RegistryGatewayAllocator, registry),
    )
    gateway_registration = providers.Resource(register_gateway, settings, registry, hub)
    websocket_gateway = providers.Singleton(
        WebSocketGateway,
        auth=auth,
        hub=hub,
        router=providers.Singleton(CommandRouter, timeline, relation, hub),
        limits=providers.Factory(
            GatewayLimits,
            heartbeat_timeout=settings.provided.heartbeat_timeout_seconds,
            login_timeout=settings.provided.login_timeout_seconds,
            max_frame_body=settings.provided.max_frame_body,
            rate_per_second=settings.provided.rate_per_second,
            rate_burst=settings.provided.rate_burst,
            max_bad_frames=settings.provided.max_bad_frames,
        ),
    )
