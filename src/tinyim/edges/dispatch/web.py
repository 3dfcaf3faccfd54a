"""The Web app (the built `web/dist`) at `/`, what it asks dispatch for, and CORS for the HTTP API.

The app is static files: dispatch serves them on the same origin as `/api` and `/ws`, so the app itself
needs no CORS. `IM_CORS_ORIGINS` lets pages of other origins (your own front end) call `/api/*`.
"""

from __future__ import annotations

import logging
from pathlib import Path

from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Receive, Scope, Send

log = logging.getLogger(__name__)

# src/tinyim/edges/dispatch/web.py -> the repository root (an editable install or a checkout).
_REPO = Path(__file__).resolve().parents[4]
DEFAULT_WEB_DIR = _REPO / "web" / "dist"

NOT_BUILT = """<!doctype html><meta charset="utf-8"><title>TinyIM</title>
<h1>TinyIM</h1><p>The Web app is not built here. From the repository: <code>make web</code>
(needs Node.js 20+ and npm), or point <code>IM_WEB_DIR</code> at a built <code>web/dist</code>.
The HTTP API (<code>/api/*</code>) and the WebSocket (<code>/ws</code>) work without it.</p>"""


def web_dir(configured: str) -> Path | None:
    """The built app's directory: IM_WEB_DIR when set, else web/dist of this checkout (or of the working
    directory, for an installed package run from a checkout); None if there is none."""
    candidates = (
        [Path(configured).expanduser()] if configured else [DEFAULT_WEB_DIR, Path("web/dist").resolve()]
    )
    for path in candidates:
        if (path / "index.html").is_file():
            return path
    log.warning("web app not found at %s: / serves a hint (build it with `make web`)", candidates[0])
    return None


class _NoCacheIndex(StaticFiles):
    """index.html is revalidated on every load (it names the hashed assets of the current build)."""

    async def get_response(self, path: str, scope: Scope) -> Response:
        response = await super().get_response(path, scope)
        if path in ("", ".", "index.html") or path.endswith(".html"):
            response.headers["cache-control"] = "no-cache"
        elif path.startswith("assets/"):
            response.headers["cache-control"] = "public, max-age=31536000, immutable"
        return response


def web_routes(configured_dir: str, heartbeat_timeout: float) -> list[BaseRoute]:
    """Mount these last: `/` catches every path the API routes did not take."""

    async def client_config(_request: Request) -> Response:
        # A client that sends nothing for the gateway's heartbeat timeout is closed: beat 3 times per window.
        return JSONResponse({"heartbeat_interval_seconds": max(1.0, round(heartbeat_timeout / 3, 1))})

    routes: list[BaseRoute] = [Route("/api/client_config", client_config, methods=["GET"])]
    directory = web_dir(configured_dir)
    if directory is None:

        async def hint(_request: Request) -> Response:
            return HTMLResponse(NOT_BUILT, status_code=503)

        routes.append(Route("/", hint))
    else:
        routes.append(Mount("/", app=_NoCacheIndex(directory=directory, html=True), name="web"))
    return routes


class ApiCors:
    """CORS (IM_CORS_ORIGINS: comma list or *) for dispatch's `/api/` paths only; other paths pass through."""

    def __init__(self, app: ASGIApp, origins: str) -> None:
        allowed = [o.strip() for o in origins.split(",") if o.strip()]
        self._app = app
        self._cors = CORSMiddleware(
            app,
            allow_origins=allowed,
            allow_methods=["GET", "POST", "OPTIONS"],
            allow_headers=["authorization", "content-type"],
            max_age=600,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].startswith("/api/"):
            await self._cors(scope, receive, send)
        else:
            await self._app(scope, receive, send)
