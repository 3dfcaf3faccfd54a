"""The ASGI application of one process: the routes and gRPC services of the roles it runs (IM_ROLES).

Lifespan order: resources (database, Redis, etcd, channels) -> HTTP routes of the local roles -> the
gRPC server with the local roles' services -> registry entries (so a node is announced only once it
answers). Shutdown runs backwards: withdraw from the registry, drain gRPC calls, close resources.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
from collections.abc import AsyncIterator
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware

from tinyim.edges.common import common_routes
from tinyim.edges.dispatch.admin import admin_routes
from tinyim.edges.dispatch.http import dispatch_routes
from tinyim.edges.dispatch.web import ApiCors, web_routes
from tinyim.edges.gateway.grpc_server import gateway_registrar
from tinyim.edges.gateway.hub import GatewayHub
from tinyim.edges.gateway.ws_protocol import ChatEndpoint
from tinyim.edges.http_telemetry import HttpTelemetry
from tinyim.edges.limits import BodyLimitMiddleware, BodyTooLarge, body_too_large_handler
from tinyim.infra.listener import mount_websocket, unmount_websocket
from tinyim.infra.node_directory import NodeDirectory
from tinyim.infra.registration import check_worker_id, keep_registered
from tinyim.infra.registry import Node, Registry
from tinyim.infra.rpc import Registrar, grpc_server
from tinyim.modules.auth.adapters.grpc_server import auth_registrar
from tinyim.modules.files.role import ROLES as FILE_ROLES
from tinyim.modules.relation.adapters.change_feed import RedisChangeFeed
from tinyim.modules.relation.adapters.grpc_server import user_registrar
from tinyim.modules.timeline.adapters.grpc_server import msg_registrar
from tinyim.settings import Settings

from .container import Container, metrics_token

# Roles other processes call over gRPC (dispatch is only called by clients, over HTTP).
RPC_ROLES = ("gateway", "auth", "user", "msg")


async def _awaited(result: Any) -> Any:
    return await result if inspect.isawaitable(result) else result


async def resolve(provider: Any) -> Any:
    """A provider's object; awaitable when it depends on an async resource (the database)."""
    return await _awaited(provider())


async def _registrars(settings: Settings, container: Container) -> list[Registrar]:
    local = set(settings.role_set)
    found: list[Registrar] = []
    if "auth" in local:
        auth = await resolve(container.auth)
        found.append(auth_registrar(auth, auth))  # the local service serves the admin API too
    if "user" in local:
        found.append(user_registrar(await resolve(container.relation)))
    if "msg" in local:
        found.append(msg_registrar(await resolve(container.timeline), await resolve(container.notices)))
    if "gateway" in local:
        found.append(gateway_registrar(await resolve(container.hub)))
    for entry in FILE_ROLES:  # role entries of the files module
        if entry.name in local and entry.registrar is not None:
            found.append(await entry.registrar(container.files))
    return found


def _nodes(settings: Settings, hub: GatewayHub, loads: dict[str, Any] | None = None) -> list[Node]:
    loads = loads or {}
    return [
        Node(
            role=role,
            node_id=settings.node_id(role),
            host=settings.public_host,
            http_port=settings.http_port,
            grpc_port=settings.effective_grpc_port,
            file_port=settings.file_port,
            load=hub.connection_count if role == "gateway" else loads[role]() if role in loads else 0,
            ws_url=settings.public_ws_url if role == "gateway" else "",
            worker_id=settings.worker_id if role == "msg" else 0,
            http_url=settings.public_file_http_url if role == "filegw" else "",
        )
        for role in (*RPC_ROLES, *(entry.name for entry in FILE_ROLES))
        if role in settings.role_set
    ]


