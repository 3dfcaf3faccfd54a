"""A role entry: what a module contributes to a process that runs its role (the bootstrap loops over them).

Hooks take the module's own container. Routes are static: `routes` builds them before the process starts,
from the settings and a getter of the role's services (`services`, resolved once at start-up), so an
endpoint reads its services per request and the app of any set of roles can be built without starting it.
Then a gRPC registrar, whether the role needs the database, what it announces in the registry (None: it
is not in the registry, e.g. dispatch, which only clients call), and background work (listeners, sweepers).
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any

from starlette.middleware import Middleware
from starlette.routing import BaseRoute

from tinyim.infra.rpc import Registrar
from tinyim.settings import Settings


async def resolved(provider: Callable[[], Any]) -> Any:
    """A provider's object; awaitable when it depends on an async resource of the root (the database)."""
    value = provider()
    return await value if inspect.isawaitable(value) else value


@contextlib.asynccontextmanager
async def running(work: Awaitable[None]) -> AsyncIterator[None]:
    """Background work for as long as the block runs: a task, cancelled and awaited when it ends."""
    task = asyncio.ensure_future(work)
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


# The services a role's endpoints use: a getter, valid once the process has started.
Services = Callable[[], Any]


@dataclass(frozen=True, slots=True)
class Registration:
    """A role's registry entry beyond its address: the extra fields its node announces."""

    ws_url: bool = False  # a gateway's public WebSocket URL (IM_PUBLIC_WS_URL)
    worker_id: bool = False  # a msg node's Snowflake worker id; two live nodes must not share one
    http_url: bool = False  # a file gateway's public HTTP base (IM_PUBLIC_FILE_HTTP_URL)


@dataclass(frozen=True, slots=True)
class RoleEntry:
    name: str
    needs_database: bool
    # None: the role is not in the registry (no other process calls it)
    registration: Registration | None = Registration()
    services: Callable[[Any], Awaitable[Any]] | None = None
    routes: Callable[[Settings, Services], list[BaseRoute]] | None = None
    # routes after every role's routes (the Web app's catch-all at /)
    fallback_routes: Callable[[Settings], list[BaseRoute]] | None = None
    # middleware around the whole app when this process runs the role (outermost, before telemetry)
    middleware: Callable[[Settings], list[Middleware]] | None = None
    registrar: Callable[[Any], Awaitable[Registrar]] | None = None
    # registry announcement: the load this node reports (a callable read at every renewal)
    load: Callable[[Any], Awaitable[Callable[[], int]]] | None = None
    background: Callable[[Any], AbstractAsyncContextManager[None]] | None = None
