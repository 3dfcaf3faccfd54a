"""The auth module's container: `providers.Dependency` inputs from the composition root, one local/gRPC
selector (`api`: the local AuthService when this process runs `auth`, else its gRPC client)."""

from __future__ import annotations

from typing import Any

from dependency_injector import containers, providers

from tinyim.infra.db import Database
from tinyim.infra.extras import lazy
from tinyim.infra.node_directory import NodeDirectory
from tinyim.infra.redis import Keys
from tinyim.infra.rpc import Channels
from tinyim.modules.auth.adapters.crypto import Argon2Hasher, JwtCodec
from tinyim.modules.auth.adapters.memory import InMemoryProfileCache
from tinyim.modules.auth.adapters.rpc import GrpcAuthClient
from tinyim.modules.auth.adapters.sql import (
    SqlAccounts,
    SqlDeviceSessions,
    SqlRefreshTokens,
    SqlRegistration,
)
from tinyim.modules.auth.adapters.sql_unit_of_work import SqlAuthUnits
from tinyim.modules.auth.ports import SessionKicker
from tinyim.modules.auth.service import AuthService
from tinyim.settings import Settings

RedisProfileCache = lazy("tinyim.modules.auth.adapters.redis:RedisProfileCache")


class AuthContainer(containers.DeclarativeContainer):
    settings = providers.Dependency(instance_of=Settings)
    db: providers.Dependency[Database] = providers.Dependency()  # an async resource of the root
    redis: providers.Dependency[Any] = providers.Dependency()  # None without IM_REDIS_URL
    keys = providers.Dependency(instance_of=Keys)
    directory: providers.Dependency[NodeDirectory] = providers.Dependency()  # where auth nodes are
    channels: providers.Dependency[Channels] = providers.Dependency()  # gRPC channels
    secret = providers.Dependency(instance_of=str)  # the JWT secret every role shares
    kicker: providers.Dependency[SessionKicker] = providers.Dependency()  # presence: a replaced login

    service = providers.Singleton(
        AuthService,
        accounts=providers.Singleton(SqlAccounts, db),
        sessions=providers.Singleton(SqlDeviceSessions, db),
        refresh_tokens=providers.Singleton(SqlRefreshTokens, db),
        refresh_ttl_seconds=settings.provided.refresh_token_ttl_seconds,
        registration=providers.Singleton(SqlRegistration, db),  # admin API
        units=providers.Singleton(SqlAuthUnits, db),  # the commands that write more than once
        hasher=providers.Singleton(
            Argon2Hasher,
            time_cost=settings.provided.password_hash_time_cost,
            memory_cost=settings.provided.password_hash_memory_kib,
            max_concurrent=settings.provided.login_max_concurrent_hashes,
        ),
        tokens=providers.Singleton(JwtCodec, secret),
        kicker=kicker,
        token_ttl_seconds=settings.provided.token_ttl_seconds,
        # profiles: in this process's memory, or in Redis across every auth process
        profiles=providers.Selector(
            settings.provided.shared_state,
            memory=providers.Singleton(InMemoryProfileCache),
            redis=providers.Singleton(RedisProfileCache, redis, keys),
        ),
    )
    api = providers.Selector(
        providers.Callable(lambda s: s.placement("auth"), settings),
        local=service,
        remote=providers.Singleton(
            GrpcAuthClient.connect, directory, channels, settings.provided.grpc_deadline_seconds
        ),
    )
