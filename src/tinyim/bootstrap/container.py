"""The composition root: core resources and the wiring of the module containers, each of which picks its
own local service or gRPC client (IM_ROLES); presence, a library every process uses, has a container too.

Choices made here, for every module alike: memory or Redis for presence (IM_REDIS_URL), no registry (one
process), Redis or etcd (IM_ETCD_ENDPOINTS) for discovery. Modules never import each other: the bridges
(`bridges.py`) serve one module's port with another's API.
"""

from __future__ import annotations

from dependency_injector import containers, providers

from tinyim.edges.dispatch.allocators import RingFileGatewayAllocator
from tinyim.edges.dispatch.container import DispatchContainer
from tinyim.edges.gateway.container import GatewayContainer
from tinyim.edges.gateway.hub import GatewayHub, LocalGatewayLink
from tinyim.infra import metrics
from tinyim.infra.etcd import EtcdRegistry
from tinyim.infra.node_directory import NodeDirectory
from tinyim.infra.redis import Keys
from tinyim.infra.registry import RedisRegistry
from tinyim.infra.snowflake import Snowflake
from tinyim.kernel import AfterCommit
from tinyim.modules.auth.container import AuthContainer
from tinyim.modules.files.container import FilesContainer
from tinyim.modules.presence.container import PresenceContainer
from tinyim.modules.relation.container import RelationContainer
from tinyim.modules.timeline.container import TimelineContainer
from tinyim.settings import Settings

from . import resources
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
from .roles import needs_database


def _discovery(settings: Settings) -> str:
    """What depends only on whether there is a registry (either kind): 'none' or 'shared'."""
    return "none" if settings.registry_kind == "none" else "shared"


class Container(containers.DeclarativeContainer):
    settings = providers.Dependency(instance_of=Settings)

    # core resources
    db = providers.Resource(resources.database, settings, providers.Callable(needs_database, settings))
    redis = providers.Resource(resources.redis, settings)
    keys = providers.Singleton(Keys, settings.provided.redis_prefix)
    ids = providers.Singleton(Snowflake, worker_id=settings.provided.worker_id)
    secret = providers.Singleton(resources.jwt_secret, settings)  # the JWT secret every role shares

    # discovery and internal calls: every role's nodes from the registry, one channel per address
    etcd = providers.Resource(resources.etcd, settings)
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
    discovery = providers.Callable(_discovery, settings)
    channels = providers.Resource(resources.channels)

    # presence: session routing, push/kick routing, online status (memory or Redis: IM_REDIS_URL); its
    # hub-backed link and status audience close loops, so `wired()` provides them
    presence = providers.Container(
        PresenceContainer,
        settings=settings,
        redis=redis,
        keys=keys,
        directory=directory,
        channels=channels,
        discovery=discovery,
    )
    # this process's gateway connections, indexed in presence's session directory
    hub = providers.Singleton(GatewayHub, gateway_id=settings.provided.gateway_id, sessions=presence.sessions)
    local_gateway = providers.Singleton(LocalGatewayLink, hub, presence.other_gateways)
    # read notices, receipts and kicks: run after the answer leaves, never awaited by a client request
    after_commit = providers.Singleton(
        AfterCommit,
        on_drop=providers.Object(lambda what: metrics.AFTER_COMMIT_DROPPED.labels(what=what).inc()),
        on_failure=providers.Object(lambda what: metrics.AFTER_COMMIT_FAILED.labels(what=what).inc()),
    )

    # the modules: each container picks its local service or its gRPC client
    auth = providers.Container(
        AuthContainer,
        settings=settings,
        db=db,
        redis=redis,
        keys=keys,
        directory=directory,
        channels=channels,
        secret=secret,
        kicker=providers.Singleton(AfterCommitKicker, presence.router, after_commit),
    )
    # files (file transfer): file gateways by hash of the task id
    files = providers.Container(
        FilesContainer,
        settings=settings,
        db=db,
        redis=redis,
        keys=keys,
        directory=directory,
        channels=channels,
        secret=secret,
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
                RingFileGateways, providers.Singleton(RingFileGatewayAllocator, directory)
            ),
        ),
    )
    # timeline's rules, group roles and rules feed come from relation, which writes its notices through
    # timeline: `wired()` closes that loop once both containers exist
    timeline = providers.Container(
        TimelineContainer,
        settings=settings,
        db=db,
        redis=redis,
        keys=keys,
        ids=ids,
        directory=directory,
        channels=channels,
        presence=presence.router,
        routes_feed=presence.routes_feed,
        after_commit=after_commit,
        attachments=providers.Singleton(FilesAsAttachments, files.api),
    )
    relation = providers.Container(
        RelationContainer,
        settings=settings,
        db=db,
        redis=redis,
        keys=keys,
        directory=directory,
        channels=channels,
        users=providers.Singleton(AuthAsUserDirectory, auth.api),
        notices=providers.Singleton(TimelineNotices, timeline.notices),
        status=providers.Singleton(PresenceAsStatusNotices, presence.router),
    )
    # online status and typing: who may see whom comes from relation
    status_audience = providers.Singleton(RelationAsStatusAudience, relation.api)

    # the edges
    gateway = providers.Container(
        GatewayContainer,
        settings=settings,
        auth=auth.api,
        timeline=timeline.api,
        relation=relation.api,
        files=files.api,
        hub=hub,
        status=presence.status,
    )
    dispatch = providers.Container(
        DispatchContainer,
        settings=settings,
        redis=redis,
        keys=keys,
        directory=directory,
        auth=auth.api,
        relation=relation.api,
        messages=timeline.notices,
        local_online=providers.Singleton(HubOnlineCount, hub),
    )


def wired(settings: Settings) -> Container:
    """The root container for `settings`, every module's inputs provided (checked: a missing one fails
    here, at start-up, not on the first request that needs it)."""
    container = Container(settings=settings)
    container.presence.local_gateway.override(container.local_gateway)
    container.presence.audience.override(container.status_audience)
    container.timeline.rules.override(container.relation.rules)
    container.timeline.roles.override(container.relation.api)
    container.timeline.rules_feed.override(container.relation.rules_feed)
    container.check_dependencies()
    return container
