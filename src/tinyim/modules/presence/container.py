"""The presence module's container. Presence has no role: every process uses it as a library, so there is
no local/gRPC selector for its API; the one selector picks how signals reach gateways (`gateways`: this
process's hub, which sends other gateways' signals over gRPC, or gRPC to every gateway).

Its `providers.Dependency` inputs come from the composition root. Two of them close loops there, so the
root's `wired()` provides them once every container exists: the hub-backed link (the hub, an edge, indexes
its connections in this container's session directory) and the status audience (relation's rules, and
relation in turn tells presence of blocks)."""

from __future__ import annotations

import contextlib
from contextlib import AbstractAsyncContextManager
from typing import Any

from dependency_injector import containers, providers

from tinyim.infra.extras import lazy
from tinyim.infra.node_directory import NodeDirectory
from tinyim.infra.redis import Keys
from tinyim.infra.roles import running
from tinyim.infra.rpc import Channels
from tinyim.modules.presence.adapters.grpc_client import GrpcGatewayLink
from tinyim.modules.presence.adapters.memory import InMemoryPresenceStore, InMemorySessionDirectory
from tinyim.modules.presence.ports import GatewayLink, SessionDirectory, SessionLookup, StatusAudience
from tinyim.modules.presence.route_cache import CachedRoutes
from tinyim.modules.presence.service import PresenceRouter
from tinyim.modules.presence.status import StatusService
from tinyim.settings import Settings

RedisPresenceStore = lazy("tinyim.modules.presence.adapters.redis:RedisPresenceStore")
RedisSessionDirectory = lazy("tinyim.modules.presence.adapters.redis:RedisSessionDirectory")
RouteChangeFeed = lazy("tinyim.modules.presence.adapters.redis:RouteChangeFeed")


def cached_routes(sessions: SessionDirectory, feed: Any, ttl_seconds: float) -> SessionLookup:
    """The session table behind a cache the route feed empties (no feed, or ttl 0: no cache)."""
    if feed is None or ttl_seconds <= 0:
        return sessions
    cache = CachedRoutes(sessions, live=feed.live, ttl_seconds=ttl_seconds)
    feed.subscribe(cache)
    return cache


def listening(feed: Any) -> AbstractAsyncContextManager[None]:
    """While entered, this process's route cache hears of sessions bound or unbound anywhere."""
    return contextlib.nullcontext() if feed is None else running(feed.run())


class PresenceContainer(containers.DeclarativeContainer):
    settings = providers.Dependency(instance_of=Settings)
    redis: providers.Dependency[Any] = providers.Dependency()  # None without IM_REDIS_URL
    keys = providers.Dependency(instance_of=Keys)
    directory: providers.Dependency[NodeDirectory] = providers.Dependency()  # where gateway nodes are
    channels: providers.Dependency[Channels] = providers.Dependency()  # gRPC channels
    discovery = providers.Dependency(instance_of=str)  # "none" (one process) or "shared" (a registry)
    # this process's gateway (its hub), reaching the others through `other_gateways`
    local_gateway: providers.Dependency[GatewayLink] = providers.Dependency()
    audience: providers.Dependency[StatusAudience] = providers.Dependency()  # relation: who sees whom

    # the session routing table: in memory for one process, in Redis when IM_REDIS_URL is set
    sessions = providers.Selector(
        settings.provided.shared_state,
        memory=providers.Singleton(InMemorySessionDirectory),
        redis=providers.Singleton(
            RedisSessionDirectory,
            redis,
            keys,
            ttl_seconds=providers.Callable(lambda s: 2 * s.heartbeat_timeout_seconds, settings),
        ),
    )
    remote_gateways = providers.Singleton(
        GrpcGatewayLink,
        directory,
        channels,
        settings.provided.grpc_deadline_seconds,
        push_stream=settings.provided.internal_streams,
    )
    # what the local gateway hands on for another gateway: nothing without a registry (one process)
    other_gateways = providers.Selector(discovery, none=providers.Object(None), shared=remote_gateways)
    gateways = providers.Selector(
        providers.Callable(lambda s: s.placement("gateway"), settings),
        local=local_gateway,
        remote=remote_gateways,
    )
    # message signals' routes: from memory in a process that listens to the route feed (Redis only; the
    # in-memory table is this process's own and needs no cache)
    route_changes = providers.Selector(
        settings.provided.shared_state,
        memory=providers.Object(None),
        redis=providers.Singleton(RouteChangeFeed, redis, keys),
    )
    routes = providers.Singleton(
        cached_routes, sessions, route_changes, settings.provided.route_cache_seconds
    )
    routes_feed = providers.Factory(listening, route_changes)
    router = providers.Singleton(PresenceRouter, sessions, gateways, routes)

    # online status and typing: in every gateway process, records in memory or Redis
    status = providers.Singleton(
        StatusService,
        store=providers.Selector(
            settings.provided.shared_state,
            memory=providers.Singleton(InMemoryPresenceStore),
            redis=providers.Singleton(RedisPresenceStore, redis, keys),
        ),
        audience=audience,
        sessions=sessions,
        gateways=gateways,
        ttl_seconds=settings.provided.effective_presence_ttl,
    )
