"""Routes every HTTP process serves: /healthz and /metrics."""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route


def common_routes(roles: frozenset[str]) -> list[Route]:
    async def healthz(_request: Request) -> Response:
        return JSONResponse({"status": "ok", "roles": sorted(roles)})

    async def metrics(_request: Request) -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return [Route("/healthz", healthz), Route("/metrics", metrics)]
