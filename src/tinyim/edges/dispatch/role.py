"""Role entry of the dispatch edge: `dispatch` (the HTTP API, the admin API when a token is set, CORS for
/api/*, and the Web app's static files after every other route). Only clients call it: no registry entry."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from starlette.middleware import Middleware
from starlette.routing import BaseRoute

from tinyim.infra.roles import RoleEntry, resolved
from tinyim.settings import Settings

from .admin import AdminServices, admin_routes
from .http import DispatchServices, dispatch_routes
from .web import ApiCors, web_routes


@dataclass(frozen=True, slots=True)
class DispatchRoleServices:
    http: DispatchServices
    admin: AdminServices | None  # None: no admin token, no admin API


async def _services(dispatch: Any) -> DispatchRoleServices:
    with_admin = bool(dispatch.settings().effective_admin_token)
    return DispatchRoleServices(
        http=await resolved(dispatch.http), admin=await resolved(dispatch.admin) if with_admin else None
    )


def _routes(settings: Settings, services: Callable[[], DispatchRoleServices]) -> list[BaseRoute]:
    admin_token = settings.effective_admin_token
    limits = {"rate_per_second": settings.rate_per_second, "rate_burst": settings.rate_burst}
    routes: list[BaseRoute] = [*dispatch_routes(lambda: services().http, limits, bool(admin_token))]
    if admin_token:  # admin API: mounted only with a token

        def admin() -> AdminServices:
            started = services().admin
            assert started is not None, "the admin services start whenever a token is set"
            return started

        routes.extend(admin_routes(admin_token, admin))
    return routes


def _web(settings: Settings) -> list[BaseRoute]:
    return web_routes(settings.web_dir, settings.heartbeat_timeout_seconds)


def _middleware(settings: Settings) -> list[Middleware]:
    # Web: CORS for /api/* (IM_CORS_ORIGINS)
    return [Middleware(ApiCors, origins=settings.cors_origins)] if settings.cors_origins else []


ROLES = (
    RoleEntry(
        "dispatch",
        needs_database=False,
        registration=None,
        services=_services,
        routes=_routes,
        fallback_routes=_web,
        middleware=_middleware,
    ),
)
