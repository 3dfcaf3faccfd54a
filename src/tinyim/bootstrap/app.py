"""The ASGI application of one process: routes of the roles it runs, resources opened in lifespan."""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import AsyncIterator
from typing import Any

from starlette.applications import Starlette
from starlette.routing import WebSocketRoute

from tinyim.edges.common import common_routes
from tinyim.edges.dispatch.http import dispatch_routes
from tinyim.settings import Settings

from .container import Container


class RoleNotServed(RuntimeError):
    pass


async def _awaited(result: Any) -> Any:
    return await result if inspect.isawaitable(result) else result


async def resolve(provider: Any) -> Any:
    """A provider's object; awaitable when it depends on an async resource (the database)."""
    return await _awaited(provider())


def build_app(settings: Settings) -> Starlette:
    if settings.roles != "all":
        raise RoleNotServed(
            f"IM_ROLES={settings.roles}: one role per process needs the gRPC adapters (distributed-roles "
            "issue); this version runs IM_ROLES=all"
        )
    container = Container(settings=settings)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        # Engines, pools and services exist only between startup and shutdown; the role routes are
        # mounted once the services they call are built.
        await _awaited(container.init_resources())
        try:
            auth, allocator = await resolve(container.auth), await resolve(container.gateway_allocator)
            app.router.routes.extend(dispatch_routes(auth, allocator))
            app.router.routes.append(
                WebSocketRoute("/ws", (await resolve(container.websocket_gateway)).endpoint)
            )
            yield
        finally:
            await _awaited(container.shutdown_resources())

    app = Starlette(routes=common_routes(settings.role_set), lifespan=lifespan)
    app.state.container = container
    return app
