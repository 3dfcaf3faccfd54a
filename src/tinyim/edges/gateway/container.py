"""The gateway edge's container: `providers.Dependency` inputs from the composition root (the modules'
APIs, this process's hub, presence's online status), the chat WebSocket gateway and its status tracker."""

from __future__ import annotations

from dependency_injector import containers, providers

from tinyim.modules.auth import AuthApi
from tinyim.modules.files import FileApi
from tinyim.modules.presence import StatusService
from tinyim.modules.relation import RelationApi
from tinyim.modules.timeline import TimelineApi
from tinyim.settings import Settings

from .hub import GatewayHub
from .router import CommandRouter
from .status import StatusTracker
from .ws import GatewayLimits, WebSocketGateway


class GatewayContainer(containers.DeclarativeContainer):
    settings = providers.Dependency(instance_of=Settings)
    auth: providers.Dependency[AuthApi] = providers.Dependency()
    timeline: providers.Dependency[TimelineApi] = providers.Dependency()
    relation: providers.Dependency[RelationApi] = providers.Dependency()
    files: providers.Dependency[FileApi] = providers.Dependency()
    hub: providers.Dependency[GatewayHub] = providers.Dependency()  # this process's connections
    status: providers.Dependency[StatusService] = providers.Dependency()  # presence: online status

    status_tracker = providers.Singleton(
        StatusTracker,
        status,
        away_after_seconds=settings.provided.away_after_seconds,
        typing_per_second=settings.provided.typing_per_second,
        typing_burst=settings.provided.typing_burst,
        refresh_every=providers.Callable(lambda s: s.effective_presence_ttl / 3, settings),
    )
    websocket = providers.Singleton(
        WebSocketGateway,
        auth=auth,
        hub=hub,
        router=providers.Singleton(
            CommandRouter, timeline, relation, hub, status=status_tracker, files=files
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