def build_app(settings: Settings) -> Starlette:
    container = Container(settings=settings)
    admin_token = settings.effective_admin_token if "dispatch" in settings.role_set else ""

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await _awaited(container.init_resources())
        stack = contextlib.AsyncExitStack()
        try:
            roles = settings.role_set
            if "dispatch" in roles:
                auth, allocator = await resolve(container.auth), await resolve(container.gateway_allocator)
                files = await resolve(container.file_allocator)
                limits = {"rate_per_second": settings.rate_per_second, "rate_burst": settings.rate_burst}
                throttle = await resolve(container.login_throttle)
                app.router.routes.extend(
                    dispatch_routes(auth, allocator, files, limits, throttle, bool(admin_token))
                )
                if admin_token:  # admin API: mounted only with a token
                    app.router.routes.extend(
                        admin_routes(
                            admin_token,
                            auth,
                            await resolve(container.relation),
                            await resolve(container.notices),
                            await resolve(container.online_count),
                        )
                    )
            if "gateway" in roles:
                # online status: told of every connection's life; idle sweeps and reaping in the background
                tracker = await resolve(container.status_tracker)
                (await resolve(container.hub)).add_listener(tracker)
                sweeper = asyncio.create_task(tracker.run())
                stack.callback(sweeper.cancel)
                # the chat WebSocket: served by its own lean protocol, not through ASGI (same port)
                endpoint = ChatEndpoint(await resolve(container.websocket_gateway))
                mount_websocket("/ws", endpoint.upgrade)
                stack.callback(unmount_websocket, "/ws")
                stack.callback(endpoint.close)
            if "user" in roles:
                # relation's outbox relay: delivers the notices of social changes that a crash (or a
                # timeline out of reach) kept from being delivered right after their commit
                relation = await resolve(container.relation)
                relay = asyncio.create_task(relation.relay_outbox())
                stack.callback(relay.cancel)
            if "msg" in roles:  # the rules caches hear of relation changes made in other processes
                feed = await resolve(container.relation_changes)
                if isinstance(feed, RedisChangeFeed):
                    listener = asyncio.create_task(feed.run())
                    stack.callback(listener.cancel)
            loads = {}
            for entry in (e for e in FILE_ROLES if e.name in roles):  # files module: routes, listeners
                if entry.routes is not None:
                    app.router.routes.extend(await entry.routes(container.files))
                if entry.load is not None:
                    loads[entry.name] = await entry.load(container.files)
                if entry.background is not None:
                    await stack.enter_async_context(entry.background(container.files))
            registry: Registry | None = await resolve(container.registry)
            if registry is not None:
                directory: NodeDirectory = await resolve(container.directory)
                follower = asyncio.create_task(directory.follow())
                stack.callback(follower.cancel)
                registrars = await _registrars(settings, container)
                serve = contextlib.asynccontextmanager(grpc_server)
                await stack.enter_async_context(
                    serve(settings.host, settings.effective_grpc_port, registrars)
                )
                hub = await resolve(container.hub)
                for node in _nodes(settings, hub):
                    if node.role == "msg":
                        await check_worker_id(registry, node)
                register = contextlib.asynccontextmanager(keep_registered)
                await stack.enter_async_context(
                    register(registry, lambda: _nodes(settings, hub, loads), settings.registry_renew_seconds)
                )
            if "dispatch" in roles:  # Web app: its static files at / come after every other route
                app.router.routes.extend(web_routes(settings.web_dir, settings.heartbeat_timeout_seconds))
            yield
        finally:
            await stack.aclose()
            await _awaited(container.shutdown_resources())

    app = Starlette(
        routes=common_routes(settings.role_set, metrics_token(settings)),
        lifespan=lifespan,
        middleware=[
            Middleware(HttpTelemetry),  # request id and metrics by route
            # Bodies are refused as soon as they pass the limit (streamed upload routes are exempt by path).
            Middleware(BodyLimitMiddleware, max_bytes=settings.http_max_body),
        ],
        exception_handlers={BodyTooLarge: body_too_large_handler},
    )
    if "dispatch" in settings.role_set and settings.cors_origins:  # Web: CORS for /api/* (IM_CORS_ORIGINS)
        app.add_middleware(ApiCors, origins=settings.cors_origins)
    app.state.container = container
    return app
