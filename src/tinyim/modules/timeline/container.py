"""The timeline module's container: `providers.Dependency` inputs from the composition root (presence,
relation's messaging rules and group roles, files as attachments), one local/gRPC selector (`api`: the local
TimelineService when this process runs `msg`, else its gRPC client; `notices` follows the same placement)."""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from typing import Any

from dependency_injector import containers, providers

from tinyim.infra import metrics
from tinyim.infra.db import Database
from tinyim.infra.extras import lazy
from tinyim.infra.node_directory import NodeDirectory
from tinyim.infra.redis import Keys
from tinyim.infra.rpc import Channels
from tinyim.kernel import AfterCommit
from tinyim.modules.timeline.adapters.push import FramePushNotifier
from tinyim.modules.timeline.adapters.rpc import GrpcTimelineClient
from tinyim.modules.timeline.adapters.sql import SqlTimelineStore
from tinyim.modules.timeline.ports import Attachments, GroupRoles, IdGenerator, MessagingPolicy
from tinyim.modules.timeline.protocol import inline_messages
from tinyim.modules.timeline.service import TimelineService, TimelineWriter
from tinyim.settings import Settings

RedisSeqAllocator = lazy("tinyim.modules.timeline.adapters.redis_seq:RedisSeqAllocator")


class TimelineContainer(containers.DeclarativeContainer):
    settings = providers.Dependency(instance_of=Settings)
    db: providers.Dependency[Database] = providers.Dependency()  # an async resource of the root
    redis: providers.Dependency[Any] = providers.Dependency()  # None without IM_REDIS_URL
    keys = providers.Dependency(instance_of=Keys)
    ids: providers.Dependency[IdGenerator] = providers.Dependency()  # message ids (Snowflake)
    directory: providers.Dependency[NodeDirectory] = providers.Dependency()  # where msg nodes are
    channels: providers.Dependency[Channels] = providers.Dependency()  # gRPC channels
    presence: providers.Dependency[Any] = providers.Dependency()  # pushes reach devices through it
    after_commit = providers.Dependency(instance_of=AfterCommit)  # read notices leave after the answer
    rules: providers.Dependency[MessagingPolicy] = providers.Dependency()  # relation: who may send
    roles: providers.Dependency[GroupRoles] = providers.Dependency()  # relation: recall by group admins
    attachments: providers.Dependency[Attachments] = providers.Dependency()  # files: attached files
    # relation's change feed, listened to while this process runs `msg` (its rules caches)
    rules_feed: providers.Dependency[AbstractAsyncContextManager[None]] = providers.Dependency()
    # presence's session route feed, listened to while this process runs `msg` (it pushes the signals)
    routes_feed: providers.Dependency[AbstractAsyncContextManager[None]] = providers.Dependency()

    maintain_conversations = settings.provided.conversation_list
    store = providers.Selector(
        settings.provided.seq_allocator,
        sql=providers.Singleton(
            SqlTimelineStore,
            db,
            conversations=maintain_conversations,
            batch_writers=settings.provided.timeline_batch_writers,
        ),
        redis=providers.Singleton(
            SqlTimelineStore,
            db,
            conversations=maintain_conversations,
            batch_writers=settings.provided.timeline_batch_writers,
            seqs=providers.Singleton(RedisSeqAllocator, db, redis, keys),
        ),
    )
    # small messages ride in their push signal as each owner's MessageData (no sync for a device one behind)
    writer = providers.Singleton(
        TimelineWriter,
        store,
        ids,
        presence,
        inline=providers.Object(inline_messages),
        on_push_drop=providers.Object(metrics.PUSHES_DROPPED.inc),
        on_push_failure=providers.Object(metrics.AFTER_COMMIT_FAILED.labels(what="push").inc),
        fanout_min=settings.provided.push_fanout_min,
        fanout_rate=settings.provided.push_fanout_owners_per_s,
    )
    service = providers.Singleton(
        TimelineService,
        store=store,
        writer=writer,
        policy=rules,
        # read receipts and conversation changes reach devices as client frames through presence
        notifier=providers.Singleton(FramePushNotifier, presence),
        max_content_bytes=settings.provided.max_content_bytes,
        sync_page_default=settings.provided.sync_page_default,
        sync_page_max=settings.provided.sync_page_max,
        roles=roles,
        recall_window_ms=providers.Callable(lambda s: int(s.recall_window_seconds * 1000), settings),
        attachments=attachments,
        after_commit=after_commit,
    )
    remote = providers.Singleton(
        GrpcTimelineClient.connect,
        directory,
        channels,
        settings.provided.grpc_deadline_seconds,
        send_calls_in_flight=settings.provided.msg_send_calls_in_flight,
        send_batch_max=settings.provided.msg_send_batch_max,
        on_send_batch=providers.Object(metrics.MSG_SEND_BATCH.observe),
        send_stream=settings.provided.internal_streams,
        send_linger_seconds=providers.Callable(lambda s: s.msg_send_linger_ms / 1000, settings),
    )
    placement = providers.Callable(lambda s: s.placement("msg"), settings)
    api = providers.Selector(placement, local=service, remote=remote)
    # notice writing (relation's friend and group notices): the writer here, else msg over gRPC
    notices = providers.Selector(placement, local=writer, remote=remote)
