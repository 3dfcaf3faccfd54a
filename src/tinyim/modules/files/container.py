"""The files module's container: `providers.Dependency` inputs from the composition root, one
local/gRPC selector (`api`: the local FileService when this process runs `filemeta`, else its gRPC client)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dependency_injector import containers, providers

from tinyim.edges.filegw import FileGateway, FileLimits
from tinyim.infra.db import Database
from tinyim.infra.extras import lazy
from tinyim.infra.node_directory import NodeDirectory
from tinyim.infra.redis import Keys
from tinyim.infra.rpc import Channels
from tinyim.modules.files.adapters.blobs import LocalBlobStore
from tinyim.modules.files.adapters.memory import InMemoryTransferSlots
from tinyim.modules.files.adapters.rpc import GrpcFileClient
from tinyim.modules.files.adapters.sql import SqlFileTasks
from tinyim.modules.files.adapters.system import SecureRandomness, SystemClock
from tinyim.modules.files.adapters.tickets import JwtTickets
from tinyim.modules.files.ports import GatewayLocator
from tinyim.modules.files.service import FileService
from tinyim.settings import Settings

RedisTransferSlots = lazy("tinyim.modules.files.adapters.redis:RedisTransferSlots")


class FilesContainer(containers.DeclarativeContainer):
    settings = providers.Dependency(instance_of=Settings)
    db: providers.Dependency[Database] = providers.Dependency()  # an async resource of the root
    directory: providers.Dependency[NodeDirectory] = providers.Dependency()  # where filemeta nodes are
    channels: providers.Dependency[Channels] = providers.Dependency()  # gRPC channels
    gateways: providers.Dependency[GatewayLocator] = (
        providers.Dependency()
    )  # which file gateway serves a task
    secret = providers.Dependency(instance_of=str)  # the JWT secret every role shares
    redis: providers.Dependency[Any] = providers.Dependency()  # None without IM_REDIS_URL
    keys = providers.Dependency(instance_of=Keys)

    blobs = providers.Singleton(
        LocalBlobStore, providers.Callable(lambda s: Path(s.data_dir) / "files", settings)
    )
    tickets = providers.Singleton(JwtTickets, secret)
    service = providers.Singleton(
        FileService,
        tasks=providers.Singleton(SqlFileTasks, db),
        blobs=blobs,
        tickets=tickets,
        gateways=gateways,
        clock=providers.Singleton(SystemClock),
        randomness=providers.Singleton(SecureRandomness),
        max_bytes=settings.provided.file_max_bytes,
        upload_ttl_seconds=settings.provided.file_upload_ttl_seconds,
        chunk_size=settings.provided.file_chunk_bytes,
    )
    api = providers.Selector(
        providers.Callable(lambda s: s.placement("filemeta"), settings),
        local=service,
        remote=providers.Singleton(
            GrpcFileClient.connect, directory, channels, settings.provided.grpc_deadline_seconds
        ),
    )
    gateway = providers.Singleton(
        FileGateway,
        files=api,
        blobs=blobs,
        tickets=tickets,
        limits=providers.Factory(
            FileLimits,
            chunk_size=settings.provided.file_chunk_bytes,
            rate_bytes_per_second=settings.provided.file_rate_bytes_per_second,
            max_transfers_per_user=settings.provided.file_max_transfers_per_user,
            upload_ttl_seconds=settings.provided.file_upload_ttl_seconds,
        ),
        # the per-user cap on transfers: across the file gateways sharing Redis, else per process
        slots=providers.Selector(
            settings.provided.shared_state,
            memory=providers.Singleton(InMemoryTransferSlots),
            redis=providers.Singleton(RedisTransferSlots, redis, keys),
        ),
    )
