"""The file gateway over HTTP, for browsers (which cannot open raw TCP); same resume semantics as TCP.

    GET {base}/files/uploads/{task_id}   Bearer upload token -> {task_id, offset, size, status}
    PUT {base}/files/uploads/{task_id}   Bearer upload token, Upload-Offset: N, body = next bytes
        -> 200 {offset, status}; 409 {offset} when N is not what is held; 413 past the size or above
           chunk_size; 422 {error} when the finished bytes do not match size / MD5 (the task fails)
    GET {base}/files/downloads/{task_id}?token=<download token>   (Range: bytes=a-b) -> 200 / 206

IM_FILE_RATE_BYTES_PER_SECOND limits uploads and downloads here as on TCP.

Request bodies stream straight into the partial file; nothing holds a whole body in memory. Downloads
(whole files and single ranges) go file -> socket by sendfile under our uvicorn protocol.
"""

from __future__ import annotations

import mimetypes
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.datastructures import MutableHeaders
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import BaseRoute, Mount, Route, Router
from starlette.types import Message, Receive, Scope, Send

from tinyim.kernel import INVALID_ARGUMENT, UNAUTHENTICATED, ImError
from tinyim.modules.files import FILE_CORRUPT, FILE_OFFSET, FILE_TOO_LARGE, FileStatus, TicketKind

from ..errors import http_status
from .transfers import FileGateway, RateLimit

Endpoint = Callable[[Request], Awaitable[Response]]

# the ASGI extension a server offers for sending file bytes by sendfile
ZEROCOPY = "http.response.zerocopysend"

# the contract's statuses for the file-module errors
STATUS = {FILE_OFFSET: 409, FILE_TOO_LARGE: 413, FILE_CORRUPT: 422}


def _error(exc: ImError) -> JSONResponse:
    status = STATUS.get(exc.code) or http_status(exc.code)
    return JSONResponse({"error": exc.code, "message": exc.message}, status_code=status)


def _guarded(fn: Endpoint) -> Endpoint:
    async def endpoint(request: Request) -> Response:
        try:
            return await fn(request)
        except ImError as exc:
            return _error(exc)

    return endpoint


def _bearer(request: Request) -> str:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise ImError(UNAUTHENTICATED, "missing 'Authorization: Bearer <upload token>' header")
    return token.strip()


class LimitedFileResponse(FileResponse):
    """Starlette's FileResponse (Range, 206/416, HEAD) under the connection's bandwidth limit, with the
    bytes sent by `os.sendfile` where the server offers the ASGI "http.response.zerocopysend" extension
    (ours does: tinyim.infra.zerocopy); elsewhere Starlette reads the file and sends it in pieces.
    A limited transfer goes by sendfile in slices of what the bucket grants."""

    def __init__(self, rate: RateLimit, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._rate = rate
        self._zerocopy = False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self._zerocopy = ZEROCOPY in scope.get("extensions", {})
        if not self._rate.rate:
            return await super().__call__(scope, receive, send)

        async def limited(message: Message) -> None:  # what Starlette reads and sends (sendfile: `_sendfile`)
            await send(message)
            if message["type"] == "http.response.body":
                await self._rate.moved(len(message.get("body", b"")))

        await super().__call__(scope, receive, limited)

    async def _handle_simple(self, send: Send, send_header_only: bool, send_pathsend: bool) -> None:
        if not self._zerocopy or send_header_only:
            return await super()._handle_simple(send, send_header_only, send_pathsend)
        await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})
        await self._sendfile(send, 0, None)

    async def _handle_single_range(
        self, send: Send, start: int, end: int, file_size: int, send_header_only: bool
    ) -> None:
        if not self._zerocopy or send_header_only:
            return await super()._handle_single_range(send, start, end, file_size, send_header_only)
        headers = MutableHeaders(raw=list(self.raw_headers))
        headers["content-range"] = f"bytes {start}-{end - 1}/{file_size}"
        headers["content-length"] = str(end - start)
        await send({"type": "http.response.start", "status": 206, "headers": headers.raw})
        await self._sendfile(send, start, end)

    async def _sendfile(self, send: Send, start: int, end: int | None) -> None:
        """Bytes [start, end) of the file (end None: to the length announced, the size when stat'ed)."""
        with open(self.path, "rb", buffering=0) as file:  # noqa: ASYNC230 (a handle; bytes go by sendfile)
            if end is None:
                end = start + int(self.headers["content-length"])
            while True:
                n = self._rate.step(end - start) if end > start else 0
                more = start + n < end
                await send({"type": ZEROCOPY, "file": file, "offset": start, "count": n, "more_body": more})
                start += n
                if not more:
                    return
                await self._rate.moved(n)


