"""The dispatch edge's container: `providers.Dependency` inputs from the composition root (auth, relation
and timeline for the admin API, the node directory), the gateway and file-gateway allocators (this process,
or the least loaded live node of the registry), the login throttle, and what its routes use."""

from __future__ import annotations

from typing import Any

from dependency_injector import containers, providers

from tinyim.infra.extras import lazy
from tinyim.infra.node_directory import DIRECTORY_REFRESH_SECONDS, NodeDirectory
from tinyim.infra.redis import Keys
from tinyim.modules.auth import AuthApi
from tinyim.settings import Settings

from .addresses import FileGatewayAddress, GatewayAddress
from .admin import AdminServices, GroupAdmin, MessageCount, OnlineCount
from .allocators import (
    RegistryGatewayAllocator,
    RingFileGatewayAllocator,
    StaticFileGatewayAllocator,
    StaticGatewayAllocator,
)
from .http import DispatchServices
from .online_count import RegistryOnlineCount
from .throttle import InMemoryFailureStore, LoginThrottle

RedisFailureStore = lazy("tinyim.edges.dispatch.throttle_redis:RedisFailureStore")


def _discovery(settings: Settings) -> str:
    """'none' (one process: hand out this process's gateways) or 'shared' (a registry of either kind)."""
    return "none" if settings.registry_kind == "none" else "shared"


class DispatchContainer(containers.DeclarativeContainer):
    settings = providers.Dependency(instance_of=Settings)
    redis: providers.Dependency[Any] = providers.Dependency()  # None without IM_REDIS_URL
    keys = providers.Dependency(instance_of=Keys)
    directory: providers.Dependency[NodeDirectory] = providers.Dependency()  # live gateways
    auth: providers.Dependency[AuthApi] = providers.Dependency()
    relation: providers.Dependency[GroupAdmin] = providers.Dependency()  # admin API: groups
    messages: providers.Dependency[MessageCount] = providers.Dependency()  # admin API: message count
    local_online: providers.Dependency[OnlineCount] = providers.Dependency()  # this process's connections

    discovery = providers.Callable(_discovery, settings)
    # the least loaded live gateway (with a registry) or this process; loads arrive with each renewal,
    # and dispatch counts its own hand-outs of the last period
    gateway_allocator = providers.Selector(
        discovery,
        none=providers.Singleton(
            StaticGatewayAllocator,
            providers.Factory(GatewayAddress, settings.provided.public_host, settings.provided.http_port),
        ),
        shared=providers.Singleton(
            RegistryGatewayAllocator,
            directory,
            # how old the loads it reads can be: a renewal period, plus the directory's cache
            window_seconds=providers.Callable(
                lambda s: s.registry_renew_seconds + DIRECTORY_REFRESH_SECONDS, settings
            ),
        ),
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
        shared=providers.Singleton(RingFileGatewayAllocator, directory),
    )
    # failed logins: counted in this process, or in Redis across every dispatch process
    login_throttle = providers.Singleton(
        LoginThrottle,
        store=providers.Selector(
            settings.provided.shared_state,
            memory=providers.Singleton(InMemoryFailureStore),
            redis=providers.Singleton(RedisFailureStore, redis, keys),
        ),
        free_failures=settings.provided.login_free_failures,
        max_backoff=settings.provided.login_backoff_max_seconds,
        forget_after=settings.provided.login_forget_after_seconds,
    )
    # admin API: open connections of this process's gateway (one process) or of every live gateway
    online_count = providers.Selector(
        discovery, none=local_online, shared=providers.Singleton(RegistryOnlineCount, directory)
    )
    http = providers.Singleton(
        DispatchServices,
        auth=auth,
        gateways=gateway_allocator,
        files=file_allocator,
        throttle=login_throttle,
    )
    admin = providers.Singleton(
        AdminServices,
        auth=auth,  # the local AuthService and auth's gRPC client serve the admin calls too
        groups=relation,
        messages=messages,
        online=online_count,
    )
