"""Role entries of the files module: `filemeta` (FileService over gRPC, expiry of abandoned uploads)
and `filegw` (the file gateway: TCP listener on IM_FILE_PORT, HTTP routes, partial-file sweeper)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from starlette.routing import BaseRoute

from tinyim.edges.filegw import FileGateway, file_listener, file_routes
from tinyim.infra.roles import Registration, RoleEntry, resolved, running
from tinyim.infra.rpc import Registrar
from tinyim.modules.files.adapters.rpc import files_registrar
from tinyim.modules.files.service import FileService
from tinyim.settings import Settings

log = logging.getLogger(__name__)


async def _every(seconds: float, work: Callable[[], Awaitable[object]], what: str) -> None:
    while True:
        await asyncio.sleep(seconds)
        try:
            done = await work()
            if done:
                log.info("%s: %s", what, done)
        except Exception:
            log.warning("%s failed; next round in %.0fs", what, seconds, exc_info=True)


def _sweep_period(files: Any) -> float:
    return float(min(max(files.settings().file_upload_ttl_seconds / 4, 0.25), 60.0))


# ---------- filemeta ----------
async def _meta_registrar(files: Any) -> Registrar:
    return files_registrar(await resolved(files.service))


@contextlib.asynccontextmanager
async def _meta_background(files: Any) -> AsyncIterator[None]:
    service: FileService = await resolved(files.service)
    async with running(_every(_sweep_period(files), service.expire_uploads, "abandoned uploads expired")):
        yield


# ---------- filegw ----------
async def _gw_services(files: Any) -> FileGateway:
    gateway: FileGateway = await resolved(files.gateway)
    return gateway


def _gw_routes(settings: Settings, gateway: Callable[[], FileGateway]) -> list[BaseRoute]:
    return file_routes(gateway, settings.cors_origins)


async def _gw_load(files: Any) -> Callable[[], int]:
    gateway: FileGateway = await resolved(files.gateway)
    return lambda: gateway.transfers


@contextlib.asynccontextmanager
async def _gw_background(files: Any) -> AsyncIterator[None]:
    gateway: FileGateway = await resolved(files.gateway)
    settings = files.settings()

    async def sweep() -> list[str]:
        return await asyncio.to_thread(gateway.sweep)

    async with (
        file_listener(gateway, settings.host, settings.file_port),
        running(_every(_sweep_period(files), sweep, "abandoned partial uploads deleted")),
    ):
        yield


ROLES = (
    RoleEntry("filemeta", needs_database=True, registrar=_meta_registrar, background=_meta_background),
    RoleEntry(
        "filegw",
        needs_database=False,
        registration=Registration(http_url=True),
        services=_gw_services,
        routes=_gw_routes,
        load=_gw_load,
        background=_gw_background,
    ),
)