def file_routes(services: Callable[[], FileGateway], cors_origins: str = "") -> list[BaseRoute]:
    """The file gateway's HTTP routes; `services` gives the gateway per request (routes exist before the
    process starts)."""

    async def upload_status(request: Request) -> Response:
        gateway = services()
        task_id = request.path_params["task_id"]
        ticket = gateway.ticket(_bearer(request), TicketKind.UPLOAD, task_id)
        task, held = await gateway.upload_state(ticket)
        return JSONResponse(
            {"task_id": task.task_id, "offset": held, "size": task.size, "status": task.status.label}
        )

    async def upload_put(request: Request) -> Response:
        gateway = services()
        task_id = request.path_params["task_id"]
        ticket = gateway.ticket(_bearer(request), TicketKind.UPLOAD, task_id)
        try:
            offset = int(request.headers.get("upload-offset", ""))
        except ValueError:
            raise ImError(INVALID_ARGUMENT, "the Upload-Offset header must be a byte offset") from None
        declared = request.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > gateway.limits.chunk_size:
            raise ImError(FILE_TOO_LARGE, f"a request body carries at most {gateway.limits.chunk_size} bytes")
        task, _ = await gateway.upload_state(ticket)
        if task.finished:
            return JSONResponse({"offset": task.size, "status": "finished"})
        if declared and declared.isdigit() and offset + int(declared) > task.size:
            raise ImError(FILE_TOO_LARGE, f"the body runs past the file size {task.size}")
        async with gateway.upload(ticket) as session:
            if offset != session.held:
                return JSONResponse(
                    {"error": FILE_OFFSET, "offset": session.held, "message": "resume from offset"},
                    status_code=409,
                )
            rate = gateway.rate()
            taken = 0
            try:
                async for piece in request.stream():
                    taken += len(piece)
                    if taken > gateway.limits.chunk_size:
                        raise ImError(
                            FILE_TOO_LARGE, f"at most {gateway.limits.chunk_size} bytes per request"
                        )
                    session.write(piece)  # raises past the file size (413); a full disk keeps the rest
                    await rate.moved(len(piece))
            except ClientDisconnect:
                return Response(status_code=499)  # the bytes that arrived are kept; resume from GET
            if session.complete:
                try:
                    await session.finish()
                except ImError as exc:
                    if exc.code == FILE_CORRUPT:
                        return JSONResponse({"error": exc.message, "offset": 0}, status_code=422)
                    raise
            status = "finished" if session.task.status is FileStatus.FINISHED else "uploading"
            return JSONResponse({"offset": session.held, "status": status})

    async def download(request: Request) -> Response:
        gateway = services()
        task_id = request.path_params["task_id"]
        ticket = gateway.ticket(request.query_params.get("token", ""), TicketKind.DOWNLOAD, task_id)
        task, path = await gateway.downloadable(ticket)
        media_type = mimetypes.guess_type(task.file_name)[0] or "application/octet-stream"
        inline = media_type.startswith(("image/", "video/", "audio/", "text/plain"))
        # Starlette answers Range (206, Content-Range; 416 when unsatisfiable) and encodes the name
        # as RFC 5987 filename* when it is not ASCII.
        return LimitedFileResponse(
            gateway.rate(),
            path,
            media_type=media_type,
            filename=task.file_name,
            content_disposition_type="inline" if inline else "attachment",
            headers={"Cache-Control": "private, max-age=3600", "X-Content-Type-Options": "nosniff"},
        )

    routes: list[BaseRoute] = [
        Route("/uploads/{task_id}", _guarded(upload_status), methods=["GET"]),
        Route("/uploads/{task_id}", _guarded(upload_put), methods=["PUT"]),
        Route("/downloads/{task_id}", _guarded(download), methods=["GET", "HEAD"]),
    ]
    app: Any = Router(routes)
    origins = [o.strip() for o in cors_origins.split(",") if o.strip()]
    if origins:
        app = CORSMiddleware(
            app,
            allow_origins=origins,
            allow_methods=["GET", "HEAD", "PUT", "OPTIONS"],
            allow_headers=["Authorization", "Upload-Offset", "Content-Type", "Range"],
            expose_headers=["Content-Range", "Content-Length", "Accept-Ranges", "Content-Disposition"],
            max_age=600,
        )
    return [Mount("/files", app=app)]
