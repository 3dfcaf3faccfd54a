"""Routes every HTTP process serves: /healthz and /metrics (the latter behind a bearer token)."""

from __future__ import annotations

import hmac

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route


def common_routes(roles: frozenset[str], metrics_token: str = "") -> list[Route]:
    """`metrics_token`: /metrics answers only `Authorization: Bearer <metrics_token>` (empty: open,
    for in-process tests only; `tinyim run` always sets one)."""

    async def healthz(_request: Request) -> Response:
        return JSONResponse({"status": "ok", "roles": sorted(roles)})

    async def metrics(request: Request) -> Response:
        if metrics_token:
            scheme, _, given = request.headers.get("authorization", "").partition(" ")
            if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip(), metrics_token):
                return JSONResponse(
                    {"error": "unauthenticated", "message": "/metrics needs its bearer token"},
                    status_code=401,
                    headers={"WWW-Authenticate": "Bearer"},
                )
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return [Route("/healthz", healthz), Route("/metrics", metrics)]
