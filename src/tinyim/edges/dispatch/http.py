"""HTTP routes of the dispatch role (JSON in, JSON out; errors as {"error": code, "message": …})."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tinyim.infra import audit, metrics
from tinyim.kernel import (
    CONFLICT,
    INVALID_ARGUMENT,
    PERMISSION_DENIED,
    UNAUTHENTICATED,
    UNAVAILABLE,
    ImError,
)
from tinyim.modules.auth import AuthApi, LoginResult, TokenClaims

from ..errors import http_status
from ..limits import json_object, read_limited
from .openapi import openapi_document
from .ports import FileGatewayAllocator, GatewayAllocator
from .throttle import LoginThrottle

MAX_BODY = 4096

Endpoint = Callable[[Request], Awaitable[Response]]


def _error(exc: ImError) -> JSONResponse:
    return JSONResponse({"error": exc.code, "message": exc.message}, status_code=http_status(exc.code))


class _NotJson(Exception):
    pass


def _json_endpoint(fn: Callable[[Request], Awaitable[Response]]) -> Endpoint:
    async def endpoint(request: Request) -> Response:
        try:
            return await fn(request)
        except ImError as exc:
            return _error(exc)
        except _NotJson:
            # Only JSON: a browser form (or text/plain) POST from another site cannot reach these routes
            # without a CORS preflight.
            return JSONResponse(
                {"error": "unsupported_media_type", "message": "send the body as application/json"},
                status_code=415,
            )

    return endpoint


async def _body(request: Request) -> dict[str, Any]:
    media_type = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    if media_type != "application/json":
        raise _NotJson()
    data = json_object(await read_limited(request, MAX_BODY))
    if data is None:
        raise ImError(INVALID_ARGUMENT, "request body must be a JSON object")
    return data


def _field(data: dict[str, Any], name: str) -> Any:
    if name not in data:
        raise ImError(INVALID_ARGUMENT, f"missing field {name!r}")
    return data[name]


async def _bearer(request: Request, auth: AuthApi) -> TokenClaims:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise ImError(UNAUTHENTICATED, "missing 'Authorization: Bearer <token>' header")
    return await auth.verify_token(token.strip())


# Outcome labels (metrics, audit) of a refused login / registration, by module error code.
_LOGIN_OUTCOMES = {
    UNAUTHENTICATED: "bad_credentials",
    PERMISSION_DENIED: "disabled",
    INVALID_ARGUMENT: "invalid",
}
_REGISTER_OUTCOMES = {CONFLICT: "taken", INVALID_ARGUMENT: "invalid", PERMISSION_DENIED: "refused"}


def _address(request: Request) -> str:
    return request.client.host if request.client else ""


def _name(value: object) -> str:
    """A username as given, fit for a log line (whatever a client sent)."""
    return value[:64] if isinstance(value, str) else type(value).__name__


@dataclass(frozen=True, slots=True)
class DispatchServices:
    """What the dispatch routes use: read per request, so the routes exist before the process starts."""

    auth: AuthApi
    gateways: GatewayAllocator
    files: FileGatewayAllocator | None = None
    throttle: LoginThrottle = field(default_factory=LoginThrottle)


def dispatch_routes(
    services: Callable[[], DispatchServices],
    client_limits: dict[str, float] | None = None,
    admin_api: bool = False,
) -> list[Route]:
    """`client_limits` (the gateways' per-connection rate limit) is told to clients at login, so an SDK
    paces itself below it. The services' throttle limits failed logins per account and per client address."""

    async def register(request: Request) -> Response:
        data = await _body(request)
        username = _field(data, "username")
        invite_code = data.get("invite_code", "")
        if not isinstance(invite_code, str):
            raise ImError(INVALID_ARGUMENT, "invite_code must be a string")
        fields = {"username": _name(username), "ip": _address(request), "invited": bool(invite_code)}
        try:
            user_id = await services().auth.register(
                username, _field(data, "password"), _field(data, "nickname"), invite_code
            )
        except ImError as exc:
            outcome = _REGISTER_OUTCOMES.get(exc.code, "error")
            metrics.REGISTRATIONS.labels(outcome=outcome).inc()
            audit.event("register", outcome=outcome, reason=exc.message, **fields)
            raise
        metrics.REGISTRATIONS.labels(outcome="ok").inc()
        audit.event("register", outcome="ok", user_id=user_id, **fields)
        return JSONResponse({"user_id": user_id}, status_code=201)

    async def login(request: Request) -> Response:
        data = await _body(request)
        username, password = _field(data, "username"), _field(data, "password")
        device_id = _field(data, "device_id")
        address = _address(request)
        fields = {"username": _name(username), "device_id": _name(device_id), "ip": address}
        wait = await services().throttle.retry_after(username, address)
        if wait:
            metrics.LOGINS.labels(outcome="throttled").inc()
            audit.event("login", outcome="throttled", reason=f"retry in {wait} s", **fields)
            return JSONResponse(
                {"error": "rate_limited", "message": f"too many failed logins; retry in {wait} s"},
                status_code=429,
                headers={"Retry-After": str(wait)},
            )
        try:
            result = await services().auth.login(username, password, device_id)
        except ImError as exc:
            if exc.code == UNAUTHENTICATED:
                await services().throttle.failed(username, address)
            outcome = _LOGIN_OUTCOMES.get(exc.code, "error")
            metrics.LOGINS.labels(outcome=outcome).inc()
            audit.event("login", outcome=outcome, reason=exc.message, **fields)
            raise
        await services().throttle.succeeded(username)
        metrics.LOGINS.labels(outcome="ok").inc()
        audit.event("login", outcome="ok", user_id=result.user_id, **fields)
        return await session_response(result)

    async def session_response(result: LoginResult) -> Response:
        gateway = await services().gateways.allocate()
        return JSONResponse(
            {
                "user_id": result.user_id,
                "token": result.token,
                "expires_at": result.expires_at,
                "refresh_token": result.refresh_token,
                "refresh_expires_at": result.refresh_expires_at,
                "gateway": gateway.as_json(),
                **({"limits": client_limits} if client_limits else {}),
            }
        )

    async def openapi(_request: Request) -> Response:
        return JSONResponse(openapi_document(admin=admin_api))

    async def refresh(request: Request) -> Response:
        """A new token (and the next refresh token) without the password: what a reconnect uses."""
        data = await _body(request)
        try:
            result = await services().auth.refresh(_field(data, "refresh_token"))
        except ImError as exc:
            outcome = _LOGIN_OUTCOMES.get(exc.code, "error")
            audit.event("refresh", outcome=outcome, reason=exc.message, ip=_address(request))
            raise
        audit.event("refresh", outcome="ok", user_id=result.user_id, ip=_address(request))
        return await session_response(result)

    async def logout(request: Request) -> Response:
        claims = await _bearer(request, services().auth)
        await services().auth.logout(claims)
        audit.event("logout", user_id=claims.user_id, device_id=claims.device_id, ip=_address(request))
        return Response(status_code=204)

    async def allocate_gateway(request: Request) -> Response:
        await _bearer(request, services().auth)
        return JSONResponse((await services().gateways.allocate()).as_json())

    async def allocate_file_gateway(request: Request) -> Response:
        await _bearer(request, services().auth)
        task_id = request.query_params.get("task_id", "")
        if not 1 <= len(task_id) <= 64 or not task_id.isprintable():
            raise ImError(INVALID_ARGUMENT, "task_id must be 1-64 printable characters")
        files = services().files
        if files is None:
            raise ImError(UNAVAILABLE, "file gateways need a registry (IM_REDIS_URL or IM_ETCD_ENDPOINTS)")
        return JSONResponse((await files.allocate(task_id)).as_json())

    return [
        Route("/api/register", _json_endpoint(register), methods=["POST"]),
        Route("/api/login", _json_endpoint(login), methods=["POST"]),
        Route("/api/logout", _json_endpoint(logout), methods=["POST"]),
        Route("/api/refresh", _json_endpoint(refresh), methods=["POST"]),
        Route("/openapi.json", openapi, methods=["GET"]),
        Route("/api/allocate_gateway", _json_endpoint(allocate_gateway), methods=["GET"]),
        Route("/api/allocate_file_gateway", _json_endpoint(allocate_file_gateway), methods=["GET"]),
    ]
