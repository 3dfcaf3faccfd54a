"""The relation module's container: `providers.Dependency` inputs from the composition root (the bridges
to auth, timeline and presence among them), one local/gRPC selector (`api`: the local RelationService when
this process runs `user`, else its gRPC client), and the messaging rules a send checks, behind their cache."""

from __future__ import annotations

import contextlib
from contextlib import AbstractAsyncContextManager
from typing import Any

from dependency_injector import containers, providers

from tinyim.infra.db import Database
from tinyim.infra.extras import lazy
from tinyim.infra.node_directory import NodeDirectory
from tinyim.infra.redis import Keys
from tinyim.infra.roles import running
from tinyim.infra.rpc import Channels
from tinyim.modules.relation.adapters.change_feed import LocalChangeFeed, RedisChangeFeed
from tinyim.modules.relation.adapters.memory import InMemoryRateLimiter
from tinyim.modules.relation.adapters.rpc import GrpcRelationClient
from tinyim.modules.relation.adapters.sql import SqlRelationStore
from tinyim.modules.relation.adapters.sql_unit_of_work import SqlRelationUnits
from tinyim.modules.relation.ports import Notices, StatusNotices, UserDirectory
from tinyim.modules.relation.rules_cache import CachedMessagingRules, MessagingRules
from tinyim.modules.relation.service import RelationService
from tinyim.settings import Settings

RedisRateLimiter = lazy("tinyim.modules.relation.adapters.redis:RedisRateLimiter")


def cached_rules(rules: MessagingRules, feed: LocalChangeFeed, ttl_seconds: float) -> MessagingRules:
    """The messaging rules behind a cache the change feed empties (ttl 0: no cache)."""
    if ttl_seconds <= 0:
        return rules
    cache = CachedMessagingRules(rules, live=feed.live, ttl_seconds=ttl_seconds)
    feed.subscribe(cache)
    return cache


def listening(feed: LocalChangeFeed) -> AbstractAsyncContextManager[None]:
    """While entered, the caches hear of relation changes made in other processes (Redis pub/sub)."""
    return running(feed.run()) if isinstance(feed, RedisChangeFeed) else contextlib.nullcontext()


class RelationContainer(containers.DeclarativeContainer):
    settings = providers.Dependency(instance_of=Settings)
    db: providers.Dependency[Database] = providers.Dependency()  # an async resource of the root
    redis: providers.Dependency[Any] = providers.Dependency()  # None without IM_REDIS_URL
    keys = providers.Dependency(instance_of=Keys)
    directory: providers.Dependency[NodeDirectory] = providers.Dependency()  # where user nodes are
    channels: providers.Dependency[Channels] = providers.Dependency()  # gRPC channels
    users: providers.Dependency[UserDirectory] = providers.Dependency()  # auth's accounts
    notices: providers.Dependency[Notices] = providers.Dependency()  # timeline's notice writing
    status: providers.Dependency[StatusNotices] = providers.Dependency()  # presence: online status

    # friendship / block / membership changes, told to the rules caches (here, and in others via Redis)
    changes = providers.Selector(
        settings.provided.shared_state,
        memory=providers.Singleton(LocalChangeFeed),
        redis=providers.Singleton(RedisChangeFeed, redis, keys),
    )
    service = providers.Singleton(
        RelationService,
        store=providers.Singleton(SqlRelationStore, db),
        users=users,
        notices=notices,
        # user search: searches per user per minute, counted across the role's processes
        limiter=providers.Selector(
            settings.provided.shared_state,
            memory=providers.Singleton(InMemoryRateLimiter),
            redis=providers.Singleton(RedisRateLimiter, redis, keys),
        ),
        searches_per_minute=settings.provided.search_per_minute,
        # online status: a block or a delete clears what the other side's devices show
        status=status,
        changes=changes,
        # one transaction per command, its notices in the outbox (delivered after commit)
        units=providers.Singleton(SqlRelationUnits, db),
    )
    api = providers.Selector(
        providers.Callable(lambda s: s.placement("user"), settings),
        local=service,
        remote=providers.Singleton(
            GrpcRelationClient.connect, directory, channels, settings.provided.grpc_deadline_seconds
        ),
    )
    # every send's rule check (friends? blocked? members?) from memory until a change is announced
    rules = providers.Singleton(cached_rules, api, changes, settings.provided.rules_cache_seconds)
    rules_feed = providers.Factory(listening, changes)
