"""HTTP request-body limits for every route of every role.

`BodyLimitMiddleware` refuses a body as soon as it passes the limit, whatever the transfer encoding:
a `Content-Length` over the limit is answered 413 before a byte of the body is read, and a chunked
body is counted as it streams in and cut off at the limit (the route sees `BodyTooLarge`, answered
413). Routes that stream large bodies to disk (file uploads) are exempted by path prefix: pass
`exempt_prefixes`, or extend `STREAMED_PREFIXES`; such a route bounds its own input, e.g. with
`read_limited(request, n)` or its own per-chunk accounting.
"""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

# Routes that stream their body to disk and bound it themselves (browser uploads on the file gateway).
STREAMED_PREFIXES: tuple[str, ...] = ("/files/uploads/",)


class BodyTooLarge(Exception):
    def __init__(self, limit: int) -> None:
        super().__init__(f"request body exceeds {limit} bytes")
        self.limit = limit


def too_large_response(limit: int) -> Response:
    return JSONResponse(
        {"error": "too_large", "message": f"request body exceeds {limit} bytes"},
        status_code=413,
        headers={"Connection": "close"},
    )


async def body_too_large_handler(_request: Request, exc: Exception) -> Response:
    """Starlette exception handler: a route that hit the limit while reading answers 413."""
    assert isinstance(exc, BodyTooLarge)
    return too_large_response(exc.limit)


class BodyLimitMiddleware:
    def __init__(self, app: ASGIApp, max_bytes: int, exempt_prefixes: tuple[str, ...] = STREAMED_PREFIXES):
        self.app = app
        self.max_bytes = max_bytes
        self.exempt_prefixes = exempt_prefixes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith(self.exempt_prefixes):
            await self.app(scope, receive, send)
            return
        limit = self.max_bytes
        declared = _content_length(scope)
        if declared is not None and declared > limit:
            await too_large_response(limit)(scope, receive, send)
            return
        seen = 0

        async def limited_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise BodyTooLarge(limit)
            return message

        await self.app(scope, limited_receive, send)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


async def read_limited(request: Request, limit: int) -> bytes:
    """The whole body, or BodyTooLarge as soon as more than `limit` bytes arrived (never buffered)."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge(limit)
        chunks.append(chunk)
    return b"".join(chunks)


def json_object(raw: bytes) -> dict[str, Any] | None:
    """`raw` parsed as a JSON object, or None: never raises on hostile input (deep nesting, bad UTF-8,
    lone surrogates)."""
    try:
        data = json.loads(raw)
        # Lone UTF-16 surrogates ("\ud800") parse into strs that no store or hash can encode.
        json.dumps(data, ensure_ascii=False).encode("utf-8")
    except (ValueError, UnicodeError, RecursionError):
        return None
    return data if isinstance(data, dict) else None
