"""ASGI middleware for every HTTP process: a request id per request (answered in `X-Request-Id`), and
metrics by route and status.

Routes are labelled by their path template (`/api/login`), never by the raw path, so a client cannot
grow the label set; requests that match no route count as `unmatched`. WebSockets pass through.
"""

from __future__ import annotations

import time

from starlette.routing import BaseRoute, Route, WebSocketRoute
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tinyim.infra import metrics, tracing


def _route_label(scope: Scope) -> str:
    route: BaseRoute | None = scope.get("route")
    if isinstance(route, Route | WebSocketRoute):
        return route.path
    return "unmatched"


class HttpTelemetry:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = tracing.new_request().encode()
        started = time.perf_counter()
        status = 500  # an exception before the response started is answered 500 by the server

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
                # the id a user can quote in a bug report; it names the server's log lines of this request
                message["headers"] = [*message.get("headers", []), (b"x-request-id", rid)]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            route = _route_label(scope)
            metrics.HTTP_REQUESTS.labels(route=route, status=str(status)).inc()
            metrics.HTTP_SECONDS.labels(route=route).observe(time.perf_counter() - started)
