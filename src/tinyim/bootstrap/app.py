"""The ASGI application of one process: the routes and gRPC services of the roles it runs (IM_ROLES).

Every route exists when `build_app` returns (static per role, in role-table order, the Web app's catch-all
last); endpoints read their services, resolved once at start-up, per request. Lifespan order: resources
(database, Redis, etcd, channels) -> each local role's services and background work (listeners, sweepers)
-> the gRPC server with the local roles' services -> registry entries (so a node is announced only once it
answers). Shutdown runs backwards: withdraw from the registry, drain gRPC calls, close resources.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any, TypedDict

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import BaseRoute

from tinyim.edges.common import common_routes
from tinyim.edges.http_telemetry import HttpTelemetry
from tinyim.edges.limits import BodyLimitMiddleware, BodyTooLarge, body_too_large_handler
from tinyim.infra import stall
from tinyim.infra.node_directory import NodeDirectory
from tinyim.infra.registration import check_worker_id, keep_registered
from tinyim.infra.registry import Node, Registry
from tinyim.infra.rpc import Registrar, grpc_server
from tinyim.settings import Settings

from .container import Container, wired
from .resources import metrics_token
from .roles import Role, local_roles

log = logging.getLogger(__name__)


class ProcessState(TypedDict):
    """What the lifespan yields (Starlette copies it into every request's `request.state`)."""

    container: Container
    roles: frozenset[str]


async def _awaited(result: Any) -> Any:
    return await result if inspect.isawaitable(result) else result


class Started:
    """A role's services, set once the process has started; its routes read them per request."""

    def __init__(self, role: str) -> None:
        self._role = role
        self._value: Any = None
        self._set = False

    def set(self, value: Any) -> None:
        self._value, self._set = value, True

    def clear(self) -> None:
        self._value, self._set = None, False

    def __call__(self) -> Any:
        if not self._set:  # a request before start-up or after shutdown: a bug, not a client error
            raise RuntimeError(f"the {self._role} role's services are not started")
        return self._value


def _nodes(settings: Settings, roles: tuple[Role, ...], loads: dict[str, Callable[[], int]]) -> list[Node]:
    return [
        Node(
            role=role.name,
            node_id=settings.node_id(role.name),
            host=settings.public_host,
            http_port=settings.http_port,
            grpc_port=settings.effective_grpc_port,
            file_port=settings.file_port,
            load=loads[role.name]() if role.name in loads else 0,
            ws_url=settings.public_ws_url if reg.ws_url else "",
            worker_id=settings.worker_id if reg.worker_id else 0,
            http_url=settings.public_file_http_url if reg.http_url else "",
        )
        for role in roles
        if (reg := role.entry.registration) is not None
    ]


def _routes(settings: Settings, roles: tuple[Role, ...], started: dict[str, Started]) -> list[BaseRoute]:
    """Every route of this process: the common ones, each role's, then fallbacks (the Web app at /)."""
    routes: list[BaseRoute] = [*common_routes(settings.role_set, metrics_token(settings))]
    for role in roles:
        if role.entry.routes is not None:
            routes.extend(role.entry.routes(settings, started[role.name]))
    for role in roles:
        if role.entry.fallback_routes is not None:
            routes.extend(role.entry.fallback_routes(settings))
    return routes


def build_app(settings: Settings) -> Starlette:
    container = wired(settings)
    roles = local_roles(settings)
    started = {role.name: Started(role.name) for role in roles}

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[ProcessState]:
        await _awaited(container.init_resources())
        stack = contextlib.AsyncExitStack()
        if settings.debug_stall_ms > 0:
            stack.enter_context(_stall_watchdog(settings))
        try:
            loads: dict[str, Callable[[], int]] = {}
            registrars: list[Registrar] = []
            for role in roles:  # the role table's hooks, on each local role's own container
                entry, module = role.entry, role.container(container)
                if entry.services is not None:
                    started[role.name].set(await entry.services(module))
                    stack.callback(started[role.name].clear)
                if entry.load is not None:
                    loads[role.name] = await entry.load(module)
                if entry.background is not None:
                    await stack.enter_async_context(entry.background(module))
                if entry.registrar is not None:
                    registrars.append(await entry.registrar(module))
            registry: Registry | None = await _awaited(container.registry())
            if registry is not None:
                directory: NodeDirectory = await _awaited(container.directory())
                await stack.enter_async_context(_following(directory))
                serve = contextlib.asynccontextmanager(grpc_server)
                await stack.enter_async_context(
                    serve(settings.host, settings.effective_grpc_port, registrars)
                )
                unique_workers = {
                    r.name for r in roles if r.entry.registration and r.entry.registration.worker_id
                }
                for node in _nodes(settings, roles, loads):
                    if node.role in unique_workers:  # two live msg nodes must not share a worker id
                        await check_worker_id(registry, node)
                register = contextlib.asynccontextmanager(keep_registered)
                await stack.enter_async_context(
                    register(
                        registry, lambda: _nodes(settings, roles, loads), settings.registry_renew_seconds
                    )
                )
            yield {"container": container, "roles": settings.role_set}
        finally:
            await stack.aclose()
            await _awaited(container.shutdown_resources())

    middleware = [
        m for role in roles if role.entry.middleware is not None for m in role.entry.middleware(settings)
    ]
    app = Starlette(
        routes=_routes(settings, roles, started),
        lifespan=lifespan,
        middleware=[
            *middleware,  # the roles' own (dispatch: CORS for /api/*), outermost
            Middleware(HttpTelemetry),  # request id and metrics by route
            # Bodies are refused as soon as they pass the limit (streamed upload routes are exempt by path).
            Middleware(BodyLimitMiddleware, max_bytes=settings.http_max_body),
        ],
        exception_handlers={BodyTooLarge: body_too_large_handler},
    )
    app.state.container = container
    return app


@contextlib.contextmanager
def _stall_watchdog(settings: Settings) -> Iterator[None]:
    """IM_DEBUG_STALL_MS: sample the loop's long turns; the summary is written on shutdown."""
    watchdog = stall.StallWatchdog(settings.debug_stall_ms)
    watchdog.start()
    try:
        yield
    finally:
        watchdog.stop()
        path = stall.from_env_path(settings.data_dir, settings.debug_stall_report)
        watchdog.write(path, {"histograms": stall.histograms()})
        log.info("stall report written", extra={"path": str(path), "stalls": len(watchdog.stalls)})


@contextlib.asynccontextmanager
async def _following(directory: NodeDirectory) -> AsyncIterator[None]:
    follower = asyncio.create_task(directory.follow())
    try:
        yield
    finally:
        follower.cancel()
