"""dependency-injector containers: settings -> resources -> adapters -> services.

The only place that decides which adapter serves a port:
- per module (auth, user = relation, msg = timeline, gateway links), `placed(role)` selects the local
  service when this process runs the role (IM_ROLES) and its gRPC client adapter otherwise;
- memory or Redis for presence, the profile cache and login throttle counts (IM_REDIS_URL);
- the locked-row or Redis seq allocator (IM_SEQ_ALLOCATOR);
- no registry (one process), Redis or etcd (IM_ETCD_ENDPOINTS) for discovery.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
import os
import secrets
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dependency_injector import containers, providers

from tinyim.edges.dispatch.addresses import FileGatewayAddress, GatewayAddress
from tinyim.edges.dispatch.allocators import (
    FileGatewayAllocator,
    RegistryGatewayAllocator,
    StaticFileGatewayAllocator,
    StaticGatewayAllocator,
)
from tinyim.edges.dispatch.online_count import RegistryOnlineCount
from tinyim.edges.dispatch.throttle import InMemoryFailureStore, LoginThrottle
from tinyim.edges.gateway.hub import GatewayHub, LocalGatewayLink
from tinyim.edges.gateway.router import CommandRouter
from tinyim.edges.gateway.status import StatusTracker
from tinyim.edges.gateway.ws import GatewayLimits, WebSocketGateway
from tinyim.infra import metrics
from tinyim.infra.db import Database
from tinyim.infra.etcd import EtcdRegistry, etcd_client
from tinyim.infra.node_directory import NodeDirectory
from tinyim.infra.redis import Keys, redis_client
from tinyim.infra.registry import RedisRegistry
from tinyim.infra.rpc import Channels
from tinyim.infra.snowflake import Snowflake
from tinyim.kernel import AfterCommit
from tinyim.modules.auth import AuthService
from tinyim.modules.auth.adapters.crypto import Argon2Hasher, JwtCodec
from tinyim.modules.auth.adapters.grpc_client import GrpcAuthClient
from tinyim.modules.auth.adapters.memory import InMemoryProfileCache
from tinyim.modules.auth.adapters.sql import (
    SqlAccounts,
    SqlDeviceSessions,
    SqlRefreshTokens,
    SqlRegistration,
)
from tinyim.modules.files.container import FilesContainer
from tinyim.modules.presence import PresenceRouter, StatusService
from tinyim.modules.presence.adapters.grpc_client import GrpcGatewayLink
from tinyim.modules.presence.adapters.memory import InMemoryPresenceStore, InMemorySessionDirectory
from tinyim.modules.relation import RelationService
from tinyim.modules.relation.adapters.change_feed import LocalChangeFeed, RedisChangeFeed
from tinyim.modules.relation.adapters.grpc_client import GrpcRelationClient
from tinyim.modules.relation.adapters.memory import InMemoryRateLimiter
from tinyim.modules.relation.adapters.sql import SqlRelationStore
from tinyim.modules.relation.adapters.sql_unit_of_work import SqlRelationUnits
from tinyim.modules.relation.rules_cache import CachedMessagingRules, MessagingRules
from tinyim.modules.timeline import TimelineService, TimelineWriter
from tinyim.modules.timeline.adapters.grpc_client import GrpcTimelineClient
from tinyim.modules.timeline.adapters.push import FramePushNotifier
from tinyim.modules.timeline.adapters.sql import SqlTimelineStore
from tinyim.modules.timeline.protocol import inline_messages
from tinyim.settings import Settings

from .bridges import (
    AfterCommitKicker,
    AuthAsUserDirectory,
    FilesAsAttachments,
    HubOnlineCount,
    PresenceAsStatusNotices,
    RelationAsStatusAudience,
    RingFileGateways,
    ThisProcessFileGateway,
    TimelineNotices,
)

if TYPE_CHECKING:
    from redis.asyncio import Redis

log = logging.getLogger(__name__)


def lazy(path: str) -> Callable[..., Any]:
    """The class at 'module:Name', imported when a provider first builds one. The Redis adapters import
    the redis package (the [redis] extra), which one process without IM_REDIS_URL never needs."""
    module, _, name = path.partition(":")

    def build(*args: Any, **kwargs: Any) -> Any:
        return getattr(importlib.import_module(module), name)(*args, **kwargs)

    build.__qualname__ = build.__name__ = name
    return build


RedisProfileCache = lazy("tinyim.modules.auth.adapters.redis:RedisProfileCache")
RedisPresenceStore = lazy("tinyim.modules.presence.adapters.redis:RedisPresenceStore")
RedisSessionDirectory = lazy("tinyim.modules.presence.adapters.redis:RedisSessionDirectory")
RedisRateLimiter = lazy("tinyim.modules.relation.adapters.redis:RedisRateLimiter")
RedisSeqAllocator = lazy("tinyim.modules.timeline.adapters.redis_seq:RedisSeqAllocator")
RedisFailureStore = lazy("tinyim.edges.dispatch.throttle_redis:RedisFailureStore")


async def redis(settings: Settings) -> AsyncIterator[Redis | None]:
    if not settings.redis_url:
        yield None
        return
    async for client in redis_client(settings.redis_url):
        yield client


# Roles whose local services use the database (dispatch and gateways reach it only through them).
DATABASE_ROLES = frozenset({"auth", "user", "msg", "filemeta"})


async def database(settings: Settings) -> AsyncIterator[Database]:
    """Engines connect lazily; replica health is watched only where a local service reads replicas."""
    replicas = [u.strip() for u in settings.database_replica_urls.split(",") if u.strip()]
    db = Database(settings.effective_database_url, replicas)
    uses_db = bool(settings.role_set & DATABASE_ROLES)
    watcher = asyncio.create_task(db.watch_replicas()) if replicas and uses_db else None
    try:
        yield db
    finally:
        if watcher is not None:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
        await db.dispose()


async def etcd(settings: Settings) -> AsyncIterator[Any]:
    if not settings.etcd_endpoints:
        yield None
        return
    async for client in etcd_client(settings.etcd_endpoints):
        yield client


async def channels() -> AsyncIterator[Channels]:
    pool = Channels()
    try:
        yield pool
    finally:
        await pool.close()


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


def metrics_token(settings: Settings) -> str:
    """IM_METRICS_TOKEN, else a random token kept in the data dir (`metrics.token`, for the scraper)."""
    if settings.metrics_token:
        return settings.metrics_token
    path = Path(settings.data_dir) / "metrics.token"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileExistsError):
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(secrets.token_urlsafe(32))
    return path.read_text().strip()


def cached_rules(rules: MessagingRules, feed: LocalChangeFeed, ttl_seconds: float) -> MessagingRules:
    """The messaging rules behind a cache the change feed empties (ttl 0: no cache)."""
    if ttl_seconds <= 0:
        return rules
    cache = CachedMessagingRules(rules, live=feed.live, ttl_seconds=ttl_seconds)
    feed.subscribe(cache)
    return cache


def placed(settings: Any, role: str) -> Any:
    """Selector key: 'local' when this process serves `role`, else 'remote' (its gRPC client adapter)."""
    return providers.Callable(lambda s: s.placement(role), settings)


class Container(containers.DeclarativeContainer):
    settings = providers.Dependency(instance_of=Settings)

    db = providers.Resource(database, settings)
    redis = providers.Resource(redis, settings)
    keys = providers.Singleton(Keys, settings.provided.redis_prefix)
    ids = providers.Singleton(Snowflake, worker_id=settings.provided.worker_id)
    shared_state = settings.provided.shared_state

    # discovery and internal calls: every role's nodes from the registry, one channel per address
    etcd = providers.Resource(etcd, settings)
    registry = providers.Selector(
        settings.provided.registry_kind,
        none=providers.Object(None),
        redis=providers.Singleton(
            RedisRegistry, redis, keys, ttl_seconds=settings.provided.registry_ttl_seconds
        ),
        etcd=providers.Singleton(
            EtcdRegistry,
            etcd,
            prefix=settings.provided.redis_prefix,
            ttl_seconds=settings.provided.registry_ttl_seconds,
        ),
    )
    directory = providers.Singleton(
        NodeDirectory, registry, suspect_seconds=settings.provided.registry_ttl_seconds
    )
    # what depends only on whether there is a registry (either kind): "none" or "shared"
    discovery = providers.Callable(lambda s: "none" if s.registry_kind == "none" else "shared", settings)
    channels = providers.Resource(channels)
    deadline = settings.provided.grpc_deadline_seconds

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
    remote_gateways = providers.Singleton(GrpcGatewayLink, directory, channels, deadline)
    gateway_link = providers.Selector(
        placed(settings, "gateway"),
        local=providers.Singleton(
            LocalGatewayLink,
            hub,
            providers.Selector(discovery, none=providers.Object(None), shared=remote_gateways),
        ),
        remote=remote_gateways,
    )
    presence = providers.Singleton(PresenceRouter, session_directory, gateway_link)
    # read notices, receipts and kicks: run after the answer leaves, never awaited by a client request
    after_commit = providers.Singleton(
        AfterCommit,
        on_drop=providers.Object(lambda what: metrics.AFTER_COMMIT_DROPPED.labels(what=what).inc()),
        on_failure=providers.Object(lambda what: metrics.AFTER_COMMIT_FAILED.labels(what=what).inc()),
    )

    # auth
    auth = providers.Selector(
        placed(settings, "auth"),
        local=providers.Singleton(
            AuthService,
            accounts=providers.Singleton(SqlAccounts, db),
            sessions=providers.Singleton(SqlDeviceSessions, db),
            refresh_tokens=providers.Singleton(SqlRefreshTokens, db),
            refresh_ttl_seconds=settings.provided.refresh_token_ttl_seconds,
            registration=providers.Singleton(SqlRegistration, db),  # admin API
            hasher=providers.Singleton(
                Argon2Hasher, max_concurrent=settings.provided.login_max_concurrent_hashes
            ),
            tokens=providers.Singleton(JwtCodec, providers.Callable(jwt_secret, settings)),
            kicker=providers.Singleton(AfterCommitKicker, presence, after_commit),
            token_ttl_seconds=settings.provided.token_ttl_seconds,
            profiles=providers.Selector(
                shared_state,
                memory=providers.Singleton(InMemoryProfileCache),
                redis=providers.Singleton(RedisProfileCache, redis, keys),
            ),
        ),
        remote=providers.Singleton(GrpcAuthClient.connect, directory, channels, deadline),
    )

    # files (file transfer): the module's own container; file gateways by hash of the task id
    files = providers.Container(
        FilesContainer,
        settings=settings,
        db=db,
        directory=directory,
        channels=channels,
        secret=providers.Callable(jwt_secret, settings),
        gateways=providers.Selector(
            discovery,
            none=providers.Singleton(
                ThisProcessFileGateway,
                settings.provided.public_host,
                settings.provided.file_port,
                settings.provided.http_port,
                settings.provided.public_file_http_url,
            ),
            shared=providers.Singleton(
                RingFileGateways, providers.Singleton(FileGatewayAllocator, directory)
            ),
        ),
    )

    # timeline writing (used by relation for notices: no dependency cycle), relation, timeline
    maintain_conversations = settings.provided.conversation_list
    timeline_store = providers.Selector(
        settings.provided.seq_allocator,
        sql=providers.Singleton(SqlTimelineStore, db, conversations=maintain_conversations),
        redis=providers.Singleton(
            SqlTimelineStore,
            db,
            conversations=maintain_conversations,
            seqs=providers.Singleton(RedisSeqAllocator, db, redis, keys),
        ),
    )
    # read receipts and conversation changes reach devices as client frames through presence
    timeline_pushes = providers.Singleton(FramePushNotifier, presence)
    # small messages ride in their push signal as each owner's MessageData (no sync for a device one behind)
    timeline_writer = providers.Singleton(
        TimelineWriter,
        timeline_store,
        ids,
        presence,
        inline=providers.Object(inline_messages),
        on_push_drop=providers.Object(metrics.PUSHES_DROPPED.inc),
        on_push_failure=providers.Object(metrics.AFTER_COMMIT_FAILED.labels(what="push").inc),
    )
    remote_timeline = providers.Singleton(GrpcTimelineClient.connect, directory, channels, deadline)
    notices = providers.Selector(placed(settings, "msg"), local=timeline_writer, remote=remote_timeline)
    # friendship / block / membership changes, told to the rules caches (here, and in others via Redis)
    relation_changes = providers.Selector(
        shared_state,
        memory=providers.Singleton(LocalChangeFeed),
        redis=providers.Singleton(RedisChangeFeed, redis, keys),
    )
    relation = providers.Selector(
        placed(settings, "user"),
        local=providers.Singleton(
            RelationService,
            store=providers.Singleton(SqlRelationStore, db),
            users=providers.Singleton(AuthAsUserDirectory, auth),
            notices=providers.Singleton(TimelineNotices, notices),
            # user search: searches per user per minute, counted across the role's processes
            limiter=providers.Selector(
                shared_state,
                memory=providers.Singleton(InMemoryRateLimiter),
                redis=providers.Singleton(RedisRateLimiter, redis, keys),
            ),
            searches_per_minute=settings.provided.search_per_minute,
            # online status: a block or a delete clears what the other side's devices show
            status=providers.Singleton(PresenceAsStatusNotices, presence),
            changes=relation_changes,
            # one transaction per command, its notices in the outbox (delivered after commit)
            units=providers.Singleton(SqlRelationUnits, db),
        ),
        remote=providers.Singleton(GrpcRelationClient.connect, directory, channels, deadline),
    )
    # every send's rule check (friends? blocked? members?) from memory until a change is announced
    messaging_rules = providers.Singleton(
        cached_rules, relation, relation_changes, settings.provided.rules_cache_seconds
    )
    timeline = providers.Selector(
        placed(settings, "msg"),
        local=providers.Singleton(
            TimelineService,
            store=timeline_store,
            writer=timeline_writer,
            policy=messaging_rules,
            notifier=timeline_pushes,
            max_content_bytes=settings.provided.max_content_bytes,
            sync_page_default=settings.provided.sync_page_default,
            sync_page_max=settings.provided.sync_page_max,
            roles=relation,
            recall_window_ms=providers.Callable(lambda s: int(s.recall_window_seconds * 1000), settings),
            attachments=providers.Singleton(FilesAsAttachments, files.api),
            after_commit=after_commit,
        ),
        remote=remote_timeline,
    )

    # edges: dispatch hands out the least loaded live gateway (with a registry) or this process
    gateway_allocator = providers.Selector(
        discovery,
        none=providers.Singleton(
            StaticGatewayAllocator,
            providers.Factory(GatewayAddress, settings.provided.public_host, settings.provided.http_port),
        ),
        # loads arrive with each renewal: dispatch counts its own hand-outs of the last period
        shared=providers.Singleton(
            RegistryGatewayAllocator, directory, window_seconds=settings.provided.registry_renew_seconds
        ),
    )
    # failed logins: counted in this process, or in Redis across every dispatch process
    login_throttle = providers.Singleton(
        LoginThrottle,
        store=providers.Selector(
            shared_state,
            memory=providers.Singleton(InMemoryFailureStore),
            redis=providers.Singleton(RedisFailureStore, redis, keys),
        ),
        free_failures=settings.provided.login_free_failures,
        max_backoff=settings.provided.login_backoff_max_seconds,
        forget_after=settings.provided.login_forget_after_seconds,
    )
    file_allocator = providers.Selector(
        discovery,
        none=providers.Singleton(  # one process: its own file gateway
            StaticFileGatewayAllocator,
            providers.Factory(
                FileGatewayAddress,
                settings.provided.public_host,
                settings.provided.file_port,
                providers.Callable(
                    lambda s: s.public_file_http_url or f"http://{s.public_host}:{s.http_port}", settings
                ),
            ),
        ),
        shared=providers.Singleton(FileGatewayAllocator, directory),
    )
    # admin API: open connections of this process's gateway (one process) or of every live gateway
    online_count = providers.Selector(
        discovery,
        none=providers.Singleton(HubOnlineCount, hub),
        shared=providers.Singleton(RegistryOnlineCount, directory),
    )
    # online status and typing: in every gateway process, records in memory or Redis
    status = providers.Singleton(
        StatusService,
        store=providers.Selector(
            shared_state,
            memory=providers.Singleton(InMemoryPresenceStore),
            redis=providers.Singleton(RedisPresenceStore, redis, keys),
        ),
        audience=providers.Singleton(RelationAsStatusAudience, relation),
        sessions=session_directory,
        gateways=gateway_link,
        ttl_seconds=settings.provided.effective_presence_ttl,
    )
    status_tracker = providers.Singleton(
        StatusTracker,
        status,
        away_after_seconds=settings.provided.away_after_seconds,
        typing_per_second=settings.provided.typing_per_second,
        typing_burst=settings.provided.typing_burst,
        refresh_every=providers.Callable(lambda s: s.effective_presence_ttl / 3, settings),
    )
    websocket_gateway = providers.Singleton(
        WebSocketGateway,
        auth=auth,
        hub=hub,
        router=providers.Singleton(
            CommandRouter, timeline, relation, hub, status=status_tracker, files=files.api
        ),
        limits=providers.Factory(
            GatewayLimits,
            heartbeat_timeout=settings.provided.heartbeat_timeout_seconds,
            login_timeout=settings.provided.login_timeout_seconds,
            max_frame_body=settings.provided.max_frame_body,
            rate_per_second=settings.provided.rate_per_second,
            rate_burst=settings.provided.rate_burst,
            max_bad_frames=settings.provided.max_bad_frames,
            send_timeout=settings.provided.ws_send_timeout_seconds,
            max_queued_sends=settings.provided.ws_max_queued_sends,
        ),
    )
