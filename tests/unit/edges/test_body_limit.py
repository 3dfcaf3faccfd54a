"""The body-limit middleware: counts streamed bytes, stops reading at the limit, exempts streamed routes."""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tinyim.edges.limits import BodyLimitMiddleware, BodyTooLarge, body_too_large_handler

CHUNK = 1024


async def _echo_size(request: Request) -> Response:
    return JSONResponse({"size": len(await request.body())})


def _app() -> Starlette:
    routes = [
        Route("/api/x", _echo_size, methods=["POST"]),
        Route("/files/uploads/t", _echo_size, methods=["PUT"]),
    ]
    return Starlette(
        routes=routes,
        middleware=[Middleware(BodyLimitMiddleware, max_bytes=4 * CHUNK)],
        exception_handlers={BodyTooLarge: body_too_large_handler},
    )


async def _call(method: str, path: str, chunks: int, headers: list[tuple[bytes, bytes]] | None = None):
    consumed = 0
    sent: list[MutableMapping[str, Any]] = []

    async def receive() -> dict[str, Any]:
        nonlocal consumed
        consumed += 1
        return {"type": "http.request", "body": b"x" * CHUNK, "more_body": consumed < chunks}

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "method": method, "path": path, "headers": headers or [], "query_string": b""}
    await _app()(scope, receive, send)
    return sent[0]["status"], consumed


async def test_streamed_body_is_cut_at_the_limit() -> None:
    status, consumed = await _call("POST", "/api/x", chunks=10_000)
    assert status == 413 and consumed == 5


async def test_declared_length_over_the_limit_reads_nothing() -> None:
    status, consumed = await _call("POST", "/api/x", 10, [(b"content-length", str(10 * CHUNK).encode())])
    assert status == 413 and consumed == 0


async def test_body_under_the_limit_passes() -> None:
    assert await _call("POST", "/api/x", chunks=3) == (200, 3)


async def test_streamed_upload_routes_are_exempt() -> None:
    assert await _call("PUT", "/files/uploads/t", chunks=50) == (200, 50)
